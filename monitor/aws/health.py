"""Target health as the ELB reports it: one DescribeTargetHealth a target group, turned into a
HealthRead. A failed, throttled or garbled answer is recorded as a failure and gives no read."""

from __future__ import annotations

import sys
from collections.abc import Callable

from monitor.aws.calls import attempt
from monitor.aws.session import AwsClients
from monitor.core.health import HealthRead, TargetHealth
from monitor.core.model import ReadFailure


def read_health(clients: AwsClients, target_group_arn: str, failures: list[ReadFailure],
                wall: Callable[[], float]) -> HealthRead | None:
    """The target group's health now; `wall` stamps the read when its answer has come, so a read
    never counts as taken before it was."""
    answer = attempt(failures, "elbv2", "DescribeTargetHealth",
                     lambda: clients.elbv2.describe_target_health(TargetGroupArn=target_group_arn), target_group_arn)
    if answer is None:
        return None
    return health_read(target_group_arn, answer, wall())


def health_read(target_group_arn: str, answer: dict, at: float) -> HealthRead:
    """A DescribeTargetHealth answer as a HealthRead (discovery reads the same answer to list targets)."""
    entries = []
    for description in answer.get("TargetHealthDescriptions", ()):
        target = description.get("Target", {})
        state = description.get("TargetHealth", {})
        # Held until the next read of the group: the ids are interned, shared with the topology's.
        entries.append(TargetHealth(target_id=sys.intern(str(target.get("Id", ""))), port=int(target.get("Port") or 0),
                                    state=sys.intern(str(state.get("State", ""))),
                                    reason=sys.intern(str(state.get("Reason", "")))))
    return HealthRead(sys.intern(target_group_arn), at, tuple(entries))
