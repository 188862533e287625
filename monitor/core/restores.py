"""Which lost rules a restore puts back: only rules from the ALB's own security groups, and of
those the fewest that re-cover every missing port; the others are reported with their reason.

Pure: memory and report in, one Need per rule out. A lost CIDR, IPv6 CIDR or prefix-list rule is
never put back: it may have been removed on purpose (a world-open port closed by a security team),
and a rule from the ALB's own SG re-covers the same path without opening it to anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.core.memory import Memory, PathKey, RuleTuple
from monitor.core.model import PeerKind, Report

# Need.reason (and Decision.reason) of a lost rule that is never written; stable log fields.
SOURCE_DETACHED = "source_detached"  # the lost rule's source SG is no longer on the ALB
CIDR_NOT_RESTORED = "cidr_not_restored"  # the lost rule's source is an address range: never restored


@dataclass
class Need:
    """A lost rule behind uncovered ports, and whether it is to be put back."""

    since: float
    reason: str = ""  # "": restorable; CIDR_NOT_RESTORED or SOURCE_DETACHED: never written
    paths: int = 0  # path ports where the rule, put back, would cover the port again (or that lost it)
    lbs: dict[str, tuple[str, str]] = field(default_factory=dict)


def needs(memory: Memory, report: Report) -> dict[RuleTuple, Need]:
    """Lost rules behind uncovered ports: the fewest restorable ones that re-cover them, and, for
    each port none of those re-covers, the lost rules that will not be put back and why."""
    remembered = memory.as_dict()
    ports: dict[PathKey, tuple[float, tuple[str, str, str], tuple[RuleTuple, ...]]] = {}
    candidates: dict[RuleTuple, set[PathKey]] = {}
    for lb in report.load_balancers:
        for path in lb.paths:
            if path.covered is not False:
                continue
            for port in path.missing_ports:
                key = PathKey(lb.arn, path.target_group_arn, path.target, port)
                entry = remembered.get(key)
                if entry is None or not entry.lost:
                    continue
                since = entry.uncovered_since if entry.uncovered_since is not None else 0.0
                ports[key] = (since, (lb.name, lb.ingress_namespace, lb.ingress), entry.lost)
                for rule in entry.lost:
                    if _restorable(rule, lb.security_groups, path.security_groups):
                        candidates.setdefault(rule, set()).add(key)
    chosen = _fewest(candidates)
    needs = {rule: _need_for(keys, ports) for rule, keys in chosen.items()}
    recovered = {key for keys in chosen.values() for key in keys}
    left: dict[RuleTuple, set[PathKey]] = {}
    for key, (_, _, lost) in ports.items():
        if key not in recovered:
            for rule in lost:
                left.setdefault(rule, set()).add(key)
    for rule, keys in left.items():
        if rule not in needs:
            reason = SOURCE_DETACHED if rule.peer_kind == PeerKind.SECURITY_GROUP.value else CIDR_NOT_RESTORED
            needs[rule] = _need_for(keys, ports, reason)
    return needs


def _restorable(rule: RuleTuple, lb_groups: tuple[str, ...], target_groups: tuple[str, ...]) -> bool:
    """Only a rule from one of the ALB's own SGs (its managed SG, or the backend SG v2 attaches to
    it), on an SG the target still has: anything else would open something without restoring the
    path, or re-open an address range someone may have closed on purpose."""
    return (rule.peer_kind == PeerKind.SECURITY_GROUP.value and rule.peer in lb_groups
            and rule.group_id in target_groups)


def _fewest(candidates: dict[RuleTuple, set[PathKey]]) -> dict[RuleTuple, set[PathKey]]:
    """A smallest set of rules that re-covers every port any of them covers (greedy set cover:
    the rule re-covering most of what is left first; ties go to the narrower rule, then to a
    stable order, so the same outage always picks the same rules)."""
    left = set().union(*candidates.values()) if candidates else set()
    chosen: dict[RuleTuple, set[PathKey]] = {}
    while left:
        rule = min(candidates, key=lambda r: (-len(candidates[r] & left), _width(r), r.sort_key()))
        gain = candidates[rule] & left
        if not gain:
            break
        chosen[rule] = candidates[rule]
        left -= gain
    return chosen


def _width(rule: RuleTuple) -> int:
    if rule.protocol == "-1" or rule.from_port is None or rule.to_port is None:
        return 1 << 20  # every protocol and port: wider than any port range
    return rule.to_port - rule.from_port


def _need_for(keys: set[PathKey], ports, reason: str = "") -> Need:
    need = Need(since=min(ports[k][0] for k in keys), reason=reason, paths=len(keys))
    for key in keys:
        name, namespace, ingress = ports[key][1]
        need.lbs[name] = (namespace, ingress)
    return need
