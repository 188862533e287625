"""What matched events may make the daemon do, and how often: a burst asks for one rule check (or
a bounded few), an event naming a load balancer the topology does not know has that one described
by its ARN, and only events that name nothing the topology can place ask for a full discovery, at
most once a minute. Whatever arrives on the queue, the work it causes stays bounded.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from monitor.core.event_match import Watched
from monitor.core.event_trust import origin
from monitor.core.events import ApiEvent
from monitor.core.model import Topology

# Checks asked by events: the first at once, then at most one per this many seconds (asks meanwhile
# are merged into one at the end of the gap), so 5,000 events ask for a handful of checks, not 500.
CHECK_GAP_SECONDS = 2.0
# Full discoveries asked by events the topology cannot place.
FULL_DISCOVERY_GAP_SECONDS = 60.0
# Load balancers the topology does not know, described by ARN: each at most once per
# UNKNOWN_AGAIN_SECONDS, and at most UNKNOWN_PER_WINDOW (one DescribeLoadBalancers call) per window.
UNKNOWN_PER_WINDOW = 20
UNKNOWN_WINDOW_SECONDS = 60.0
UNKNOWN_AGAIN_SECONDS = 300.0

_LB_ARN = re.compile(r"arn:[\w-]+:elasticloadbalancing:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
                     r"loadbalancer/(app|net)/[\w-]+/[0-9a-f]+")


def watched_by(topology: Topology) -> Watched:
    """What a topology depends on, and the account and region whose events concern it."""
    groups = {g for lb in topology.load_balancers for g in lb.security_groups} | set(topology.target_group_ids)
    enis = {t.eni_id for tg in topology.target_groups for t in tg.targets or () if t.eni_id}
    lbs = frozenset(lb.arn for lb in topology.load_balancers)
    account, region = origin(lbs)
    return Watched(security_groups=frozenset(groups), network_interfaces=frozenset(enis), load_balancers=lbs,
                   target_groups=frozenset(tg.arn for tg in topology.target_groups), account=account,
                   region=region or topology.region)


def ingresses_of_group(topology: Topology, group: str) -> list[tuple[str, str]]:
    """The Ingresses of the ALBs that send through this group (their own, or their targets')."""
    behind = {arn for tg in topology.target_groups for t in tg.targets or ()
              if group in (t.security_groups or ()) for arn in tg.load_balancer_arns}
    return sorted({(lb.ingress_namespace, lb.ingress) for lb in topology.load_balancers
                   if lb.ingress and (lb.arn in behind or group in lb.security_groups)})


@dataclass(frozen=True)
class Placement:
    """Which load balancers a batch of topology-changing events concerns."""

    known: frozenset[str] = frozenset()  # ALBs of the topology: named, behind a named target group or ENI
    unknown: frozenset[str] = frozenset()  # ALB ARNs named that the topology does not know (this account)
    unplaced: bool = False  # some event named nothing either of these covers


def place(topology: Topology, events: Iterable[ApiEvent], account: str | None, region: str | None) -> Placement:
    known = {lb.arn for lb in topology.load_balancers}
    # Who sits behind each target group and ENI, built once for all the events.
    behind: dict[str, set[str]] = {}
    for tg in topology.target_groups:
        lbs = known.intersection(tg.load_balancer_arns)
        for key in (tg.arn, *(t.eni_id for t in tg.targets or () if t.eni_id)):
            behind.setdefault(key, set()).update(lbs)
    concerned: set[str] = set()
    unknown: set[str] = set()
    unplaced = False
    for event in events:
        found = known.intersection(event.load_balancers)
        for key in (*event.target_groups, *event.network_interfaces):
            found |= behind.get(key, set())
        named = {arn for arn in event.load_balancers if arn not in known and _ours(arn, account, region)}
        if not found and not named:
            unplaced = True
        concerned |= found
        unknown |= named
    return Placement(frozenset(concerned), frozenset(unknown), unplaced)


def _ours(arn: str, account: str | None, region: str | None) -> bool:
    match = _LB_ARN.fullmatch(arn)
    return bool(match) and account in (None, match["account"]) and region in (None, match["region"])


@dataclass
class UnknownGate:
    """Admits unknown load balancer ARNs to be described: each at most once per `again` seconds, and
    at most `per_window` in any `window` seconds. Pure; time passed in."""

    per_window: int = UNKNOWN_PER_WINDOW
    window: float = UNKNOWN_WINDOW_SECONDS
    again: float = UNKNOWN_AGAIN_SECONDS
    _asked: dict[str, float] = field(default_factory=dict)

    def admit(self, arns: Iterable[str], now: float) -> set[str]:
        self._asked = {a: t for a, t in self._asked.items() if now - t < self.again}
        budget = self.per_window - sum(1 for t in self._asked.values() if now - t < self.window)
        admitted = set()
        for arn in sorted(arns):
            if budget <= 0:
                break
            if arn not in self._asked:
                self._asked[arn] = now
                admitted.add(arn)
                budget -= 1
        return admitted


@dataclass
class Gap:
    """True at most once per `seconds`. Pure; time passed in."""

    seconds: float
    _last: float = float("-inf")

    def admit(self, now: float) -> bool:
        if now - self._last < self.seconds:
            return False
        self._last = now
        return True


class Coalescer:
    """Calls `action` at once when asked, then at most once per `gap` seconds: asks within a gap are
    merged into one call at its end (so the last change of a burst is checked too)."""

    def __init__(self, action: Callable[[], None], gap: float = CHECK_GAP_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._action = action
        self._gap = gap
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._timer: threading.Timer | None = None
        self.calls = 0

    def ask(self) -> None:
        with self._lock:
            if self._timer is not None:
                return  # a call is already due at the end of this gap
            wait = self._last + self._gap - self._monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self._fire)
                self._timer.daemon = True
                self._timer.start()
                return
            self._last = self._monotonic()
            self.calls += 1
        self._action()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            self._last = self._monotonic()
            self.calls += 1
        self._action()
