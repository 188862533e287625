"""The ELB's own word beside the verdict (pure): what a target-health read says about a cut path,
whether it confirms the cut, leaves it pending or disputes it, and which targets fail their health
checks for a network reason while every rule admits them.

Health is corroboration, never an input of the verdict: nothing here makes a path covered or cut,
and a read that failed is simply absent (confirmation `unknown`, nothing disputed, nothing
explained). The ELB health-checks a target from its own addresses to the health-check port, so it
proves or disproves that port from that source only; anything else is `not_exercised`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from monitor.core.model import TargetGroup

# Reasons that say the network did not carry the health check. Others (Target.ResponseCodeMismatch,
# Elb.InitialHealthChecking, Target.HealthCheckDisabled, ...) neither confirm nor explain a cut.
NETWORK_REASONS = frozenset({"Target.Timeout", "Target.FailedHealthChecks"})

CONFIRMED = "confirmed"
PENDING = "pending"
NOT_EXERCISED = "not_exercised"
UNKNOWN = "unknown"
CONFIRMATIONS = (CONFIRMED, PENDING, NOT_EXERCISED, UNKNOWN)

# CreateTargetGroup's defaults, used where DescribeTargetGroups leaves a value out.
_DEFAULT_INTERVAL = 30
_DEFAULT_INTERVAL_LAMBDA = 35
_DEFAULT_UNHEALTHY = 2
_DEFAULT_TIMEOUT = {"HTTP": 6, "HTTPS": 10, "TCP": 10, "TLS": 10, "UDP": 10, "TCP_UDP": 10, "GENEVE": 5}
_DEFAULT_TIMEOUT_LAMBDA = 30

TargetKey = tuple[str, str]  # (target group ARN, target id)


@dataclass(frozen=True, slots=True)
class TargetHealth:
    """One entry of DescribeTargetHealth."""

    target_id: str
    port: int
    state: str  # initial, healthy, unhealthy, unused, draining, unavailable
    reason: str = ""

    @property
    def network_failure(self) -> bool:
        return self.state == "unhealthy" and self.reason in NETWORK_REASONS


@dataclass(frozen=True, slots=True)
class HealthRead:
    """A successful DescribeTargetHealth of one target group, and when its answer came (seconds
    since the epoch). A failed read is no HealthRead at all."""

    target_group_arn: str
    at: float
    targets: tuple[TargetHealth, ...]

    def of(self, target_id: str) -> tuple[TargetHealth, ...]:
        """The entries of one target (an instance can be registered on several ports)."""
        return tuple(t for t in self.targets if t.target_id == target_id)

    def states(self) -> dict[str, int]:
        """Targets by state, as albsg_targets renders them (states with none are absent)."""
        counted: dict[str, int] = {}
        for target in self.targets:
            counted[target.state] = counted.get(target.state, 0) + 1
        return counted


@dataclass(frozen=True, slots=True)
class HealthCheckTiming:
    interval: int
    timeout: int
    unhealthy_threshold: int

    @property
    def window(self) -> int:
        """How long after a cut the ELB has surely marked its targets unhealthy: the failed checks
        it needs, one interval apart, plus the last one's timeout."""
        return self.interval * self.unhealthy_threshold + self.timeout


def timing(protocol: str, target_type: str, interval: int | None = None, timeout: int | None = None,
           unhealthy_threshold: int | None = None) -> HealthCheckTiming:
    """A target group's health-check timing, AWS's defaults for its protocol and target type filling
    what is absent."""
    lambda_targets = target_type == "lambda"
    if interval is None:
        interval = _DEFAULT_INTERVAL_LAMBDA if lambda_targets else _DEFAULT_INTERVAL
    if timeout is None:
        timeout = _DEFAULT_TIMEOUT_LAMBDA if lambda_targets else _DEFAULT_TIMEOUT.get((protocol or "").upper(), 10)
    if unhealthy_threshold is None:
        unhealthy_threshold = _DEFAULT_UNHEALTHY
    return HealthCheckTiming(int(interval), int(timeout), int(unhealthy_threshold))


def timing_of(tg: TargetGroup) -> HealthCheckTiming:
    return timing(tg.protocol, tg.target_type, tg.health_check_interval, tg.health_check_timeout,
                  tg.unhealthy_threshold)


def confirmation(targets: Iterable[TargetKey], read: HealthRead | None, exercised: bool, cut_since: float) -> str:
    """The ELB's word on one finding's cut, over the targets it concerns.

    `exercised`: whether the ELB's health checks cross what is cut (the health-check port, from the
    load balancer's own addresses). `cut_since`: the first check that saw the cut; a read from before
    it says nothing about the cut."""
    if not exercised:
        return NOT_EXERCISED
    if read is None:
        return UNKNOWN
    if read.at < cut_since:
        return PENDING
    if _every_target(read, targets, lambda t: t.network_failure):
        return CONFIRMED
    return PENDING


def disputed(targets: Iterable[TargetKey], read: HealthRead | None, exercised: bool, cut_since: float,
             window: float) -> bool:
    """Whether the ELB contradicts a cut: a read taken after the health-check window (counted from
    the first check that saw the cut) reports every target the cut concerns healthy."""
    if not exercised or read is None or read.at < cut_since + window:
        return False
    return _every_target(read, targets, lambda t: t.state == "healthy")


def _every_target(read: HealthRead, targets: Iterable[TargetKey], holds: Callable[[TargetHealth], bool]) -> bool:
    """Whether the read lists every one of the targets, and `holds` for each of its entries (an
    instance can be registered on several ports): a target the read does not list is not vouched for."""
    entries = [read.of(target_id) for _, target_id in targets]
    return bool(entries) and all(found and all(holds(t) for t in found) for found in entries)


@dataclass
class HealthMemory:
    """What is remembered between checks (the daemon holds one; times come in, no clock here).

    `cut_since`: when each target's path was first seen cut, dropped when it is no longer cut.
    `reads`: the last successful read of each target group.
    `failing_since`: per target, the first read (while every path of its target group was
    admitted) that reported it unhealthy for a network reason; dropped by a read that does not."""

    cut_since: dict[TargetKey, float] = field(default_factory=dict)
    reads: dict[str, HealthRead] = field(default_factory=dict)
    failing_since: dict[TargetKey, float] = field(default_factory=dict)

    def saw_cuts(self, cut: Iterable[TargetKey], now: float) -> list[TargetKey]:
        """Record the targets whose path the last check found cut; returns the newly cut ones."""
        cut = set(cut)
        for key in [k for k in self.cut_since if k not in cut]:
            del self.cut_since[key]
        new = sorted(k for k in cut if k not in self.cut_since)
        for key in new:
            self.cut_since[key] = now
        return new

    def saw_read(self, read: HealthRead, admitted: bool) -> None:
        """A successful read; `admitted`: every path of its target group was admitted when it came."""
        self.reads[read.target_group_arn] = read
        arn = read.target_group_arn
        # A target registered on several ports fails only when every one of its entries does.
        passing = {t.target_id for t in read.targets if not t.network_failure}
        failing = {t.target_id for t in read.targets if t.network_failure} - passing
        for key in [k for k in self.failing_since if k[0] == arn]:
            if not admitted or key[1] not in failing:
                del self.failing_since[key]
        if admitted:
            for target_id in sorted(failing):
                self.failing_since.setdefault((arn, target_id), read.at)

    def forget(self, target_group_arns: Iterable[str]) -> None:
        """Target groups that are gone: their reads and timings go with them."""
        gone = set(target_group_arns)
        for arn in gone:
            self.reads.pop(arn, None)
        self.failing_since = {k: v for k, v in self.failing_since.items() if k[0] not in gone}
        self.cut_since = {k: v for k, v in self.cut_since.items() if k[0] not in gone}

    def unexplained(self, target_group_arn: str, window: float) -> tuple[str, ...]:
        """Targets of a target group the ELB has reported failing for a network reason, by reads
        spanning more than the window, while every path stayed admitted."""
        read = self.reads.get(target_group_arn)
        if read is None:
            return ()
        return tuple(sorted(target_id for (arn, target_id), since in self.failing_since.items()
                            if arn == target_group_arn and read.at - since > window))
