"""Where the memory and the remediation history survive restarts: one versioned JSON document,
behind a two-method StateStore so the file store here and a ConfigMap store are interchangeable.

A document that cannot be read, is corrupt, or belongs to another program or cluster raises
StateError (a ConfigError: the CLI prints one line and exits 2). It is never silently reset:
starting empty in the middle of an outage would forget exactly the rules that need restoring.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitor import history as history_doc
from monitor import memory as memory_doc
from monitor.errors import StateError
from monitor.history import History
from monitor.memory import Memory

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


class FileStateStore:
    """`--state-file`: written to a temporary file in the same directory, fsynced, then renamed over
    the old one, so a crash leaves either the old document or the new one, never half of one."""

    durable = True

    def __init__(self, path: str, cluster: str) -> None:
        self.path = path
        self.cluster = cluster

    @property
    def where(self) -> str:
        return f"file {self.path}"

    def load(self) -> State | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"state {self.path}: cannot be read ({exc})") from None
        return loads(text, self.cluster, self.path)

    def save(self, state: State) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".albsg-state-", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(dumps(state))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                _remove(tmp)
                raise
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # make the rename itself durable
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StateError(f"state {self.path}: cannot be written ({exc})") from None

    def probe(self) -> str | None:
        """Creates and removes a temporary file where save() would: permission bits alone do not
        tell (root ignores them; a read-only mount or an immutable directory does not)."""
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            if os.path.isdir(self.path):
                return f"state {self.path}: is a directory"
            fd, tmp = tempfile.mkstemp(prefix=".albsg-probe-", dir=directory)
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            return f"state {self.path}: cannot be written ({exc})"
        return None

    def missing(self) -> bool:
        """One stat: the file was deleted, or the volume under it replaced by an empty one."""
        return not os.path.exists(self.path)


class InMemoryStateStore:
    """No --state-file and no Kubernetes: remembered for the life of the process only."""

    durable = False
    where = "memory"

    def __init__(self) -> None:
        self.state: State | None = None

    def load(self) -> State | None:
        return self.state

    def save(self, state: State) -> None:
        self.state = state

    def probe(self) -> str | None:
        return None

    def missing(self) -> bool:
        return False


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
