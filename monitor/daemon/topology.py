"""Keeping the topology (ALBs, target groups, targets, ENIs, and the Kubernetes state read with them):
full discoveries, incremental updates for the ALBs asked about, and when an incomplete one is retried."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from monitor.aws import discover
from monitor.aws.discover import discover_load_balancers, listed_by_arn
from monitor.aws.rules import Listed
from monitor.core import cancellation
from monitor.core.cluster_model import ClusterState
from monitor.core.ingress_join import join_ingresses
from monitor.core.model import Observation, ReadFailure, Topology
from monitor.core.topology_delta import Delta, carry_topology, changed_security_groups, merge, with_other_groups
from monitor.core.vanished import SeenBefore, doubt
from monitor.daemon import heap
from monitor.daemon.cycle import ClusterSource, this_cluster
from monitor.daemon.shared import CHANGED, GONE, INCREMENTAL_REASONS, NEW, REREAD, Shared, log, log_failed_reads

# An incomplete topology (some discovery read failed) is discovered again before the next check, so the
# verdict is whole again one cycle after a short fault (a timeout, a throttled burst) ends; while
# discoveries keep failing the retries back off (1, 2, 4 intervals, then every 4, never later than
# the topology interval), so a throttled account is not sent a full discovery every cycle.
INCOMPLETE_TOPOLOGY_RETRY_INTERVALS = 1
INCOMPLETE_TOPOLOGY_MAX_RETRY_INTERVALS = 4
FOLLOW_UPS = 2  # updates a refresh runs right after itself for changes asked for meanwhile
# A check whose listing shows up to this many load balancers new or with other security groups reads
# them itself before its rules (about six requests each), so that it judges them at once; more are
# read by the refresh job beside the checks.
READ_IN_CHECK = 5


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


class TopologyKeeper:
    """Writes `shared.topology` and `shared.cluster_state`; keeps what only the refreshes need: when the
    last full discovery ended and what it failed to read, the failed refreshes in a row, the doubts."""

    def __init__(self, shared: Shared, kube: ClusterSource | None, want_check: Callable[[str], None]) -> None:
        self._shared = shared
        self._kube = kube
        self._want_check = want_check  # after a refresh an event asked for: check against the new topology
        self._topology_at = 0.0
        self._failed_refreshes = 0  # consecutive refreshes that left the topology incomplete
        self._full_at = float("-inf")  # when the last full discovery ended: the backstop's clock
        self._base_failures: tuple[ReadFailure, ...] = ()  # the last full discovery's failures
        self._doubted: frozenset[str] = frozenset()  # emptied by the last discovery's answers: monitor.core.vanished
        self._updates = 0  # incremental updates merged whole (no read of them failed)
        # What checks read themselves since the last full discovery: one whose read failed or was cut
        # short by its deadline is left to the refresh job, not tried by every check after it.
        self._read_in_check: set[str] = set()

    def refresh_topology(self, reason: str | None = None) -> Topology | None:
        """Re-discover ALBs, target groups, targets and ENIs: only the ALBs that came, went or
        changed their security groups when that is why, else (and when the topology interval has
        passed since the last full one) all of them. Never raises."""
        shared = self._shared
        with shared.refresh_lock:
            check_after, shared.check_after_refresh = shared.check_after_refresh, False
            updates = self._updates
            try:
                topology = self._refresh_once(reason)
                # Changes asked for while this one ran: a wake of the refresh job now would be skipped
                # (it is still running), so they are seen to here, a bounded number of times.
                for _ in range(FOLLOW_UPS):
                    with shared.ask_lock:
                        pending = next(iter(shared.asked.values()), None)
                    if pending is None or shared.topology is None:
                        break
                    topology = self._refresh_once(pending)
                return topology
            finally:
                # An event, or a check's listing, changed the topology: check against the new one at
                # once, not an interval later (an update whose reads failed waits for the next one).
                if check_after or self._updates != updates:
                    self._want_check("event" if check_after else "topology_updated")

    def _refresh_once(self, reason: str | None) -> Topology | None:
        shared = self._shared
        with shared.ask_lock:
            asked = dict(shared.asked)  # what this discovery will see to; later asks stay
        try:
            why = reason or shared.wanted or "scheduled"
            if (why in INCREMENTAL_REASONS and asked and shared.topology is not None
                    and shared.monotonic() - self._full_at < shared.topology_interval):
                shared.wanted = None
                return self._update(why, asked)
            return self.refresh(reason)
        finally:
            with shared.ask_lock:
                for arn, kind in asked.items():
                    if shared.asked.get(arn) == kind:
                        del shared.asked[arn]

    def read_in_check(self, topology: Topology, listed: Listed) -> Topology:
        """The topology with the few load balancers a check's listing shows new or with other
        security groups read into it, for the check to judge at once; unchanged when there are none,
        too many, a refresh is running or asked for them already, a full discovery is due, or a check
        tried one of them already since the last full discovery (the refresh job sees to them then)."""
        shared = self._shared
        new = listed.arns - topology.known_lb_arns
        asked = {arn: NEW for arn in new}
        asked.update((arn, CHANGED) for arn in with_other_groups(topology, listed.groups) if arn not in new)
        if not asked or len(asked) > READ_IN_CHECK or not shared.refresh_lock.acquire(blocking=False):
            return topology
        try:
            with shared.ask_lock:
                waiting = any(arn in shared.asked for arn in asked)
            if (waiting or shared.topology is not topology or not self._read_in_check.isdisjoint(asked)
                    or shared.monotonic() - self._full_at >= shared.topology_interval):
                return topology
            self._read_in_check.update(asked)
            return self._update(NEW if NEW in asked.values() else CHANGED, asked) or topology
        finally:
            shared.refresh_lock.release()

    def _update(self, reason: str, asked: dict[str, str]) -> Topology | None:
        """The incremental refresh: read the ALBs new or changed (from the check's listing), drop
        those gone once a read of them by ARN confirms it (a listing that lost them proves
        nothing), merge into the topology."""
        shared = self._shared
        with shared.working():
            started = shared.monotonic()
            current = shared.topology
            assert current is not None
            entries = shared.reader.listed({arn for arn, kind in asked.items() if kind in (NEW, CHANGED)})
            gone: frozenset[str] = frozenset()
            listed = {e["LoadBalancerArn"] for e in entries}
            reread = {arn for arn, kind in asked.items() if kind == REREAD and arn not in listed}
            # Unlisted ALBs are described by ARN with the re-reads: dropped only when AWS says they are
            # gone; still there, they stay as they were (the next listing judges them again).
            by_arn = sorted(reread | {arn for arn, kind in asked.items() if kind == GONE})
            failures: list[ReadFailure] = []
            try:
                with shared.clients.pacer.discovering(), shared.clients.counter.scope() as tally:
                    if by_arn:
                        more, vanished = listed_by_arn(shared.clients, by_arn, failures)
                        entries = entries + [e for e in more if e.get("LoadBalancerArn") in reread]
                        gone = frozenset(vanished)
                    fresh = (discover_load_balancers(shared.clients, shared.cluster, entries) if entries
                             else Topology(shared.cluster, current.region, (), (), ()))
            except cancellation.Cancelled:  # read by a check that was abandoned meanwhile: nothing merged
                raise
            except Exception:  # one bad refresh must not end the loop
                log.exception("topology_failed", reason=reason)
                shared.metrics.count_cycle_failure("topology")
                return current
            if failures:  # ALBs that could not even be described: asked again at the next update
                fresh = replace(fresh, failures=tuple(failures) + fresh.failures)
            reread = frozenset(e["LoadBalancerArn"] for e in entries)
            topology = self._doubt(merge(current, Delta(fresh, reread, gone, self._base_failures)))
            if shared.cluster_state is not None and shared.cluster_state.ingresses is not None:
                topology = join_ingresses(topology, shared.cluster_state)
            shared.topology = topology
            self._topology_at = shared.monotonic()
            if not fresh.failures:
                self._updates += 1
            shared.metrics.count_topology_refresh(reason)
            log.info("topology_updated", reason=reason, read=len(reread), dropped=len(gone),
                     load_balancers=len(topology.load_balancers), failed_reads=len(fresh.failures),
                     api_calls=tally.calls, duration_seconds=round(shared.monotonic() - started, 3))
            return topology

    def refresh(self, reason: str | None) -> Topology | None:
        """The full discovery, with the Kubernetes state. The caller holds `refresh_lock`."""
        shared = self._shared
        with shared.working():
            reason = reason or shared.wanted or "scheduled"
            shared.wanted = None
            started = shared.monotonic()
            try:
                state = self._read_kubernetes()
                with shared.clients.counter.scope() as tally:
                    with shared.clients.pacer.discovering():
                        fresh = discover(shared.clients, shared.cluster)
                    shared.reader.read_quota()  # once per process (RULE_QUOTA_NEAR), off the checks' deadline
            except Exception:  # one bad refresh must not end the loop
                log.exception("topology_failed", reason=reason)
                shared.metrics.count_cycle_failure("topology")
                return shared.topology
            log_failed_reads("topology", fresh.failures)
            topology = self._doubt(carry_topology(shared.topology, fresh))
            self._base_failures = topology.failures
            self._full_at = shared.monotonic()
            self._read_in_check.clear()
            if state is not None:
                state = this_cluster(state, fresh, shared.cluster)
                # Ingress names are slow to change: keep the last ones read while the API is away.
                names = state if state.ingresses is not None or shared.cluster_state is None else shared.cluster_state
                shared.cluster_state = state
                topology = join_ingresses(topology, names)
            shared.topology = topology
            heap.collect_and_settle()
            self._topology_at = shared.monotonic()
            self._failed_refreshes = self._failed_refreshes + 1 if topology.failures else 0
            shared.metrics.count_topology_refresh(reason)
            log.info("topology_refreshed", reason=reason,
                     load_balancers=len(fresh.load_balancers), target_groups=len(fresh.target_groups),
                     targets=sum(len(tg.targets or ()) for tg in fresh.target_groups),
                     security_groups=len(fresh.security_groups), failed_reads=len(fresh.failures),
                     kubernetes=None if state is None else not state.failures, api_calls=tally.calls,
                     duration_seconds=round(shared.monotonic() - started, 3))
            return shared.topology

    def refresh_for(self, observation: Observation) -> str | None:
        """Why to re-discover now, once per ALB come, gone or with other security groups: the checks
        that see it again before the discovery asked for has finished (or that read against the
        topology before it) do not ask again."""
        shared = self._shared
        with shared.ask_lock:
            current = shared.topology
            if current is None:
                return None
            live = observation.live_lb_arns
            changes = {arn: (GONE if live is not None and arn not in live else NEW)
                       for arn in lb_changes(current, observation)}
            changes.update((arn, CHANGED) for arn in changed_security_groups(current, observation)
                           if arn not in changes)
            fresh = {arn: kind for arn, kind in changes.items() if shared.asked.get(arn) != kind}
            if not fresh:
                return None
            shared.asked.update(fresh)
            kinds = set(fresh.values())
            return NEW if NEW in kinds else GONE if GONE in kinds else CHANGED

    def _doubt(self, topology: Topology) -> Topology:
        """Target groups or ALBs one answer emptied, where earlier reads or remembered paths had
        targets: unknown until the next discovery's read agrees (monitor.core.vanished)."""
        memory = self._shared.memory()
        seen = SeenBefore.of(self._shared.topology,
                             ((k.load_balancer_arn, k.target_group_arn) for k, _ in memory.paths))
        topology, self._doubted = doubt(topology, seen, self._doubted)
        return topology

    def retry_due(self) -> bool:
        """True when the topology is incomplete and its retry (with backoff) has come."""
        shared = self._shared
        if shared.topology is None or not shared.topology.failures:
            return False
        delay = incomplete_retry_after(self._failed_refreshes, shared.interval, shared.topology_interval)
        # Half an interval of slack: a scheduler's cycle may start a little early.
        return shared.monotonic() - self._topology_at >= delay - shared.interval / 2

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
