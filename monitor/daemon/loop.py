"""The daemon's two cycles: a slow topology refresh and a fast rule check, each ending in a value.

Scheduling, signals and the HTTP server live in monitor.daemon.runner; this module only knows how to run
one cycle of each kind, what state to keep between them, and what to publish and log. A bad cycle
is logged and counted, and the next one runs as usual; so is a rule check still running at its
deadline, whose result is then unknown (it may still be blocked in an AWS call: it finishes in its
own thread, writes nothing more, and what it found is dropped).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import structlog

from monitor.aws import AwsClients, RuleReader, discover
from monitor.aws.discover import discover_load_balancers, listed_by_arn
from monitor.core import cancellation
from monitor.core import failures as failures_words
from monitor.core.attribution import ATTRIBUTED_CODES, attribute
from monitor.core.cluster_model import ClusterState
from monitor.core.evaluate import evaluate
from monitor.core.event_evidence import Sightings, read_rules
from monitor.core.event_match import KnownRoles, Watched
from monitor.core.events import ApiEvent
from monitor.core.ingress_join import join_ingresses
from monitor.core.memory import Memory
from monitor.core.model import Observation, ReadFailure, Report, Severity, Topology
from monitor.core.settings import default_cycle_timeout
from monitor.core.topology_delta import Delta, carry_topology, changed_security_groups, merge
from monitor.core.transitions import Coverage, Revocation, advance, revoked_load_balancers
from monitor.core.vanished import SeenBefore, doubt
from monitor.daemon.cycle import ClusterSource, Snapshot, this_cluster, with_kubernetes
from monitor.daemon.deadline import DEADLINE_CODE, FAILED_CODE, Cycle, PastDeadline, blind_report
from monitor.daemon.event_feed import EventFeed, attribution_off, needs_refresh
from monitor.daemon.event_triggers import (
    FULL_DISCOVERY_GAP_SECONDS,
    Coalescer,
    Gap,
    UnknownGate,
    ingresses_of_group,
    place,
    watched_by,
)
from monitor.daemon.ports import MetricsSink
from monitor.daemon.remediation import Outcome, Remediator
from monitor.daemon.summary import CycleSummary
from monitor.daemon.trail_lookups import TrailLookups

log = structlog.get_logger("monitor.daemon")

# An incomplete topology (some discovery read failed) is re-discovered by the next check, so the
# verdict is whole again one cycle after a short fault (a timeout, a throttled burst) ends; while
# discoveries keep failing the retries back off (1, 2, 4 intervals, then every 4, never later than
# the topology interval), so a throttled account is not sent a full discovery every cycle.
INCOMPLETE_TOPOLOGY_RETRY_INTERVALS = 1
INCOMPLETE_TOPOLOGY_MAX_RETRY_INTERVALS = 4
FIRST_DISCOVERY = "first discovery"  # the phase of a check that runs (or waits for) the first discovery
HEALTHY_WITHIN_INTERVALS = 3  # docs/reference.md: /healthz is 200 while the loop ran within three intervals
# Abandoned checks may stay blocked in botocore for a minute (3 attempts of up to 5 s connect and
# 15 s read): past this many still running, a new check is abandoned at once instead of adding a
# thread that would block in the same place.
MAX_ABANDONED_IN_FLIGHT = 3
# Why a check asks for a refresh when ALBs come, go or change their security groups: such a refresh
# re-reads only those ALBs (or drops them), unless the periodic full discovery is due.
NEW, GONE, CHANGED = "new_load_balancer", "load_balancer_gone", "security_groups_changed"
# Asked from outside the check (e.g. an AWS event naming an ALB whose target groups changed): the
# ALB is described by its ARN first, since the check's listing shows nothing new about it.
REREAD = "load_balancer_changed"
INCREMENTAL_REASONS = frozenset({NEW, GONE, CHANGED, REREAD})
FOLLOW_UPS = 2  # updates a refresh runs right after itself for changes asked for meanwhile


def lb_changes(topology: Topology, observation: Observation) -> frozenset[str]:
    """The load balancers this observation has and the topology lacks, or the other way round."""
    gone = frozenset() if observation.live_lb_arns is None else frozenset(
        lb.arn for lb in topology.load_balancers if lb.arn not in observation.live_lb_arns)
    return (observation.new_lb_arns - topology.known_lb_arns) | gone


def incomplete_retry_after(failed_refreshes: int, interval: float, topology_interval: float) -> float:
    """How long after the last of `failed_refreshes` consecutive incomplete discoveries to try again:
    one interval, doubling with each further failure up to four, never later than the topology
    interval."""
    intervals = min(INCOMPLETE_TOPOLOGY_RETRY_INTERVALS * 2 ** max(0, failed_refreshes - 1),
                    INCOMPLETE_TOPOLOGY_MAX_RETRY_INTERVALS)
    return min(topology_interval, intervals * interval)


def log_failed_reads(job: str, failures: tuple[ReadFailure, ...]) -> None:
    """One warning per distinct (operation, error code) a cycle met, however many calls failed."""
    for d in failures_words.distinct(failures):
        log.warning("aws_read_failed", job=job, service=d.service, operation=d.operation, code=d.code,
                    error_class=d.kind, calls=d.count, scope=d.scopes[0] if d.scopes else None,
                    message=d.first.message[:300])


class Daemon:
    """State carried from cycle to cycle: the topology (with the Kubernetes state read alongside
    it, when Kubernetes is on), the rule reader (it caches rule sources), the last known coverage of
    every path, the remediator (memory and history), and the times /healthz and /readyz answer from."""

    def __init__(self, clients: AwsClients, cluster: str, metrics: MetricsSink, interval: float,
                 topology_interval: float, monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, *, kube: ClusterSource | None = None,
                 remediator: Remediator | None = None, cycle_timeout: float | None = None,
                 feed: EventFeed | None = None, lookups: TrailLookups | None = None,
                 roles: KnownRoles | None = None) -> None:
        self._clients = clients
        self._cluster = cluster
        self._metrics = metrics
        self._interval = interval
        self._topology_interval = topology_interval
        self._deadline = cycle_timeout if cycle_timeout is not None else default_cycle_timeout(interval)
        self._monotonic = monotonic
        self._wall = wall
        self._reader = RuleReader(clients)
        self._kube = kube
        self._remediator = remediator
        self._cluster_state: ClusterState | None = None
        self._topology: Topology | None = None
        self._topology_at = 0.0
        self._failed_refreshes = 0  # consecutive refreshes that left the topology incomplete
        self._full_at = float("-inf")  # when the last full discovery ended: the backstop's clock
        self._base_failures: tuple[ReadFailure, ...] = ()  # the last full discovery's failures
        self._doubted: frozenset[str] = frozenset()  # emptied by the last discovery's answers: monitor.core.vanished
        self._coverage = Coverage()
        self._wanted: str | None = None
        self._asked: dict[str, str] = {}  # ALB -> NEW, GONE or CHANGED: what a pending refresh will see to
        self._refresh_lock = threading.Lock()
        self._ask_lock = threading.Lock()
        self._acting = threading.Lock()  # held while a check remediates: no two at once
        self._abandoned: list[threading.Thread] = []
        self._said_waiting = False  # `check_waiting_for_first_discovery` is logged once
        self._busy = threading.Condition()
        self._running = 0
        self._heartbeat = monotonic()
        self._reported = False
        self._blind: str | None = None  # why the last check produced no verdict, if it did not
        self.cycles = 0
        # Set by the scheduler so that a wanted refresh runs at once; without it the next
        # run_once() refreshes first.
        self.on_refresh_wanted: Callable[[str], None] | None = None
        # Set by the scheduler so that an event that touched a watched resource is checked at once.
        self.on_check_wanted: Callable[[str], None] | None = None
        self._checks_asked = 0
        self._check_after_refresh = False
        self._attributed: dict[tuple[str, str, str], None] = {}  # (event id, ALB, group) announced
        self._seen = Sightings()  # the rule ids the checks read: what events are held against
        self._seen_lock = threading.Lock()
        # What events may ask for, and how often (monitor.daemon.event_triggers).
        self._event_checks = Coalescer(lambda: self.want_check("event"), monotonic=monotonic)
        self._event_discoveries = Gap(FULL_DISCOVERY_GAP_SECONDS)
        self._unknown_lbs = UnknownGate()
        self.feed = feed
        self.lookups = lookups  # without a queue: CloudTrail lookups fill the attribution in later
        self._roles = roles or KnownRoles()  # from flags and the pod's own role
        if feed is not None:
            feed.watched = self.watched
            feed.on_matched = self._on_events
            feed.ingresses_of_group = self._ingresses_of_group
        # Called with every CycleSummary (e.g. the demo's live view); an error in one is logged.
        self.on_cycle: list[Callable[[CycleSummary], None]] = []

    @property
    def topology(self) -> Topology | None:
        return self._topology

    @property
    def deadline(self) -> float:
        """Seconds a rule check may run before it is abandoned."""
        return self._deadline

    # -- the two jobs -------------------------------------------------------------------------
    def refresh_topology(self, reason: str | None = None) -> Topology | None:
        """Re-discover ALBs, target groups, targets and ENIs: only the ALBs that came, went or
        changed their security groups when that is why, else (and when the topology interval has
        passed since the last full one) all of them. Never raises."""
        with self._refresh_lock:
            check_after, self._check_after_refresh = self._check_after_refresh, False
            try:
                topology = self._refresh_once(reason)
                # Changes asked for while this one ran: a wake of the refresh job now would be skipped
                # (it is still running), so they are seen to here, a bounded number of times.
                for _ in range(FOLLOW_UPS):
                    with self._ask_lock:
                        pending = next(iter(self._asked.values()), None)
                    if pending is None or self._topology is None:
                        break
                    topology = self._refresh_once(pending)
                return topology
            finally:
                if check_after:  # an event changed the topology: check against the new one at once
                    self.want_check("event")

    def _refresh_once(self, reason: str | None) -> Topology | None:
        with self._ask_lock:
            asked = dict(self._asked)  # what this discovery will see to; later asks stay
        try:
            why = reason or self._wanted or "scheduled"
            if (why in INCREMENTAL_REASONS and asked and self._topology is not None
                    and self._monotonic() - self._full_at < self._topology_interval):
                return self._update(why, asked)
            return self._refresh(reason)
        finally:
            with self._ask_lock:
                for arn, kind in asked.items():
                    if self._asked.get(arn) == kind:
                        del self._asked[arn]

    def _update(self, reason: str, asked: dict[str, str]) -> Topology | None:
        """The incremental refresh: read the ALBs new or changed (from the check's listing), drop
        those gone once a read of them by ARN confirms it (a listing that lost them proves
        nothing), merge into the topology."""
        with self._working():
            self._wanted = None
            started = self._monotonic()
            current = self._topology
            assert current is not None
            entries = self._reader.listed({arn for arn, kind in asked.items() if kind in (NEW, CHANGED)})
            gone: frozenset[str] = frozenset()
            listed = {e["LoadBalancerArn"] for e in entries}
            reread = {arn for arn, kind in asked.items() if kind == REREAD and arn not in listed}
            # Unlisted ALBs are described by ARN with the re-reads: dropped only when AWS says they are
            # gone; still there, they stay as they were (the next listing judges them again).
            by_arn = sorted(reread | {arn for arn, kind in asked.items() if kind == GONE})
            failures: list[ReadFailure] = []
            try:
                with self._clients.pacer.discovering(), self._clients.counter.scope() as tally:
                    if by_arn:
                        more, vanished = listed_by_arn(self._clients, by_arn, failures)
                        entries = entries + [e for e in more if e.get("LoadBalancerArn") in reread]
                        gone = frozenset(vanished)
                    fresh = (discover_load_balancers(self._clients, self._cluster, entries) if entries
                             else Topology(self._cluster, current.region, (), (), ()))
            except Exception:  # one bad refresh must not end the loop
                log.exception("topology_failed", reason=reason)
                self._metrics.count_cycle_failure("topology")
                return current
            if failures:  # ALBs that could not even be described: asked again at the next update
                fresh = replace(fresh, failures=tuple(failures) + fresh.failures)
            reread = frozenset(e["LoadBalancerArn"] for e in entries)
            topology = self._doubt(merge(current, Delta(fresh, reread, gone, self._base_failures)))
            if self._cluster_state is not None and self._cluster_state.ingresses is not None:
                topology = join_ingresses(topology, self._cluster_state)
            self._topology = topology
            self._topology_at = self._monotonic()
            self._metrics.count_topology_refresh(reason)
            log.info("topology_updated", reason=reason, read=len(reread), dropped=len(gone),
                     load_balancers=len(topology.load_balancers), failed_reads=len(fresh.failures),
                     api_calls=tally.calls, duration_seconds=round(self._monotonic() - started, 3))
            return topology

    def _refresh(self, reason: str | None) -> Topology | None:
        with self._working():
            reason = reason or self._wanted or "scheduled"
            self._wanted = None
            started = self._monotonic()
            try:
                state = self._read_kubernetes()
                with self._clients.pacer.discovering(), self._clients.counter.scope() as tally:
                    fresh = discover(self._clients, self._cluster)
            except Exception:  # one bad refresh must not end the loop
                log.exception("topology_failed", reason=reason)
                self._metrics.count_cycle_failure("topology")
                return self._topology
            log_failed_reads("topology", fresh.failures)
            topology = self._doubt(carry_topology(self._topology, fresh))
            self._base_failures = topology.failures
            self._full_at = self._monotonic()
            if state is not None:
                state = this_cluster(state, fresh, self._cluster)
                # Ingress names are slow to change: keep the last ones read while the API is away.
                names = state if state.ingresses is not None or self._cluster_state is None else self._cluster_state
                self._cluster_state = state
                topology = join_ingresses(topology, names)
            self._topology = topology
            self._topology_at = self._monotonic()
            self._failed_refreshes = self._failed_refreshes + 1 if topology.failures else 0
            self._metrics.count_topology_refresh(reason)
            log.info("topology_refreshed", reason=reason,
                     load_balancers=len(fresh.load_balancers), target_groups=len(fresh.target_groups),
                     targets=sum(len(tg.targets or ()) for tg in fresh.target_groups),
                     security_groups=len(fresh.security_groups), failed_reads=len(fresh.failures),
                     kubernetes=None if state is None else not state.failures, api_calls=tally.calls,
                     duration_seconds=round(self._monotonic() - started, 3))
            return self._topology

    def check(self) -> CycleSummary:
        """One rule check against the current topology (discovering it first if there is none), in
        a thread of its own that must finish by the cycle's deadline. Publishes the report to the
        metrics and logs a `check_cycle` event; past the deadline, publishes that the result is
        unknown and logs `check_abandoned` instead. Never raises."""
        asked = self._checks_asked
        with self._working():
            started = self._monotonic()
            self._heartbeat = started
            cycle = Cycle(started + self._deadline, self._monotonic)
            summary = self._run_in_time(cycle)
            # The first discovery, when the check ran it, is the topology's time, not the check's.
            duration = self._monotonic() - started - summary.discovery_seconds
            summary = replace(summary, duration_seconds=duration)
            if not (summary.abandoned and cycle.phase == FIRST_DISCOVERY):
                self._metrics.observe_cycle(duration)
            self._heartbeat = self._monotonic()
            self.cycles += 1
            if summary.ok:
                log.info("check_cycle", **summary.fields())
        if summary.refresh_wanted:
            self.want_refresh(summary.refresh_wanted)
        if self._checks_asked != asked and self.on_check_wanted is not None:
            # An event arrived during this check, which may have read the rules before the change:
            # the scheduler skipped the run it asked for while this one ran, so ask again.
            self.on_check_wanted("event")
        for listener in self.on_cycle:
            try:
                listener(summary)
            except Exception:
                log.exception("cycle_listener_failed")
        return summary

    def run_once(self) -> CycleSummary:
        """A refresh if one is due or was asked for, then a rule check: one step of the loop."""
        if self._topology is None:
            self.refresh_topology("start")
        elif self._wanted:
            self.refresh_topology()
        elif self._retry_due():
            self.refresh_topology("incomplete_topology")
        return self.check()

    # -- the deadline ---------------------------------------------------------------------------
    def _run_in_time(self, cycle: Cycle) -> CycleSummary:
        """Run the check in its own thread and wait for it until the deadline, then abandon it."""
        self._abandoned = [t for t in self._abandoned if t.is_alive()]
        if len(self._abandoned) >= MAX_ABANDONED_IN_FLIGHT:
            cycle.phase = "not started: earlier abandoned checks are still blocked"
            cycle.abandon()
            return self._abandon(cycle)
        worker = threading.Thread(target=self._run_cycle, args=(cycle,), name="check-cycle", daemon=True)
        worker.start()
        while not cycle.done.is_set():
            # The loop is alive while it waits: it will abandon the check at its deadline, so a
            # long first discovery or a slow AWS is not a reason for a liveness restart.
            self._heartbeat = self._monotonic()
            left = cycle.remaining()
            if left <= 0 and cycle.abandon():
                self._abandoned.append(worker)
                return self._abandon(cycle)
            cycle.done.wait(min(left, 0.25) if left > 0 else 0.01)
        if cycle.summary is None and cycle.abandon():  # it stopped itself, past its deadline
            return self._abandon(cycle)
        return cycle.summary or CycleSummary(report=None, error="the check ended without a result")

    def _run_cycle(self, cycle: Cycle) -> None:
        summary: CycleSummary | None = None
        try:
            # Only this thread's requests are the check's: not a discovery's running beside it.
            # Its reads stop at their next page once the cycle is abandoned (or past its deadline).
            with self._clients.counter.scope() as tally, cancellation.bound(cycle.in_time):
                summary = self._check(cycle)
            summary = replace(summary, api_calls=tally.calls)
        except cancellation.Cancelled:  # PastDeadline too
            pass  # abandoned: check() has published that the result is unknown
        except Exception as exc:  # one bad cycle must not end the loop
            try:
                with cycle.commit():
                    log.exception("check_failed", phase=cycle.phase)
                    self._metrics.count_cycle_failure("check")
                    # Blind like an abandoned check: the last good verdict must not stand for this one.
                    error = f"{type(exc).__name__}: {exc}"
                    self._go_blind(f"the check failed while {cycle.phase} ({error[:200]})", FAILED_CODE)
                    summary = CycleSummary(report=None, error=error)
            except PastDeadline:
                pass
        finally:
            cycle.summary = summary
            cycle.done.set()

    def _abandon(self, cycle: Cycle) -> CycleSummary:
        why = f"the check did not finish within {self._deadline:g}s ({cycle.phase})"
        self._go_blind(why, DEADLINE_CODE)
        if cycle.phase == FIRST_DISCOVERY and self._topology is None:
            # A first discovery of minutes (a large account, paced) is start-up, not a failing
            # check: the result is unknown all the same, but said once and not counted.
            if not self._said_waiting:
                log.info("check_waiting_for_first_discovery", deadline_seconds=self._deadline)
                self._said_waiting = True
        else:
            self._metrics.count_cycle_failure("check")
            log.warning("check_abandoned", deadline_seconds=self._deadline, phase=cycle.phase,
                        still_running=len(self._abandoned))
        return CycleSummary(report=None, error=f"{DEADLINE_CODE}: {why}", abandoned=True)

    def _go_blind(self, why: str, code: str) -> None:
        """Publish that this check has no verdict: every ALB unknown, observation incomplete, not ready."""
        self._blind = why
        self._metrics.publish(blind_report(self._topology, self._cluster, self._clients.region, why, code), self._wall())

    def _wait_for(self, lock: threading.Lock, cycle: Cycle, phase: str) -> None:
        """Take `lock` within the cycle's deadline, or stop the cycle."""
        cycle.phase = phase
        if not lock.acquire(timeout=max(cycle.remaining(), 0.0)):
            raise PastDeadline(phase)

    def _check(self, cycle: Cycle) -> CycleSummary:
        discovering = 0.0
        if self._topology is None:
            # The first discovery, or wait for the one under way (a check abandoned during it
            # leaves it running): never a second one at once.
            began = self._monotonic()
            self._wait_for(self._refresh_lock, cycle, FIRST_DISCOVERY)
            try:
                if self._topology is None:
                    with cancellation.shielded():  # the next check waits for it: it must end
                        self._refresh("start")
            finally:
                self._refresh_lock.release()
            discovering = self._monotonic() - began
        topology = self._topology
        if topology is None:
            raise RuntimeError("no topology: the first discovery failed")
        # An abandoned check may still be writing: read the rules after its writes, not before.
        self._wait_for(self._acting, cycle, "waiting for an abandoned check's writes")
        self._acting.release()
        cycle.check("reading rules")
        observation = self._reader.read(topology)
        log_failed_reads("check", observation.failures)
        cycle.check("evaluating")
        aws_report = evaluate(topology, observation)
        report = with_kubernetes(aws_report, Snapshot(topology, observation, self._cluster_state))
        outcomes: tuple[Outcome, ...] = ()
        if self._remediator is not None:
            self._wait_for(self._acting, cycle, "remediating")
            try:
                cycle.check("remediating")
                report, outcomes = self._remediator.act(aws_report, report, observation, self._wall(),
                                                        in_time=cycle.in_time)
            finally:
                self._acting.release()
        cycle.check("attributing")
        with cycle.commit():
            # Inside the commit: an abandoned check's late reads must neither refute an outage
            # window nor announce one, nor overwrite what a newer check read.
            report = self._attribute(report, observation)
            self._coverage, revocations = advance(self._coverage, report)
            self._metrics.publish(report, self._wall())
            self._metrics.count_revocations(revoked_load_balancers(revocations))
            self._reported, self._blind = True, None
            for r in revocations:
                log.warning("path_revoked", load_balancer=r.load_balancer, target_group=r.target_group_arn,
                            target=r.target, ports=list(r.ports), missing_ports=list(r.missing_ports),
                            security_groups=list(r.security_groups))
            self._announce_attributions(report)
        wanted = self._refresh_for(observation)
        if wanted is None and not self._refresh_lock.locked() and self._retry_due():
            # In the topology job, not here: a full discovery of a large account (paced) outlasts a
            # check's deadline, and the checks go on meanwhile against what is known.
            wanted = "incomplete_topology"
        return CycleSummary(report=report, revocations=revocations, refresh_wanted=wanted, remediations=outcomes,
                            discovery_seconds=discovering)

    def _refresh_for(self, observation: Observation) -> str | None:
        """Why to re-discover now, once per ALB come, gone or with other security groups: the checks
        that see it again before the discovery asked for has finished (or that read against the
        topology before it) do not ask again."""
        with self._ask_lock:
            current = self._topology
            if current is None:
                return None
            live = observation.live_lb_arns
            changes = {arn: (GONE if live is not None and arn not in live else NEW)
                       for arn in lb_changes(current, observation)}
            changes.update((arn, CHANGED) for arn in changed_security_groups(current, observation)
                           if arn not in changes)
            fresh = {arn: kind for arn, kind in changes.items() if self._asked.get(arn) != kind}
            if not fresh:
                return None
            self._asked.update(fresh)
            kinds = set(fresh.values())
            return NEW if NEW in kinds else GONE if GONE in kinds else CHANGED

    def _doubt(self, topology: Topology) -> Topology:
        """Target groups or ALBs one answer emptied, where earlier reads or remembered paths had
        targets: unknown until the next discovery's read agrees (monitor.core.vanished)."""
        memory = self._remediator.memory if self._remediator is not None else Memory()
        seen = SeenBefore.of(self._topology, ((k.load_balancer_arn, k.target_group_arn) for k, _ in memory.paths))
        topology, self._doubted = doubt(topology, seen, self._doubted)
        return topology

    def _retry_due(self) -> bool:
        """True when the topology is incomplete and its retry (with backoff) has come."""
        if self._topology is None or not self._topology.failures:
            return False
        delay = incomplete_retry_after(self._failed_refreshes, self._interval, self._topology_interval)
        # Half an interval of slack: a scheduler's cycle may start a little early.
        return self._monotonic() - self._topology_at >= delay - self._interval / 2

    def _read_kubernetes(self) -> ClusterState | None:
        """The slow-changing Kubernetes state, read with the topology. The reader turns an API that
        refuses or does not answer into failures (KUBERNETES_UNAVAILABLE): the check goes on AWS-only."""
        if self._kube is None:
            return None
        state = self._kube.read()
        if state.failures:
            log.warning("kubernetes_unavailable", failed_reads=len(state.failures),
                        first=f"{state.failures[0].operation}: {state.failures[0].code}")
        return state

    # -- events and attribution ---------------------------------------------------------------
    def watched(self) -> Watched | None:
        """What the current topology depends on; None before the first discovery."""
        return None if self._topology is None else watched_by(self._topology)

    def want_check(self, reason: str) -> None:
        self._checks_asked += 1
        if self.on_check_wanted is not None:
            self.on_check_wanted(reason)

    def _on_events(self, events: tuple[ApiEvent, ...]) -> None:
        """Matched events: check the rules soon (one check for a burst); an ALB, target group or ENI
        change first reads again the ALBs it concerns, by ARN even when the topology does not know
        them; only events naming nothing placeable ask for a full discovery, at most once a minute."""
        changes = [e for e in events if needs_refresh(e)]
        topology = self._topology
        if not changes or topology is None:
            self._event_checks.ask()
            return
        watched = watched_by(topology)
        placement = place(topology, changes, watched.account, watched.region)
        now = self._monotonic()
        arns = set(placement.known) | self._unknown_lbs.admit(placement.unknown, now)
        full = placement.unplaced and self._event_discoveries.admit(now)
        if not arns and not full:
            self._event_checks.ask()  # nothing to read again (or not now): check against what is known
            return
        self._check_after_refresh = True
        if full:
            self.want_refresh("event")
        if arns:
            self.reread_load_balancers(arns)

    def roles(self) -> KnownRoles:
        """The callers' roles: from flags and the pod, and the controllers' IRSA roles Kubernetes shows."""
        base = self._roles
        state = self._cluster_state
        if state is None:
            return base
        v2 = {c.role_arn for c in state.controllers_of("v2") if c.role_arn}
        v1 = {c.role_arn for c in state.controllers_of("v1") if c.role_arn}
        return replace(base, v2_controller=base.v2_controller | v2, v1_controller=base.v1_controller | v1)

    def _attribute(self, report: Report, observation: Observation) -> Report:
        """Events held against this check's reads: windows they confirm, and who cut what they saw go."""
        memory = self._remediator.memory if self._remediator is not None else Memory()
        events = self.feed.recent() if self.feed is not None else self.lookups.recent() if self.lookups else ()
        with self._seen_lock:  # a check abandoned past its deadline may still be here
            now = self._wall()
            self._seen.saw(read_rules(observation), observation.read_groups, now)
            if self.feed is not None:
                self.feed.saw_rules(self._seen, now)
            report = attribute(report, memory, events, self.roles(), self._seen)
        if self.lookups is not None:
            for finding in report.findings:
                if finding.code in ATTRIBUTED_CODES and finding.security_group:
                    if finding.attribution is None:
                        self.lookups.request(finding.security_group)
                    else:
                        self.lookups.done(finding.security_group)
        failure = self.feed.failure if self.feed is not None else None
        if failure is None:
            return report
        return replace(report, findings=report.findings + (attribution_off(self.feed.queue_url, failure.code),))

    def _announce_attributions(self, report: Report) -> None:
        """Once per event and finding: the log event, the metric, and an Event on the Ingress."""
        lbs = {lb.name: lb for lb in report.load_balancers}
        for finding in report.findings:
            a = finding.attribution
            if a is None:
                continue
            key = (a.event_id, finding.load_balancer or "", finding.security_group or "")
            if key in self._attributed:
                continue
            self._attributed[key] = None
            while len(self._attributed) > 10_000:
                self._attributed.pop(next(iter(self._attributed)))
            self._metrics.count_attributed(a.actor_kind)
            log.warning("revocation_attributed", code=finding.code, load_balancer=finding.load_balancer,
                        security_group=finding.security_group, rule=finding.rule, principal=a.principal,
                        actor_kind=a.actor_kind, event_name=a.event_name, event_id=a.event_id,
                        event_time=a.event_time)
            lb = lbs.get(finding.load_balancer or "")
            sink = self.feed.events if self.feed is not None else None
            if sink is not None and lb is not None and lb.ingress and self.feed.may_post():
                sink.record(lb.ingress_namespace, lb.ingress, "RevocationAttributed",
                            f"{finding.code} on {finding.security_group}: rule {finding.rule or 'unknown'} was "
                            f"removed by {a.principal} ({a.actor_kind}) with {a.event_name} (event {a.event_id}).",
                            True, self._wall())

    def _ingresses_of_group(self, group: str) -> list[tuple[str, str]]:
        return [] if self._topology is None else ingresses_of_group(self._topology, group)

    def reread_load_balancers(self, arns: Iterable[str]) -> None:
        """Ask for an update of these ALBs alone (e.g. an AWS event says their target groups or
        listeners changed): each is described by its ARN and read again, or dropped if gone."""
        with self._ask_lock:
            fresh = {arn: REREAD for arn in arns if arn not in self._asked}
            self._asked.update(fresh)
        if fresh:
            self.want_refresh(REREAD)

    def want_refresh(self, reason: str) -> None:
        self._wanted = reason
        if self.on_refresh_wanted is not None:
            self.on_refresh_wanted(reason)

    # -- probes -------------------------------------------------------------------------------
    def health(self) -> tuple[bool, str]:
        age = self._monotonic() - self._heartbeat
        limit = HEALTHY_WITHIN_INTERVALS * self._interval
        if age <= limit:
            return True, f"ok: check loop active {age:.1f}s ago"
        return False, f"check loop last active {age:.1f}s ago, more than {HEALTHY_WITHIN_INTERVALS} intervals ({limit:g}s)"

    def ready(self) -> tuple[bool, str]:
        blind = self._blind
        if self._reported and blind is None:
            return True, "ok: a check cycle has completed"
        if self._reported:
            return False, f"the last check produced no verdict: {blind}"
        return False, "waiting for the first check cycle to complete"

    # -- shutdown -----------------------------------------------------------------------------
    def wait_idle(self, timeout: float) -> bool:
        """Wait until no cycle is running; False if one still is after `timeout` seconds."""
        with self._busy:
            return self._busy.wait_for(lambda: self._running == 0, timeout)

    @contextmanager
    def _working(self) -> Iterator[None]:
        with self._busy:
            self._running += 1
        try:
            yield
        finally:
            with self._busy:
                self._running -= 1
                self._busy.notify_all()
