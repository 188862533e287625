"""Decides whether a parsed event may be believed at all: it must come from the account and region
the monitor watches and must not be dated in the future; everything else about it is checked later
against the monitor's own reads (monitor.core.event_evidence).

Pure: the event, the expected account and region, and `now` in; a reason (or None) out.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from monitor.core.events import ApiEvent

# Clocks of AWS and of the node differ by seconds; a few minutes of slack still stops an event
# dated ahead from outliving the real ones it would be compared with (it is kept until its time).
CLOCK_SKEW_SECONDS = 300.0
# How often each reason of rejection is logged (with the count since the last line): a flood of
# forged messages must not flood the logs too.
LOG_EVERY_SECONDS = 60.0

_ARN = re.compile(r"arn:[\w-]+:[\w-]+:(?P<region>[a-z0-9-]*):(?P<account>\d{12}):.+")


class Distrust(str, Enum):
    """Why a well-formed event is rejected (albsg_events_rejected_total's `reason`)."""

    OTHER_ACCOUNT = "other_account"
    OTHER_REGION = "other_region"
    FUTURE = "future"


def origin(arns: Iterable[str]) -> tuple[str | None, str | None]:
    """(account, region) of the watched load balancers' ARNs: the only account and region whose
    events concern them. None where the ARNs say nothing (no load balancer) or disagree."""
    accounts, regions = set(), set()
    for arn in arns:
        match = _ARN.fullmatch(arn)
        if match:
            accounts.add(match["account"])
            regions.add(match["region"])
    return (next(iter(accounts)) if len(accounts) == 1 else None,
            next(iter(regions)) if len(regions) == 1 else None)


def vet(event: ApiEvent, account: str | None, region: str | None, now: float) -> Distrust | None:
    """Why the event is not to be believed, or None.

    An event that names no account is not rejected for it: EventBridge always sets one, so only a
    message sent to the queue directly (or an emulator) lacks it, and what such a message can do is
    bounded by the reads (docs/daemon.md, "What an event can and cannot do")."""
    if account is not None and event.account is not None and event.account != account:
        return Distrust.OTHER_ACCOUNT
    if region is not None and event.region is not None and event.region != region:
        return Distrust.OTHER_REGION
    if event.event_time > now + CLOCK_SKEW_SECONDS:
        return Distrust.FUTURE
    return None


@dataclass(frozen=True)
class Refused:
    """One rejected event, as the log line names it."""

    reason: Distrust
    event_id: str
    event_name: str
    detail: str


def describe(event: ApiEvent, reason: Distrust, now: float) -> Refused:
    detail = {Distrust.OTHER_ACCOUNT: f"account {event.account}", Distrust.OTHER_REGION: f"region {event.region}",
              Distrust.FUTURE: f"dated {event.event_time - now:.0f}s ahead"}[reason]
    return Refused(reason, event.event_id, event.event_name, detail)


@dataclass
class LogLimiter:
    """Counts rejections by reason and says when one is due to be logged: at most once per reason
    every `every` seconds, with the count since the last line."""

    every: float = LOG_EVERY_SECONDS
    _pending: Counter = field(default_factory=Counter)
    _last: dict[str, float] = field(default_factory=dict)

    def note(self, reason: str, now: float, count: int = 1) -> int | None:
        """Count `count` more; the count to log now, or None while the reason was logged lately."""
        self._pending[reason] += count
        last = self._last.get(reason)
        if last is not None and now - last < self.every:
            return None
        self._last[reason] = now
        return self._pending.pop(reason)
