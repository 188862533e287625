"""What the daemon's pieces (topology, checks, reactions, attribution) share between cycles: the topology
and the Kubernetes state read with it, the refreshes asked for, the locks that guard them, and the times
the probes answer from.

One object, handed to every piece, so that none of them reaches into another for state. Which lock
guards what is said on the class.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog

from monitor.aws import AwsClients, RuleReader
from monitor.core import failures as failures_words
from monitor.core.cluster_model import ClusterState
from monitor.core.memory import Memory
from monitor.core.model import ReadFailure, Topology
from monitor.daemon.event_feed import EventFeed
from monitor.daemon.listing import ListingClock
from monitor.daemon.ports import MetricsSink
from monitor.daemon.remediation import Remediator
from monitor.daemon.trail_lookups import TrailLookups

# The pieces of the loop (topology, checks, reactions, attribution) log under one logger name,
# `monitor.daemon`: users and tests read the `logger` field.
log = structlog.get_logger("monitor.daemon")

# Why a check asks for a refresh when ALBs come, go or change their security groups: such a refresh
# re-reads only those ALBs (or drops them), unless the periodic full discovery is due.
NEW, GONE, CHANGED = "new_load_balancer", "load_balancer_gone", "security_groups_changed"
# Asked from outside the check (e.g. an AWS event naming an ALB whose target groups changed): the
# ALB is described by its ARN first, since the check's listing shows nothing new about it.
REREAD = "load_balancer_changed"
INCREMENTAL_REASONS = frozenset({NEW, GONE, CHANGED, REREAD})


def log_failed_reads(job: str, failures: tuple[ReadFailure, ...]) -> None:
    """One warning per distinct (operation, error code) a cycle met, however many calls failed."""
    for d in failures_words.distinct(failures):
        log.warning("aws_read_failed", job=job, service=d.service, operation=d.operation, code=d.code,
                    error_class=d.kind, calls=d.count, scope=d.scopes[0] if d.scopes else None,
                    message=d.first.message[:300])


class Shared:
    """The daemon's state that more than one piece reads or writes. Which lock guards what:
    `refresh_lock` is held by a refresh from start to end (and by a check running or awaiting the first
    discovery, or reading the few new load balancers its listing shows, taken only when free);
    `ask_lock` guards `asked`; `acting` is held while a check remediates (no two at once, and a new
    check reads the rules only after an abandoned one's writes). The rest is read and written
    without a lock, one attribute at a time (the topology is replaced whole, never changed in place)."""

    def __init__(self, clients: AwsClients, cluster: str, metrics: MetricsSink, interval: float,
                 topology_interval: float, deadline: float, monotonic: Callable[[], float],
                 wall: Callable[[], float], *, remediator: Remediator | None, feed: EventFeed | None,
                 lookups: TrailLookups | None) -> None:
        self.clients = clients
        self.cluster = cluster
        self.metrics = metrics
        self.interval = interval
        self.topology_interval = topology_interval
        self.deadline = deadline  # seconds a rule check may run before it is abandoned
        self.monotonic = monotonic
        self.wall = wall
        self.reader = RuleReader(clients)  # one for the refreshes and the checks: it caches rule sources
        self.remediator = remediator
        self.feed = feed
        self.lookups = lookups  # without a queue: CloudTrail lookups fill the attribution in later
        # When a check reads the load balancer listing: every check, unless the queue is healthy.
        self.listing = ListingClock(ceiling=topology_interval)
        self.topology: Topology | None = None
        self.cluster_state: ClusterState | None = None
        self.refresh_lock = threading.Lock()
        self.ask_lock = threading.Lock()
        self.acting = threading.Lock()
        self.wanted: str | None = None  # why the next refresh runs, when one was asked for
        self.asked: dict[str, str] = {}  # ALB -> NEW, GONE, CHANGED or REREAD: what a pending refresh will see to
        self.check_after_refresh = False  # an event asked for a refresh: check against its topology at once
        self.heartbeat = monotonic()
        self.reported = False
        self.blind: str | None = None  # why the last check produced no verdict, if it did not
        self._busy = threading.Condition()
        self._running = 0

    def queue_healthy(self) -> bool:
        return self.feed is not None and self.feed.healthy(self.wall())

    def memory(self) -> Memory:
        """The remediator's memory of paths, or an empty one when nothing remediates."""
        return self.remediator.memory if self.remediator is not None else Memory()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no cycle is running; False if one still is after `timeout` seconds."""
        with self._busy:
            return self._busy.wait_for(lambda: self._running == 0, timeout)

    @contextmanager
    def working(self) -> Iterator[None]:
        """A cycle (check or refresh) runs inside this: wait_idle waits for it."""
        with self._busy:
            self._running += 1
        try:
            yield
        finally:
            with self._busy:
                self._running -= 1
                self._busy.notify_all()
