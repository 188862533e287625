"""The daemon: a slow topology refresh and a fast rule check, each ending in a value, wired from the
pieces that do one job each and answering the probes.

Scheduling, signals and the HTTP server live in monitor.daemon.runner. The pieces: the state they share
(monitor.daemon.shared), keeping the topology (monitor.daemon.topology), the rule check and its deadline
(monitor.daemon.checks), reacting to AWS events (monitor.daemon.reactions) and saying who cut a path
(monitor.daemon.attributing). Daemon keeps the one API the runner, the surface, the demo and the tests use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from monitor.aws import AwsClients
from monitor.core.event_match import KnownRoles, Watched
from monitor.core.events import ApiEvent
from monitor.core.model import Topology
from monitor.core.settings import default_cycle_timeout
from monitor.daemon.attributing import Attributor
from monitor.daemon.checks import RuleChecks
from monitor.daemon.cycle import ClusterSource
from monitor.daemon.event_feed import EventFeed
from monitor.daemon.event_triggers import Coalescer
from monitor.daemon.health_watch import DEFAULT_SWEEP_SECONDS, HealthWatch
from monitor.daemon.ports import MetricsSink
from monitor.daemon.reactions import Reactions
from monitor.daemon.remediation import Remediator
from monitor.daemon.shared import Shared
from monitor.daemon.summary import CycleSummary
from monitor.daemon.topology import TopologyKeeper
from monitor.daemon.trail_lookups import TrailLookups

HEALTHY_WITHIN_INTERVALS = 3  # docs/reference.md: /healthz is 200 while the loop ran within three intervals


class Daemon:
    """State carried from cycle to cycle, in the pieces it wires: the topology (with the Kubernetes
    state read alongside it, when Kubernetes is on), the rule reader (it caches rule sources), the last
    known coverage of every path, the remediator (memory and history), and the times /healthz and
    /readyz answer from."""

    def __init__(self, clients: AwsClients, cluster: str, metrics: MetricsSink, interval: float,
                 topology_interval: float, monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, *, kube: ClusterSource | None = None,
                 remediator: Remediator | None = None, cycle_timeout: float | None = None,
                 feed: EventFeed | None = None, lookups: TrailLookups | None = None,
                 roles: KnownRoles | None = None, health_sweep: float = DEFAULT_SWEEP_SECONDS) -> None:
        deadline = cycle_timeout if cycle_timeout is not None else default_cycle_timeout(interval)
        self._shared = Shared(clients, cluster, metrics, interval, topology_interval, deadline, monotonic, wall,
                              remediator=remediator, feed=feed, lookups=lookups)
        self._reactions = Reactions(self._shared)
        self._keeper = TopologyKeeper(self._shared, kube, self._reactions.want_check)
        self._attributor = Attributor(self._shared, roles)
        self._health = HealthWatch(self._shared, health_sweep)
        self._checks = RuleChecks(self._shared, self._keeper, self._reactions, self._attributor, self._health)
        if feed is not None:
            feed.watched = self._reactions.watched
            feed.on_matched = self._reactions.on_events
            feed.ingresses_of_group = self._reactions.ingresses_of_group

    # -- what callers read and set ------------------------------------------------------------
    @property
    def topology(self) -> Topology | None:
        return self._shared.topology

    @property
    def deadline(self) -> float:
        """Seconds a rule check may run before it is abandoned."""
        return self._shared.deadline

    @property
    def feed(self) -> EventFeed | None:
        return self._shared.feed

    @property
    def lookups(self) -> TrailLookups | None:
        """Without a queue: CloudTrail lookups fill the attribution in later."""
        return self._shared.lookups

    @property
    def cycles(self) -> int:
        """Rule checks run so far (abandoned ones included)."""
        return self._checks.cycles

    @property
    def on_cycle(self) -> list[Callable[[CycleSummary], None]]:
        """Called with every CycleSummary (e.g. the demo's live view); an error in one is logged."""
        return self._checks.on_cycle

    @on_cycle.setter
    def on_cycle(self, listeners: list[Callable[[CycleSummary], None]]) -> None:
        self._checks.on_cycle = listeners

    @property
    def on_refresh_wanted(self) -> Callable[[str], None] | None:
        """Set by the scheduler so that a wanted refresh runs at once; without it the next
        run_once() refreshes first."""
        return self._reactions.on_refresh_wanted

    @on_refresh_wanted.setter
    def on_refresh_wanted(self, callback: Callable[[str], None] | None) -> None:
        self._reactions.on_refresh_wanted = callback

    @property
    def on_check_wanted(self) -> Callable[[str], None] | None:
        """Set by the scheduler so that an event that touched a watched resource is checked at once."""
        return self._reactions.on_check_wanted

    @on_check_wanted.setter
    def on_check_wanted(self, callback: Callable[[str], None] | None) -> None:
        self._reactions.on_check_wanted = callback

    # Reached into by tests: the abandoned checks still running, and the events' check coalescer.
    @property
    def _abandoned(self) -> list[threading.Thread]:
        return self._checks.abandoned

    @property
    def _event_checks(self) -> Coalescer:
        return self._reactions.event_checks

    # -- the two jobs -------------------------------------------------------------------------
    def refresh_topology(self, reason: str | None = None) -> Topology | None:
        """Re-discover ALBs, target groups, targets and ENIs: only the ALBs that came, went or
        changed their security groups when that is why, else (and when the topology interval has
        passed since the last full one) all of them. Never raises."""
        return self._keeper.refresh_topology(reason)

    def check(self) -> CycleSummary:
        """One rule check against the current topology (discovering it first if there is none), in
        a thread of its own that must finish by the cycle's deadline. Never raises."""
        return self._checks.check()

    def read_health(self) -> int:
        """Read the target health that is due (verdict changes, windows passed, the sweep), paced with
        discovery's budget; returns how many target groups were read. Never part of a check."""
        return self._health.tick()

    @property
    def on_health_due(self) -> Callable[[], None] | None:
        """Set by the scheduler so that a read a verdict change asks for is made at once."""
        return self._health.on_due

    @on_health_due.setter
    def on_health_due(self, callback: Callable[[], None] | None) -> None:
        self._health.on_due = callback

    def run_once(self) -> CycleSummary:
        """A refresh if one is due or was asked for, then a rule check: one step of the loop."""
        if self._shared.topology is None:
            self.refresh_topology("start")
        elif self._shared.wanted:
            self.refresh_topology()
        elif self._keeper.retry_due():
            self.refresh_topology("incomplete_topology")
        return self.check()

    # -- events and attribution ---------------------------------------------------------------
    def watched(self) -> Watched | None:
        """What the current topology depends on; None before the first discovery."""
        return self._reactions.watched()

    def want_check(self, reason: str) -> None:
        self._reactions.want_check(reason)

    def want_refresh(self, reason: str) -> None:
        self._reactions.want_refresh(reason)

    def reread_load_balancers(self, arns: Iterable[str]) -> None:
        """Ask for an update of these ALBs alone: each is described by its ARN and read again, or dropped if gone."""
        self._reactions.reread_load_balancers(arns)

    def _on_events(self, events: tuple[ApiEvent, ...]) -> None:
        """Matched events (what the feed hands on): monitor.daemon.reactions."""
        self._reactions.on_events(events)

    def roles(self) -> KnownRoles:
        """The callers' roles: from flags and the pod, and the controllers' IRSA roles Kubernetes shows."""
        return self._attributor.roles()

    # -- probes -------------------------------------------------------------------------------
    def health(self) -> tuple[bool, str]:
        shared = self._shared
        age = shared.monotonic() - shared.heartbeat
        limit = HEALTHY_WITHIN_INTERVALS * shared.interval
        if age <= limit:
            return True, f"ok: check loop active {age:.1f}s ago"
        return False, f"check loop last active {age:.1f}s ago, more than {HEALTHY_WITHIN_INTERVALS} intervals ({limit:g}s)"

    def ready(self) -> tuple[bool, str]:
        shared = self._shared
        blind = shared.blind
        if shared.reported and blind is None:
            return True, "ok: a check cycle has completed"
        if shared.reported:
            return False, f"the last check produced no verdict: {blind}"
        return False, "waiting for the first check cycle to complete"

    # -- shutdown -----------------------------------------------------------------------------
    def wait_idle(self, timeout: float) -> bool:
        """Wait until no cycle is running; False if one still is after `timeout` seconds."""
        return self._shared.wait_idle(timeout)
