"""What one rule check did, as the daemon logs it and hands it to whoever listens (the demo's view)."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.core.model import Report, Severity
from monitor.core.transitions import Revocation
from monitor.daemon.remediation import Outcome


@dataclass(frozen=True)
class CycleSummary:
    """What one rule check did; `error` is set (and `report` None) when the cycle failed."""

    report: Report | None
    revocations: tuple[Revocation, ...] = ()
    refresh_wanted: str | None = None  # why the check asked for a topology refresh, if it did
    remediations: tuple[Outcome, ...] = ()  # every remediation decision of the cycle, carried out
    duration_seconds: float = 0.0
    api_calls: int = 0
    error: str | None = None
    abandoned: bool = False  # still running at its deadline: its result is unknown (and dropped)
    discovery_seconds: float = 0.0  # of which the first discovery, run by this check: not its duration
    judged: int = 0  # load balancers judged again (the others carried their last judgement: monitor.core.carry)
    listed: bool = True  # whether it read the load balancer listing (monitor.daemon.listing)
    read_again: int = 0  # load balancers found cut without the listing, read again by ARN before it said so
    cpu_seconds: float = 0.0  # CPU time of the check's own thread (a first discovery it ran included)

    @property
    def ok(self) -> bool:
        return self.report is not None

    @property
    def complete(self) -> bool:
        return self.report is not None and self.report.complete

    def count(self, reachable: bool | None) -> int:
        """Load balancers by reachability; one whose every path is not judged is not unknown (not_judged())."""
        lbs = self.report.load_balancers if self.report else ()
        return sum(1 for lb in lbs if lb.reachable is reachable and not lb.not_judged)

    def not_judged(self) -> int:
        """Load balancers whose every path is not judged (no ENI of the account owns their targets)."""
        return sum(1 for lb in self.report.load_balancers if lb.not_judged) if self.report else 0

    def fields(self) -> dict[str, object]:
        report = self.report
        return {
            "complete": self.complete,
            "load_balancers": len(report.load_balancers) if report else 0,
            "reachable": self.count(True),
            "unreachable": self.count(False),
            "unknown": self.count(None),
            "not_judged": self.not_judged(),
            "findings": len(report.findings) if report else 0,
            "critical": sum(1 for f in report.findings if f.severity is Severity.CRITICAL) if report else 0,
            "failed_reads": len(report.failures) if report else 0,
            "revocations": len(self.revocations),
            "writes": sum(1 for o in self.remediations if o.result is not None),
            "duration_seconds": round(self.duration_seconds, 3),
            "api_calls": self.api_calls,
            "judged": self.judged,
            "listed": self.listed,
            "read_again": self.read_again,
            "cpu_seconds": round(self.cpu_seconds, 3),
        }
