"""How the daemon reacts to AWS events and to asks from inside it: a check soon (one for a burst), a
re-read of the ALBs an event concerns, or a full discovery, each handed to the scheduler's callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from monitor.core.event_match import Watched
from monitor.core.events import ApiEvent
from monitor.daemon.event_feed import needs_refresh
from monitor.daemon.event_triggers import (
    FULL_DISCOVERY_GAP_SECONDS,
    Coalescer,
    Gap,
    UnknownGate,
    ingresses_of_group,
    place,
    watched_by,
)
from monitor.daemon.listing import LISTING_EVENTS
from monitor.daemon.shared import REREAD, Shared


class Reactions:
    """The asks for a check or a refresh, and what events may ask for, and how often
    (monitor.daemon.event_triggers)."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        # Set by the scheduler so that a wanted refresh runs at once; without it the next
        # run_once() refreshes first.
        self.on_refresh_wanted: Callable[[str], None] | None = None
        # Set by the scheduler so that an event that touched a watched resource is checked at once.
        self.on_check_wanted: Callable[[str], None] | None = None
        self.checks_asked = 0  # a check that sees this change while it runs asks again when it ends
        self.event_checks = Coalescer(lambda: self.want_check("event"), monotonic=shared.monotonic)
        self._event_discoveries = Gap(FULL_DISCOVERY_GAP_SECONDS)
        self._unknown_lbs = UnknownGate()

    def watched(self) -> Watched | None:
        """What the current topology depends on; None before the first discovery."""
        topology = self._shared.topology
        return None if topology is None else watched_by(topology)

    def want_check(self, reason: str) -> None:
        self.checks_asked += 1
        if self.on_check_wanted is not None:
            self.on_check_wanted(reason)

    def want_refresh(self, reason: str) -> None:
        self._shared.wanted = reason
        if self.on_refresh_wanted is not None:
            self.on_refresh_wanted(reason)

    def reread_load_balancers(self, arns: Iterable[str]) -> None:
        """Ask for an update of these ALBs alone (e.g. an AWS event says their target groups or
        listeners changed): each is described by its ARN and read again, or dropped if gone."""
        shared = self._shared
        with shared.ask_lock:
            fresh = {arn: REREAD for arn in arns if arn not in shared.asked}
            shared.asked.update(fresh)
        if fresh:
            self.want_refresh(REREAD)

    def on_events(self, events: tuple[ApiEvent, ...]) -> None:
        """Matched events: check the rules soon (one check for a burst); an ALB, target group or ENI
        change first reads again the ALBs it concerns, by ARN even when the topology does not know
        them; only events naming nothing placeable ask for a full discovery, at most once a minute."""
        if any(e.event_name in LISTING_EVENTS for e in events):
            self._shared.listing.want()  # load balancers came, went or changed groups: the next check lists
        changes = [e for e in events if needs_refresh(e)]
        topology = self._shared.topology
        if not changes or topology is None:
            self.event_checks.ask()
            return
        watched = watched_by(topology)
        placement = place(topology, changes, watched.account, watched.region)
        now = self._shared.monotonic()
        arns = set(placement.known) | self._unknown_lbs.admit(placement.unknown, now)
        full = placement.unplaced and self._event_discoveries.admit(now)
        if not arns and not full:
            self.event_checks.ask()  # nothing to read again (or not now): check against what is known
            return
        self._shared.check_after_refresh = True
        if full:
            self.want_refresh("event")
        if arns:
            self.reread_load_balancers(arns)

    def ingresses_of_group(self, group: str) -> list[tuple[str, str]]:
        topology = self._shared.topology
        return [] if topology is None else ingresses_of_group(topology, group)
