"""Settings as one frozen value: every field is a flag with an ALBSG_* environment twin (docs/reference.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """'500ms', '15s', '5m', '1h' or combinations such as '1m30s' -> seconds. Raises ValueError."""
    text = text.strip()
    if text.startswith("-"):
        raise ValueError(f"{text!r} is negative: durations must be positive, e.g. 500ms, 15s, 5m, 1h")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"cannot parse {text!r} as a duration; use e.g. 500ms, 15s, 5m, 1h")
    return total


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


# A default deadline shorter than this would abandon cycles that AWS answers slowly but well
# (botocore alone allows seconds per call), for a demo-like short --interval.
CYCLE_TIMEOUT_FLOOR = 10.0
CYCLE_TIMEOUT_INTERVALS = 3


def default_cycle_timeout(interval: float) -> float:
    return max(CYCLE_TIMEOUT_FLOOR, CYCLE_TIMEOUT_INTERVALS * interval)


@dataclass(frozen=True)
class Settings:
    cluster_name: str
    """EKS cluster name, as in the kubernetes.io/cluster/<name> tag."""
    region: str | None = None
    """AWS region; None takes it from the standard AWS configuration."""
    kubernetes: str = "auto"
    """auto: use the Kubernetes API when a config is found; on: require it; off: AWS only."""
    interval: float = 15.0
    """Seconds between rule checks."""
    topology_interval: float = 300.0
    """Seconds between full re-discoveries of ALBs, target groups, targets and ENIs."""
    cycle_timeout: float | None = None
    """Seconds a rule check may run before it is abandoned and its result is unknown; None: three
    intervals, at least CYCLE_TIMEOUT_FLOOR."""
    health_sweep: float = 300.0
    """Seconds within which every target group's health is read at least once (paced with discovery);
    0: no sweep, only the reads a verdict change asks for (at once and after the health-check window)."""
    discovery_rate: float | None = 10.0
    """Requests a second discovery may send per API family (ELBv2 describes, EC2 describes); the
    rule check is not held to it. None: not paced (the demo's local account)."""
    mode: str = "observe"
    """observe never writes to AWS; enforce restores revoked rules."""
    grace: float = 60.0
    """Seconds a path must stay uncovered before it is restored."""
    listen: str = "0.0.0.0:9917"
    """host:port of the HTTP server."""
    state_file: str | None = None
    """Where remembered rules survive restarts when Kubernetes is off."""
    max_restores_per_cycle: int = 5
    """At most this many restores (and, separately, clean-ups of our own rules) in one cycle."""
    max_restores_per_hour: int = 20
    """At most this many restore writes (failed ones included) in any rolling hour."""
    fight_threshold: int = 3
    """Revocations of the same rule within fight_window, the first included, after which it is
    quarantined: no more restores, a REMEDIATION_FIGHT finding. 3: restored twice, then stop."""
    fight_window: float = 3600.0
    """Seconds over which revocations of one rule are counted for the fight-loop detector."""
    restore_backoff: float = 60.0
    """Seconds to wait after a failed restore of a rule; doubles with each further failure."""
    restore_backoff_max: float = 1800.0
    """The longest wait between failed restores of one rule."""
    cleanup_grace: float = 300.0
    """Seconds a rule we created must stay orphaned (its source SG on no live ALB) before we
    revoke it; rides out ALB security-group list flapping between v1 and v2."""
    events_queue: str | None = None
    """URL of the SQS queue an EventBridge rule fills with CloudTrail events: checks at once on an
    event, says who cut a path, sees gaps shorter than a check interval."""
    v2_controller_role_arn: str | None = None
    """The v2 controller's IAM role, to tell its calls apart when Kubernetes does not show it."""
    v1_controller_role_arn: str | None = None
    """The v1 controller's IAM role, likewise."""
    log_format: str = "auto"
    """json, console, or auto (console on a terminal)."""
    output: str = "table"
    """check/preflight output: table or json; for demo, a live view or JSON lines."""
    demo_after: str = "exit"
    """demo only: after the story, exit, or serve /metrics until stopped."""
    demo_speed: float = 1.0
    """demo only: how many times faster than real time the story's timeline plays."""
    demo: bool | None = None
    """check, preflight, run: against the embedded demo account instead of AWS (and its Kubernetes API)."""

    @property
    def check_deadline(self) -> float:
        """Seconds a rule check may run: --cycle-timeout, or by default three intervals (at least 10 s)."""
        return self.cycle_timeout if self.cycle_timeout is not None else default_cycle_timeout(self.interval)
