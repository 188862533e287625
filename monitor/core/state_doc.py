"""The state document: what survives a restart (the remembered rules and the remediation history)
as one versioned JSON text, and the two-method StateStore every store (a file, a ConfigMap) keeps.

A document that cannot be read, is corrupt, or belongs to another program or cluster raises
StateError (a ConfigError: the CLI prints one line and exits 2). It is never silently reset:
starting empty in the middle of an outage would forget exactly the rules that need restoring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitor.core import history as history_doc
from monitor.core import memory as memory_doc
from monitor.core.errors import StateError
from monitor.core.history import History
from monitor.core.memory import Memory

SCHEMA = "alb-sg-monitor/state"
VERSION = 1


@dataclass(frozen=True)
class State:
    cluster: str
    memory: Memory = field(default_factory=Memory)
    history: History = field(default_factory=History)


class StateStore(Protocol):
    durable: bool
    """True when the state outlives the process (a file, a ConfigMap)."""

    @property
    def where(self) -> str:
        """The store as the log names it: `file PATH`, `ConfigMap NS/NAME`, `memory`."""

    def load(self) -> State | None:
        """The stored state; None when nothing was stored yet. Raises StateError otherwise."""

    def save(self, state: State) -> None:
        """Replaces the stored state atomically. Raises StateError when it cannot."""

    def probe(self) -> str | None:
        """Why a save would fail now (checked at start, without writing the state), or None."""

    def missing(self) -> bool:
        """True when what was saved is known to be gone (a deleted file). Asked every cycle, so it
        must be cheap: the state is saved only when it changed, and a state that did not change
        would otherwise never be written again."""


def dumps(state: State) -> str:
    return json.dumps({
        "schema": SCHEMA,
        "version": VERSION,
        "cluster": state.cluster,
        "memory": memory_doc.to_json(state.memory),
        "history": history_doc.to_json(state.history),
    }, indent=1, sort_keys=True) + "\n"


def loads(text: str, cluster: str, where: str) -> State:
    """Parses a stored document for `cluster`; `where` names it in errors (a path, a ConfigMap)."""
    try:
        raw: Any = json.loads(text)
    except ValueError as exc:
        raise StateError(f"state {where}: not valid JSON ({exc}); fix or remove it") from None
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        raise StateError(f"state {where}: not an alb-sg-monitor state document; point the state elsewhere")
    if raw.get("version") != VERSION:
        raise StateError(f"state {where}: version {raw.get('version')!r} is not supported "
                         f"(this build reads version {VERSION})")
    if raw.get("cluster") != cluster:
        raise StateError(f"state {where}: belongs to cluster {raw.get('cluster')!r}, not {cluster!r}")
    try:
        return State(cluster=cluster, memory=memory_doc.from_json(raw.get("memory")),
                     history=history_doc.from_json(raw.get("history")))
    except StateError as exc:
        raise StateError(f"state {where}: {exc}") from None
