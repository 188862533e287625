"""The ELB's word, read beside the rule check and never inside it: target health of a target group at
once when its verdict changes and again once its health-check window has passed, and a sweep that
reads every target group at least every --health-sweep. Reads run in their own job, paced with
discovery's request budget; the check only holds its report against what was last read
(monitor.core.corroborate), which costs it no request.

A failed or throttled read changes nothing: it is counted like any failed call, and the target
group's confirmation stays what the reads before it made it (`unknown` when there is none).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from monitor.aws.health import read_health
from monitor.core.corroborate import VERDICT_DISPUTED, corroborate
from monitor.core.health import CONFIRMED, HealthMemory, TargetKey, timing_of
from monitor.core.model import ReadFailure, Report, Topology
from monitor.daemon.shared import Shared, log, log_failed_reads

DEFAULT_SWEEP_SECONDS = 300.0
SETTLE_SECONDS = 2.0  # read a little after the window ends, not on its edge
MAX_READS_A_TICK = 50  # one tick never holds the job for long; the rest are read at the next


class HealthWatch:
    """What was read (a HealthMemory), which target groups are due a read and when, and the disputes
    under way (albsg_verdict_disputes_total counts each new one). `_lock` guards all of it; reads
    are made outside it."""

    def __init__(self, shared: Shared, sweep_seconds: float = DEFAULT_SWEEP_SECONDS) -> None:
        self._shared = shared
        self._sweep = sweep_seconds
        self._lock = threading.Lock()
        self.memory = HealthMemory()
        self._due: dict[str, list[float]] = {}  # target group -> wall times a read is due (verdict change, window)
        self._next_sweep: dict[str, float] = {}  # target group -> wall time of its next sweep read
        self._admitted: dict[str, bool] = {}  # target group -> every path admitted at the last check
        self._disputed: frozenset = frozenset()
        self._confirmed: set[tuple[str, str | None, str | None]] = set()  # cuts already said confirmed
        self._names: dict[str, tuple[str, tuple[str, ...]]] = {}  # target group -> (its name, its LBs' names)
        self._windows: dict[str, float] = {}  # target group -> its health-check window
        self._topology: Topology | None = None  # the topology the windows, names and sweep were worked out for
        self.on_due: Callable[[], None] | None = None  # wakes the health job (the runner sets it)

    # -- in the check (no request) ----------------------------------------------------------------
    def judge(self, report: Report, topology: Topology) -> Report:
        """The report with the ELB's word on its cuts; schedules the reads its changes call for."""
        now = self._shared.wall()
        cut: set[TargetKey] = set()
        admitted: dict[str, bool] = {}
        for lb in report.load_balancers:
            for path in lb.paths:
                if path.reachable is False:
                    cut.add((path.target_group_arn, path.target))
                ok = admitted.get(path.target_group_arn, True)
                admitted[path.target_group_arn] = ok and path.reachable is True
        wake = False
        with self._lock:
            forgot = self._adopt(topology, now)
            windows = self._windows
            changed = {arn for arn, ok in admitted.items() if self._admitted.get(arn) not in (None, ok)}
            newly_cut = {arn for arn, _ in self.memory.saw_cuts(cut, now)}
            for arn in changed | newly_cut:
                self._due[arn] = [now, now + windows.get(arn, 0) + SETTLE_SECONDS]
                wake = True
            self._admitted = admitted
            out = corroborate(report, self.memory, topology.target_groups, windows=windows)
            new_disputes = out.disputed - self._disputed
            self._disputed = out.disputed
            for arn in {key[0] for key in cut}:
                # While a cut stands the ELB's word is wanted once a window: to see it agree (a
                # dispute ends the moment it does) or keep disagreeing.
                if not self._due.get(arn):
                    self._due[arn] = [now + windows.get(arn, 0) + SETTLE_SECONDS]
        self._tell(out.report, new_disputes, now)
        if new_disputes:
            self._shared.metrics.count_disputes(len(new_disputes))
        if forgot:
            self._shared.metrics.set_targets(self.targets())  # a gone target group's series go with it
        if wake and self.on_due is not None:
            self.on_due()
        return out.report

    def _adopt(self, topology: Topology, now: float) -> bool:
        """What depends on the topology alone (windows, names, the sweep's schedule), worked out once
        per topology (it is replaced whole, never changed in place); True when target groups are gone."""
        if topology is self._topology:
            return False
        self._topology = topology
        self._windows = {tg.arn: float(timing_of(tg).window) for tg in topology.target_groups}
        lb_names = {lb.arn: lb.name for lb in topology.load_balancers}
        self._names = {tg.arn: (tg.name, tuple(lb_names[a] for a in tg.load_balancer_arns if a in lb_names))
                       for tg in topology.target_groups}
        for index, arn in enumerate(sorted(self._windows)):
            # A new target group's first sweep read is spread over the sweep, not all at once.
            self._next_sweep.setdefault(arn, now + self._sweep * (index % 97 + 1) / 98)
        return self._forget_gone(set(self._windows))

    def _tell(self, after: Report, new_disputes: frozenset, now: float) -> None:
        """One log event (and, by the leader, an Event on the Ingress) when the ELB confirms a cut and
        when it starts disputing one: cause and effect, said once each."""
        lbs = {lb.name: lb for lb in after.load_balancers}
        confirmed = set()
        for finding in after.findings:
            key = (finding.code, finding.load_balancer, finding.security_group)
            if finding.confirmation == CONFIRMED:
                confirmed.add(key)
                if key not in self._confirmed:
                    self._say("cut_confirmed", "CutConfirmed", finding, lbs, now,
                              "the ELB reports the targets of this cut failing its health checks: "
                              + finding.message)
            elif finding.code == VERDICT_DISPUTED and any(
                    (lb, group) == (finding.load_balancer, finding.security_group) for _, lb, group in new_disputes):
                self._say("verdict_disputed", "VerdictDisputed", finding, lbs, now, finding.message)
        self._confirmed = confirmed

    def _say(self, event: str, reason: str, finding, lbs, now: float, message: str) -> None:
        log.warning(event, code=finding.code, load_balancer=finding.load_balancer,
                    security_group=finding.security_group, targets=len(finding.paths), message=message)
        lb = lbs.get(finding.load_balancer or "")
        remediator = self._shared.remediator
        if lb is not None and lb.ingress and remediator is not None:
            remediator.post_event(lb.ingress_namespace, lb.ingress, reason, message, True, now)

    def _forget_gone(self, arns: set[str]) -> bool:
        gone = [arn for arn in {*self._next_sweep, *self._due, *self.memory.reads} if arn not in arns]
        self.memory.forget(gone)
        for arn in gone:
            self._due.pop(arn, None)
            self._next_sweep.pop(arn, None)
        return bool(gone)

    # -- the health job -------------------------------------------------------------------------
    def due(self, now: float) -> list[str]:
        """Target groups whose read is due now: those a verdict change asked for first, then the sweep's."""
        with self._lock:
            asked = sorted(arn for arn, times in self._due.items() if times and times[0] <= now)
            swept = []
            if self._sweep > 0:
                swept = sorted((t, arn) for arn, t in self._next_sweep.items() if t <= now and arn not in asked)
            return (asked + [arn for _, arn in swept])[:MAX_READS_A_TICK]

    def tick(self) -> int:
        """Read every target group due; returns how many reads were made."""
        shared = self._shared
        arns = self.due(shared.wall())
        failures: list[ReadFailure] = []
        with shared.clients.pacer.discovering():
            for arn in arns:
                read = read_health(shared.clients, arn, failures, shared.wall)
                self._after_read(arn, read, shared.wall())
        log_failed_reads("health", tuple(failures))
        if arns:
            shared.metrics.set_targets(self.targets())
        return len(arns)

    def _after_read(self, arn: str, read, now: float) -> None:
        with self._lock:
            times = [t for t in self._due.get(arn, ()) if t > now]
            if times:
                self._due[arn] = times
            else:
                self._due.pop(arn, None)
            if arn in self._next_sweep and self._sweep > 0:
                self._next_sweep[arn] = now + self._sweep
            if read is None:
                return
            admitted = self._admitted.get(arn, False)
            self.memory.saw_read(read, admitted)
            if admitted and any(t.network_failure for t in read.targets) and not self._due.get(arn):
                # Failing while every rule admits them: read again past the window, to explain it
                # without waiting for the sweep.
                self._due[arn] = [now + self._windows.get(arn, 0) + SETTLE_SECONDS]

    def targets(self) -> list[tuple[str, str, str, int]]:
        """(load balancer, target group, state, targets) from each target group's last read."""
        with self._lock:
            rows = []
            for arn, read in sorted(self.memory.reads.items()):
                name, lbs = self._names.get(arn, (arn, ()))
                for lb in lbs:
                    rows.extend((lb, name, state, count) for state, count in sorted(read.states().items()))
            return rows
