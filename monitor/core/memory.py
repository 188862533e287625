"""The memory of which rules covered each ALB path when it was last seen healthy, so a rule that
later disappears can be put back exactly as it was, even after a restart.

Pure: the next memory is a function of the previous one, this cycle's report, the observed rules
and `now`. It learns each path port decided on reads that all succeeded, even in a cycle where another
read failed, but only a complete observation forgets: a failed read proves nothing (docs/controllers.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any

from monitor.core.coverage import admits
from monitor.core.errors import StateError
from monitor.core.model import LoadBalancerResult, PeerKind, Report, Rule

SCHEMA = "alb-sg-monitor/memory"
VERSION = 1


@dataclass(frozen=True, slots=True)
class RuleTuple:
    """A rule's identity: group, protocol, ports and one peer. The description is not part of it,
    as for the v2 controller, which treats a tuple as present whatever its description."""

    group_id: str
    protocol: str
    from_port: int | None
    to_port: int | None
    peer_kind: str  # a PeerKind value: "sg", "cidr", "cidr6", "prefix_list"
    peer: str
    # The id AWS gave the rule when it was seen: not part of the identity (a re-granted rule gets a
    # new one), kept so that a finding can name the rule that was lost.
    rule_id: str | None = field(default=None, compare=False)

    @classmethod
    def of(cls, rule: Rule) -> RuleTuple:
        return cls(rule.group_id, rule.protocol, rule.from_port, rule.to_port, rule.peer_kind.value, rule.peer,
                   rule.rule_id or None)

    def sort_key(self) -> tuple[str, str, int, int, str, str]:
        return (self.group_id, self.protocol, _port(self.from_port), _port(self.to_port), self.peer_kind, self.peer)

    def text(self) -> str:
        """E.g. 'tcp 30000-32767 from sg-0alb on sg-0node'."""
        if self.protocol == "-1":
            ports = "all traffic"
        elif self.from_port == self.to_port:
            ports = f"{self.protocol} {self.from_port}"
        else:
            ports = f"{self.protocol} {self.from_port}-{self.to_port}"
        return f"{ports} from {self.peer} on {self.group_id}"

    def to_json(self) -> dict[str, Any]:
        raw = {"group_id": self.group_id, "protocol": self.protocol, "from_port": self.from_port,
               "to_port": self.to_port, "peer_kind": self.peer_kind, "peer": self.peer}
        if self.rule_id:
            raw["rule_id"] = self.rule_id
        return raw

    @classmethod
    def from_json(cls, raw: Any) -> RuleTuple:
        _expect(isinstance(raw, dict), "a rule must be an object")
        _expect(raw.get("peer_kind") in {k.value for k in PeerKind}, f"unknown peer_kind {raw.get('peer_kind')!r}")
        for name in ("group_id", "protocol", "peer"):
            _expect(isinstance(raw.get(name), str) and raw[name], f"rule field {name} must be a non-empty string")
        for name in ("from_port", "to_port"):
            _expect(raw.get(name) is None or type(raw[name]) is int, f"rule field {name} must be an integer or null")
        # rule_id is optional: documents written before it was kept have none.
        _expect(raw.get("rule_id") is None or isinstance(raw["rule_id"], str), "rule field rule_id must be a string")
        return cls(raw["group_id"], raw["protocol"], raw["from_port"], raw["to_port"], raw["peer_kind"], raw["peer"],
                   raw.get("rule_id") or None)


@dataclass(frozen=True, order=True)
class PathKey:
    """One port of one ALB → target group → target path (traffic and health-check ports apart)."""

    load_balancer_arn: str
    target_group_arn: str
    target: str
    port: int


@dataclass(frozen=True, slots=True)
class PathMemory:
    covering: tuple[RuleTuple, ...]
    """The rules that admitted this port when it was last seen covered (empty: never seen so)."""
    uncovered_since: float | None = None
    """When this port was first seen uncovered in the current outage; None while covered."""
    lost: tuple[RuleTuple, ...] = ()
    """Remembered covering rules absent from the rules observed when this port was last seen uncovered."""


@dataclass(frozen=True, slots=True)
class Memory:
    paths: tuple[tuple[PathKey, PathMemory], ...] = ()  # sorted by key
    _index: dict[PathKey, PathMemory] | None = field(default=None, init=False, repr=False, compare=False)

    def as_dict(self) -> dict[PathKey, PathMemory]:
        """The paths by key, made once (read it, never change it: it is this memory's)."""
        if self._index is None:
            object.__setattr__(self, "_index", dict(self.paths))
        return self._index  # type: ignore[return-value]

    def get(self, key: PathKey) -> PathMemory | None:
        return self.as_dict().get(key)


def remember(previous: Memory, report: Report, rules: tuple[Rule, ...], now: float,
             judged_before: Mapping[str, LoadBalancerResult] | None = None) -> Memory:
    """The next memory. Each path port this report decides is learnt, even when another read failed
    (evaluate leaves a path unknown when any read it depends on failed). Unknown paths keep what was
    remembered. Paths that vanished (ALB deleted, target deregistered) are forgotten only by a
    complete report: from an incomplete one a missing path may just have been unreadable.

    `judged_before`: the load balancers of the report `previous` was learnt from. One this report
    carries unchanged (the same judgement: monitor.core.carry) keeps what was remembered of it."""
    old = previous.as_dict()
    new: dict[PathKey, PathMemory] = {} if report.complete else dict(old)
    judged_before = judged_before or {}
    fresh = [lb for lb in report.load_balancers if not (judged_before.get(lb.arn) is lb and _kept(lb, old, new))]
    if not fresh and len(new) == len(old):
        return previous  # nothing judged again, nothing gone: the same memory
    by_id = {_coverage_id(rule): rule for rule in rules}
    present = {RuleTuple.of(rule) for rule in rules}
    shared: dict[PathMemory, PathMemory] = {}
    for lb in fresh:
        for path in lb.paths:
            if not path.judged:
                continue  # nothing covers it that the monitor could read, nothing to restore
            for port in path.ports:
                key = PathKey(lb.arn, path.target_group_arn, path.target, port)
                before = old.get(key)
                if path.covered is False and port in path.missing_ports:
                    # Covered False means every group of the target was read, so a remembered rule
                    # absent from the observed rules is really gone, not merely unread.
                    covering = before.covering if before else ()
                    since = before.uncovered_since if before and before.uncovered_since is not None else now
                    lost = tuple(t for t in covering if t not in present)
                    new[key] = PathMemory(covering=covering, uncovered_since=since, lost=lost)
                elif path.covered is True or (path.covered is False and report.complete):
                    # On a path uncovered on another port, this port's own needs may be unknown when a
                    # read failed; only a complete report vouches for its covering rules then.
                    # Only rules that admit this port in a protocol the path needs on it count.
                    needs = [n for n in path.needs if n[1] == port] or [("tcp", port)]
                    covering = {RuleTuple.of(r) for i in path.covered_by
                                if (r := by_id.get(i)) and any(admits(r, n) for n in needs)}
                    learnt = PathMemory(covering=sort_tuples(covering))
                    new[key] = shared.setdefault(learnt, learnt)  # the paths of one target group share it
                elif before is not None:
                    new[key] = before
    return Memory(paths=tuple(sorted(new.items(), key=lambda item: item[0])))


def _kept(lb: LoadBalancerResult, old: dict[PathKey, PathMemory], new: dict[PathKey, PathMemory]) -> bool:
    """Copies what was remembered of each path port of `lb` into `new`; False (and nothing copied)
    when one has no memory yet."""
    entries = []
    for path in lb.paths:
        if not path.judged:
            continue
        for port in path.ports:
            key = PathKey(lb.arn, path.target_group_arn, path.target, port)
            before = old.get(key)
            if before is None:
                return False
            entries.append((key, before))
    new.update(entries)
    return True


def sort_tuples(tuples) -> tuple[RuleTuple, ...]:
    return tuple(sorted(set(tuples), key=RuleTuple.sort_key))


def _port(port: int | None) -> int:
    return -1 if port is None else port


def _coverage_id(rule: Rule) -> str:
    """How evaluate names a covering rule in PathResult.covered_by: its id, else a text form."""
    return rule.rule_id or f"{rule.group_id}:{rule.ports_text()}:{rule.peer}"


def to_json(memory: Memory) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "paths": [
            {
                "load_balancer": key.load_balancer_arn,
                "target_group": key.target_group_arn,
                "target": key.target,
                "port": key.port,
                "covering": [t.to_json() for t in entry.covering],
                "uncovered_since": entry.uncovered_since,
                "lost": [t.to_json() for t in entry.lost],
            }
            for key, entry in memory.paths
        ],
    }


def from_json(raw: Any) -> Memory:
    """Raises StateError for anything that is not a memory document this version can read."""
    _expect(isinstance(raw, dict) and raw.get("schema") == SCHEMA, f"not an {SCHEMA} document")
    _expect(raw.get("version") == VERSION,
            f"{SCHEMA} version {raw.get('version')!r} is not supported (this build reads version {VERSION})")
    _expect(isinstance(raw.get("paths"), list), "paths must be a list")
    entries: dict[PathKey, PathMemory] = {}
    for item in raw["paths"]:
        _expect(isinstance(item, dict), "each path must be an object")
        _expect(type(item.get("port")) is int, "path port must be an integer")
        for name in ("load_balancer", "target_group", "target"):
            _expect(isinstance(item.get(name), str), f"path field {name} must be a string")
        since = item.get("uncovered_since")
        _expect(since is None or isinstance(since, (int, float)), "uncovered_since must be a number or null")
        _expect(isinstance(item.get("covering"), list) and isinstance(item.get("lost", []), list),
                "covering and lost must be lists")
        key = PathKey(item["load_balancer"], item["target_group"], item["target"], item["port"])
        entries[key] = PathMemory(
            covering=tuple(RuleTuple.from_json(t) for t in item["covering"]),
            uncovered_since=None if since is None else float(since),
            lost=tuple(RuleTuple.from_json(t) for t in item.get("lost", [])),
        )
    return Memory(paths=tuple(sorted(entries.items(), key=lambda item: item[0])))


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise StateError(problem)
