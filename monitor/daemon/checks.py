"""The rule check: read the rules against the topology kept, evaluate, remediate, attribute and publish,
in a thread of its own that must finish by the cycle's deadline, or be abandoned and published blind.

A bad check is logged and counted, and the next one runs as usual; so is a check still running at its
deadline, whose result is then unknown (it may still be blocked in an AWS call: it finishes in its
own thread, writes nothing more, and what it found is dropped).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

from monitor.core import cancellation
from monitor.core.carry import Carried, evaluate_carried
from monitor.core.model import Observation, Topology
from monitor.core.transitions import Coverage, advance, revoked_load_balancers
from monitor.daemon import heap
from monitor.daemon.attributing import Attributor
from monitor.daemon.cycle import Snapshot, with_kubernetes
from monitor.daemon.deadline import DEADLINE_CODE, FAILED_CODE, Cycle, PastDeadline, blind_report
from monitor.daemon.health_watch import HealthWatch
from monitor.daemon.listing import ListingTurn, cut_read_by_arn
from monitor.daemon.reactions import Reactions
from monitor.daemon.remediation import Outcome
from monitor.daemon.shared import Shared, log, log_failed_reads
from monitor.daemon.summary import CycleSummary
from monitor.daemon.topology import TopologyKeeper

FIRST_DISCOVERY = "first discovery"  # the phase of a check that runs (or waits for) the first discovery
# Abandoned checks may stay blocked in botocore for a minute (3 attempts of up to 5 s connect and
# 15 s read): past this many still running, a new check is abandoned at once instead of adding a
# thread that would block in the same place.
MAX_ABANDONED_IN_FLIGHT = 3


class RuleChecks:
    """The checks' own state: the last known coverage of every path, the abandoned checks still running,
    the cycles counted, and who hears of each cycle's summary."""

    def __init__(self, shared: Shared, keeper: TopologyKeeper, reactions: Reactions,
                 attributor: Attributor, health: HealthWatch) -> None:
        self._shared = shared
        self._health = health
        self._keeper = keeper
        self._reactions = reactions
        self._attributor = attributor
        self._coverage = Coverage()
        self._carried: Carried | None = None  # the last check's judgements (monitor.core.carry)
        self.abandoned: list[threading.Thread] = []
        self._said_waiting = False  # `check_waiting_for_first_discovery` is logged once
        self.cycles = 0
        # Called with every CycleSummary (e.g. the demo's live view); an error in one is logged.
        self.on_cycle: list[Callable[[CycleSummary], None]] = []

    def check(self) -> CycleSummary:
        """One rule check against the current topology (discovering it first if there is none), in
        a thread of its own that must finish by the cycle's deadline. Publishes the report to the
        metrics and logs a `check_cycle` event; past the deadline, publishes that the result is
        unknown and logs `check_abandoned` instead. Never raises."""
        shared, reactions = self._shared, self._reactions
        asked = reactions.checks_asked
        with shared.working():
            started = shared.monotonic()
            shared.heartbeat = started
            cycle = Cycle(started + shared.deadline, shared.monotonic)
            summary = self._run_in_time(cycle)
            # The first discovery, when the check ran it, is the topology's time, not the check's.
            duration = shared.monotonic() - started - summary.discovery_seconds
            summary = replace(summary, duration_seconds=duration)
            if not (summary.abandoned and cycle.phase == FIRST_DISCOVERY):
                shared.metrics.observe_cycle(duration)
            shared.heartbeat = shared.monotonic()
            self.cycles += 1
            if summary.ok:
                log.info("check_cycle", **summary.fields())
        if summary.refresh_wanted:
            reactions.want_refresh(summary.refresh_wanted)
        if reactions.checks_asked != asked and reactions.on_check_wanted is not None:
            # An event arrived during this check, which may have read the rules before the change:
            # the scheduler skipped the run it asked for while this one ran, so ask again.
            reactions.on_check_wanted("event")
        elif summary.ok and summary.duration_seconds >= shared.interval and reactions.on_check_wanted is not None:
            # It outlasted the interval: the run due meanwhile was skipped, and the next would wait
            # for the one after; the next check starts now instead (back to back while they are long).
            reactions.on_check_wanted("overrun")
        for listener in self.on_cycle:
            try:
                listener(summary)
            except Exception:
                log.exception("cycle_listener_failed")
        return summary

    # -- the deadline ---------------------------------------------------------------------------
    def _run_in_time(self, cycle: Cycle) -> CycleSummary:
        """Run the check in its own thread and wait for it until the deadline, then abandon it."""
        self.abandoned = [t for t in self.abandoned if t.is_alive()]
        if len(self.abandoned) >= MAX_ABANDONED_IN_FLIGHT:
            cycle.phase = "not started: earlier abandoned checks are still blocked"
            cycle.abandon()
            return self._abandon(cycle)
        worker = threading.Thread(target=self._run_cycle, args=(cycle,), name="check-cycle", daemon=True)
        worker.start()
        while not cycle.done.is_set():
            # The loop is alive while it waits: it will abandon the check at its deadline, so a
            # long first discovery or a slow AWS is not a reason for a liveness restart.
            self._shared.heartbeat = self._shared.monotonic()
            left = cycle.remaining()
            if left <= 0 and cycle.abandon():
                self.abandoned.append(worker)
                return self._abandon(cycle)
            cycle.done.wait(min(left, 0.25) if left > 0 else 0.01)
        if cycle.summary is None and cycle.abandon():  # it stopped itself, past its deadline
            return self._abandon(cycle)
        return cycle.summary or CycleSummary(report=None, error="the check ended without a result")

    def _run_cycle(self, cycle: Cycle) -> None:
        summary: CycleSummary | None = None
        began = time.thread_time()  # the check's own CPU: not the health job's or the events thread's
        try:
            # Only this thread's requests are the check's: not a discovery's running beside it.
            # Its reads stop at their next page once the cycle is abandoned (or past its deadline).
            with self._shared.clients.counter.scope() as tally, cancellation.bound(cycle.in_time):
                summary = self._check(cycle)
            summary = replace(summary, api_calls=tally.calls, cpu_seconds=time.thread_time() - began)
        except cancellation.Cancelled:  # PastDeadline too
            pass  # abandoned: check() has published that the result is unknown
        except Exception as exc:  # one bad cycle must not end the loop
            try:
                with cycle.commit():
                    log.exception("check_failed", phase=cycle.phase)
                    self._shared.metrics.count_cycle_failure("check")
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
        shared = self._shared
        why = f"the check did not finish within {shared.deadline:g}s ({cycle.phase})"
        self._go_blind(why, DEADLINE_CODE)
        if cycle.phase == FIRST_DISCOVERY:
            # A first discovery of minutes (a large account, paced) is start-up, not a failing
            # check: the result is unknown all the same, but said once and not counted (also when
            # the discovery landed just as the deadline came, before the check could go on).
            if not self._said_waiting:
                log.info("check_waiting_for_first_discovery", deadline_seconds=shared.deadline)
                self._said_waiting = True
        else:
            shared.metrics.count_cycle_failure("check")
            log.warning("check_abandoned", deadline_seconds=shared.deadline, phase=cycle.phase,
                        still_running=len(self.abandoned))
        return CycleSummary(report=None, error=f"{DEADLINE_CODE}: {why}", abandoned=True)

    def _go_blind(self, why: str, code: str) -> None:
        """Publish that this check has no verdict: every ALB unknown, observation incomplete, not ready."""
        shared = self._shared
        shared.blind = why
        shared.metrics.publish(blind_report(shared.topology, shared.cluster, shared.clients.region, why, code),
                               shared.wall())

    @staticmethod
    def _wait_for(lock: threading.Lock, cycle: Cycle, phase: str) -> None:
        """Take `lock` within the cycle's deadline, or stop the cycle."""
        cycle.phase = phase
        if not lock.acquire(timeout=max(cycle.remaining(), 0.0)):
            raise PastDeadline(phase)

    def _with_listing(self, topology: Topology, observation: Observation, cut: list[str]) -> tuple[Observation, bool]:
        """`observation` completed by the listing, read now, and whether it was read whole; when it
        was not, the `cut` load balancers are missing from it: unknown, never judged cut unread."""
        observation = self._shared.reader.with_listing(topology, observation)
        if observation.live_lb_arns is not None:
            return observation, True
        live = frozenset(lb.arn for lb in topology.load_balancers) - frozenset(cut)
        return replace(observation, live_lb_arns=live), False

    # -- the check itself -----------------------------------------------------------------------
    def _check(self, cycle: Cycle) -> CycleSummary:
        shared = self._shared
        discovering = 0.0
        if shared.topology is None:
            # The first discovery, or wait for the one under way (a check abandoned during it
            # leaves it running): never a second one at once.
            began = shared.monotonic()
            self._wait_for(shared.refresh_lock, cycle, FIRST_DISCOVERY)
            try:
                if shared.topology is None:
                    with cancellation.shielded():  # the next check waits for it: it must end
                        self._keeper.refresh("start")
            finally:
                shared.refresh_lock.release()
            discovering = shared.monotonic() - began
        topology = shared.topology
        if topology is None:
            raise RuntimeError("no topology: the first discovery failed")
        # An abandoned check may still be writing: read the rules after its writes, not before.
        self._wait_for(shared.acting, cycle, "waiting for an abandoned check's writes")
        shared.acting.release()
        cycle.check("reading rules")
        listing = shared.listing.turn(shared.monotonic(), shared.queue_healthy())
        live, failed = shared.reader.list_load_balancers(topology) if listing.read else (None, ())
        if live is not None:
            # A few load balancers new or with other groups are read now, to be judged by this check.
            cycle.check("reading new load balancers")
            topology = self._keeper.read_in_check(topology, live)
            cycle.check("reading rules")
        observation = shared.reader.read_rules(topology, live, failed)
        whole = live is not None  # the listing read whole
        cycle.check("evaluating")
        carrying = evaluate_carried(topology, observation, self._carried)
        cut = [lb.arn for lb in carrying.report.load_balancers if lb.reachable is False]
        read_again = 0
        if cut and not whole:
            # A load balancer deleted a moment ago (its event not here yet) looks cut: a cut is only
            # believed once its load balancer is read again (also when the listing failed).
            cycle.check("reading the cut load balancers again")
            if cut_read_by_arn(len(cut), max(len(topology.known_lb_arns), len(topology.load_balancers))):
                observation = shared.reader.with_load_balancers(topology, observation, cut)
                read_again = len(cut)
            else:
                listing = ListingTurn(True, "cut", listing.asked)
                observation, whole = self._with_listing(topology, observation, cut)
            carrying = evaluate_carried(topology, observation, carrying.carried)
        if whole:
            shared.listing.listed(listing, shared.monotonic())
        log_failed_reads("check", observation.failures)
        self._carried, aws_report = carrying.carried, carrying.report
        report = with_kubernetes(aws_report, Snapshot(topology, observation, shared.cluster_state))
        outcomes: tuple[Outcome, ...] = ()
        if shared.remediator is not None:
            self._wait_for(shared.acting, cycle, "remediating")
            try:
                cycle.check("remediating")
                report, outcomes = shared.remediator.act(aws_report, report, observation, shared.wall(),
                                                         in_time=cycle.in_time)
            finally:
                shared.acting.release()
        cycle.check("attributing")
        with cycle.commit():
            # Inside the commit: an abandoned check's late reads must neither refute an outage
            # window nor announce one, nor overwrite what a newer check read.
            report = self._attributor.attribute(report, observation)
            report = self._health.judge(report, topology)
            self._coverage, revocations = advance(self._coverage, report)
            shared.metrics.publish(report, shared.wall())
            shared.metrics.count_revocations(revoked_load_balancers(revocations))
            shared.reported, shared.blind = True, None
            for r in revocations:
                log.warning("path_revoked", load_balancer=r.load_balancer, target_group=r.target_group_arn,
                            target=r.target, ports=list(r.ports), missing_ports=list(r.missing_ports),
                            security_groups=list(r.security_groups))
            self._attributor.announce(report)
        # Every so many checks, one full collection first: a cycle that became garbage meanwhile is
        # reclaimed even when full discoveries are far apart.
        if self.cycles % heap.COLLECT_EVERY == 0:
            heap.collect_and_settle()
        else:
            heap.settle()
        wanted = self._keeper.refresh_for(observation)
        if wanted is None and not shared.refresh_lock.locked() and self._keeper.retry_due():
            # In the topology job, not here: a full discovery of a large account (paced) outlasts a
            # check's deadline, and the checks go on meanwhile against what is known.
            wanted = "incomplete_topology"
        return CycleSummary(report=report, revocations=revocations, refresh_wanted=wanted, remediations=outcomes,
                            discovery_seconds=discovering, judged=carrying.judged, listed=listing.read,
                            read_again=read_again)
