"""A rule check's deadline: which of the check and its deadline wins, and what a blind check publishes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from monitor.core.cancellation import Cancelled
from monitor.core.model import Finding, LoadBalancerResult, ReadFailure, Report, Severity, Topology
from monitor.daemon.summary import CycleSummary

DEADLINE_CODE = "CycleDeadlineExceeded"
FAILED_CODE = "CheckFailed"  # the check raised: a bug, or an AWS answer shaped unlike any the code knows


def blind_report(topology: Topology | None, cluster: str, region: str, why: str, code: str = DEADLINE_CODE) -> Report:
    """What a check that produced no verdict publishes (abandoned at its deadline, or failed with an
    error): every ALB known and unknown (no verdict), one OBSERVATION_INCOMPLETE finding saying why,
    nothing else from a cycle that did not finish. The last good verdict must not outlive it."""
    failure = ReadFailure("monitor", "check cycle", code, why)
    lbs = topology.load_balancers if topology else ()
    return Report(
        cluster=cluster, region=topology.region if topology else region, complete=False,
        load_balancers=tuple(LoadBalancerResult(lb.name, lb.arn, lb.adoption, lb.security_groups, None, (),
                                                lb.ingress_namespace, lb.ingress) for lb in lbs),
        findings=(Finding("OBSERVATION_INCOMPLETE", Severity.WARNING,
                          f"{why}; every verdict of this cycle is unknown."),),
        failures=(failure,))


class PastDeadline(Cancelled):
    """Raised in a check's own thread when it finds its deadline passed: it stops there. A read that
    finds its check abandoned between two pages raises its base, Cancelled (monitor.core.cancellation)."""


class Cycle:
    """One rule check racing its deadline: the check's commit (publishing) and the abandonment take
    the same lock, so exactly one of them happens, and an abandoned check never publishes."""

    def __init__(self, deadline: float, monotonic: Callable[[], float]) -> None:
        self.deadline = deadline
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._abandoned = False
        self._settled = False
        self.phase = "starting"  # what the check was doing, for the abandonment's log line
        self.done = threading.Event()
        self.summary: CycleSummary | None = None  # set by the check's thread when it ends

    def remaining(self) -> float:
        return self.deadline - self._monotonic()

    def in_time(self) -> bool:
        return not self._abandoned and self.remaining() > 0

    def check(self, phase: str) -> None:
        self.phase = phase
        if not self.in_time():
            raise PastDeadline(phase)

    @contextmanager
    def commit(self) -> Iterator[None]:
        """Publish inside this block, or raise PastDeadline when the cycle is abandoned or late."""
        with self._lock:
            if not self.in_time():
                raise PastDeadline("publishing")
            self._settled = True
            yield

    def abandon(self) -> bool:
        """True when the check had not committed: it is abandoned. False when it did (or is)."""
        with self._lock:
            if self._settled:
                return False
            self._abandoned = True
            return True
