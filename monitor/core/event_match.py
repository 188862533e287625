"""Relates parsed CloudTrail events to what the monitor watches: who made the call (which
controller, this monitor, or someone else), whether it touches a watched security group, ENI,
load balancer or target group, and which revoke-then-grant pairs left a measurable outage window.

Pure: events and role ARNs in, frozen values out; times come from the events themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from monitor.core.events import ApiEvent, Effect, Principal
from monitor.core.memory import RuleTuple


class ActorKind(str, Enum):
    V2_CONTROLLER = "v2_controller"
    V1_CONTROLLER = "v1_controller"
    MONITOR = "monitor"
    OTHER = "other"


@dataclass(frozen=True)
class KnownRoles:
    """The IAM role ARNs of the controllers and of this monitor (from their ServiceAccounts, or flags)."""

    v2_controller: frozenset[str] = frozenset()
    v1_controller: frozenset[str] = frozenset()
    monitor: frozenset[str] = frozenset()


# A role, arn:<partition>:iam::<account>:role/<path/><name>, or a session of it,
# arn:<partition>:sts::<account>:assumed-role/<name>/<session>.
_ROLE = re.compile(r"arn:(?P<partition>[\w-]+):iam::(?P<account>\d{12}):role/(?:[^,]*/)?(?P<name>[\w+=,.@-]+)")
_SESSION = re.compile(r"arn:(?P<partition>[\w-]+):sts::(?P<account>\d{12}):assumed-role/(?P<name>[\w+=,.@-]+)/[^/]+")


def role_key(arn: str | None) -> tuple[str, str, str] | None:
    """(partition, account, role name) of a role ARN or of a session of that role. IAM role names are
    unique in an account whatever their path, and a session ARN drops the path, so this is the key."""
    for pattern in (_ROLE, _SESSION):
        match = pattern.fullmatch(arn or "")
        if match:
            return match["partition"], match["account"], match["name"]
    return None


def actor_kind(principal: Principal, roles: KnownRoles) -> ActorKind:
    """The kind of caller. A role listed under several kinds counts as the first of: this monitor,
    the v2 controller, the v1 controller (a shared role cannot be told apart from CloudTrail)."""
    key = role_key(principal.role_arn) or role_key(principal.arn)
    if key is None:
        return ActorKind.OTHER
    for kind, arns in ((ActorKind.MONITOR, roles.monitor), (ActorKind.V2_CONTROLLER, roles.v2_controller),
                       (ActorKind.V1_CONTROLLER, roles.v1_controller)):
        if any(role_key(arn) == key for arn in arns):
            return kind
    return ActorKind.OTHER


@dataclass(frozen=True)
class Watched:
    """What the current topology depends on."""

    security_groups: frozenset[str] = frozenset()
    network_interfaces: frozenset[str] = frozenset()
    load_balancers: frozenset[str] = frozenset()
    target_groups: frozenset[str] = frozenset()
    account: str | None = None  # whose events concern it (from the load balancers' ARNs); None: unknown
    region: str | None = None


def touches(event: ApiEvent, watched: Watched) -> bool:
    """Whether the event changed something a watched path depends on: a watched group (as the group
    changed, or as a rule's peer), ENI, load balancer or target group; or made a load balancer (of
    the account and region watched: one of the cluster's, or not, its tags will tell)."""
    if event.event_name == "CreateLoadBalancer":
        return bool(event.load_balancers)
    peers = {r.rule.peer for r in event.rules if r.rule is not None and r.rule.peer_kind == "sg"}
    return bool(watched.security_groups & (set(event.security_groups) | peers)
                or watched.network_interfaces.intersection(event.network_interfaces)
                or watched.load_balancers.intersection(event.load_balancers)
                or watched.target_groups.intersection(event.target_groups))


# --- outage windows: a revoke, then a grant that covers the same access again ---------------------

@dataclass(frozen=True)
class Outage:
    """Access revoked by one call and granted again by a later one: a real traffic gap, even when no
    poll fell inside it (the v2 controller before v2.12 revoked before granting)."""

    direction: str
    rule: RuleTuple  # the revoked rule
    revoked: ApiEvent
    granted: ApiEvent

    @property
    def seconds(self) -> float:
        return self.granted.event_time - self.revoked.event_time


@dataclass(frozen=True)
class OpenRevokes:
    """What the events seen so far say about access: rules revoked and not granted again yet, each
    with the event that revoked it, and rules granted since (oldest first in both)."""

    revoked: tuple[tuple[str, RuleTuple, ApiEvent], ...] = ()
    granted: tuple[tuple[str, RuleTuple, ApiEvent], ...] = ()

    def forget_before(self, when: float) -> OpenRevokes:
        """Drop what happened before `when`, to bound memory: a gap that long is one the polls see."""
        return OpenRevokes(tuple(e for e in self.revoked if e[2].event_time >= when),
                           tuple(e for e in self.granted if e[2].event_time >= when))


def record(state: OpenRevokes, event: ApiEvent) -> tuple[OpenRevokes, tuple[Outage, ...]]:
    """Feed one event, in event-time order; returns the new state and the outage windows it closed.

    A revoke opens a window unless a rule granted earlier (in these events) still covers the access:
    the v2 controller since v2.12 grants the new merged rule first, then revokes the old one. Rules
    that existed before the events began are not known here, so a window is an upper bound."""
    rules = [(r.direction, r.rule) for r in event.rules if r.rule is not None]
    if event.effect is Effect.REVOKE:
        granted = [g for g in state.granted if (g[0], g[1]) not in rules]
        revoked = list(state.revoked)
        for direction, rule in rules:
            covered = any(d == direction and covers(g, rule) for d, g, _ in granted)
            already = any(d == direction and r == rule for d, r, _ in revoked)  # the first revoke opened it
            if not covered and not already:
                revoked.append((direction, rule, event))
        return OpenRevokes(tuple(revoked), tuple(granted)), ()
    if event.effect is not Effect.GRANT:
        return state, ()
    closed, still_open = [], []
    for direction, rule, revoke_event in state.revoked:
        # Strictly later: CloudTrail times have one-second resolution, so a same-second pair has no
        # order to trust, and a gap under a second is not measurable from them.
        if revoke_event.event_time < event.event_time and any(
                d == direction and covers(g, rule) for d, g in rules):
            closed.append(Outage(direction, rule, revoke_event, event))
        else:
            still_open.append((direction, rule, revoke_event))
    granted = state.granted + tuple((d, g, event) for d, g in rules)
    return OpenRevokes(tuple(still_open), granted), tuple(closed)


def outage_windows(events: Iterable[ApiEvent]) -> tuple[Outage, ...]:
    """Every outage window in a batch of events, whatever order they arrived in (EventBridge does not
    keep order); duplicates (same event id) count once."""
    unique = {e.event_id: e for e in events}.values()
    state, found = OpenRevokes(), []
    for event in sorted(unique, key=lambda e: (e.event_time, e.event_id)):
        state, closed = record(state, event)
        found.extend(closed)
    return tuple(found)


def covers(granted: RuleTuple, revoked: RuleTuple) -> bool:
    """The grant admits again everything the revoked rule admitted: same group and peer, the same
    protocol (or all traffic), and a port range at least as wide (v2 regrants a merged min-max range)."""
    if (granted.group_id, granted.peer_kind, granted.peer) != (revoked.group_id, revoked.peer_kind, revoked.peer):
        return False
    if granted.protocol == "-1":
        return True
    if granted.protocol != revoked.protocol:
        return False
    if granted.from_port is None or granted.to_port is None:
        return revoked.from_port is None
    if revoked.from_port is None or revoked.to_port is None:
        return False
    return granted.from_port <= revoked.from_port and revoked.to_port <= granted.to_port
