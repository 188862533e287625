"""When a rule check reads the load balancer listing (one DescribeLoadBalancers page per 400 load
balancers, the largest part of a steady check's work in a large account).

The listing tells the check which load balancers came, went or changed their security groups. While
nothing else can tell, every check reads it. With the events queue read and healthy, the events
that change it (`LISTING_EVENTS`) tell sooner than the next check: the listing is then read by the
check after such an event, and at least once per ceiling (`--topology-interval`), so that an event
lost on its way is caught within that time. A check that finds a path cut without it reads the cut
load balancers again before it says so (a load balancer deleted a moment ago looks cut while its
event is on its way): by ARN when that takes no more requests than the listing, else the listing.
Pure apart from its lock; time passed in.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from monitor.aws.calls import ELB_PAGE, ELB_TAGS_PER_CALL

# The calls that change what the listing says: a load balancer made, deleted, or given other groups.
LISTING_EVENTS = frozenset({"CreateLoadBalancer", "DeleteLoadBalancer", "SetSecurityGroups"})


def cut_read_by_arn(cut: int, load_balancers: int) -> bool:
    """Whether `cut` load balancers found cut are read again by ARN (20 a call) rather than by the
    listing of the region's `load_balancers` (400 a page): while they take no more calls than the
    listing has pages. (A call naming one deleted since is refused whole and its ARNs asked one by
    one: up to 20 more calls, the price of the case this read is for.)"""
    return math.ceil(cut / ELB_TAGS_PER_CALL) <= max(1, math.ceil(load_balancers / ELB_PAGE))


@dataclass(frozen=True)
class ListingTurn:
    """One check's decision: read the listing or not, and the asks it answers when it does."""

    read: bool
    why: str  # "no_queue" | "event" | "ceiling" | "first" | "skipped" | "cut" (read after all: a cut was seen)
    asked: int  # the asks counted when it was decided


class ListingClock:
    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling
        self._lock = threading.Lock()
        self._listed_at: float | None = None
        self._asked = 0  # events that asked for the listing, counted
        self._answered = 0  # the asks a completed listing has answered

    def want(self) -> None:
        """An event changed what the listing says: the next check reads it."""
        with self._lock:
            self._asked += 1

    def turn(self, now: float, queue_healthy: bool) -> ListingTurn:
        with self._lock:
            asked = self._asked
            if not queue_healthy:
                return ListingTurn(True, "no_queue", asked)
            if self._listed_at is None:
                return ListingTurn(True, "first", asked)
            if asked != self._answered:
                return ListingTurn(True, "event", asked)
            if now - self._listed_at >= self.ceiling:
                return ListingTurn(True, "ceiling", asked)
            return ListingTurn(False, "skipped", asked)

    def listed(self, turn: ListingTurn, now: float) -> None:
        """The listing `turn` asked for was read whole: the asks before it are answered (those that
        came while it was read ask for the next check's)."""
        with self._lock:
            self._listed_at = now
            self._answered = max(self._answered, turn.asked)
