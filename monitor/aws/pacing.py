"""Our own AWS request budget for discovery: one pacer per API family, slowed down by throttling.

Discovery is the monitor's only burst (one DescribeTargetHealth per target group), and the account's
API budget is shared with the load balancer controller, the VPC CNI and the autoscalers. Each family
(`elbv2` describes, `ec2` describes) is a token bucket holding at most one token: a request waits
until 1/rate seconds have passed since the previous request of its family was answered, so AWS never
sees two closer than that, however slow an answer was. A throttling answer halves the family's rate
(down to a floor); every other answer adds a step back, up to the configured rate.

Only code that runs inside `Pacer.discovering()` is paced: the rule check's own reads (a couple of
requests a cycle) and the remediation writes are never held behind a discovery. (The few new load
balancers a check reads itself are discovery reads, and paced.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

# Error codes AWS answers with when a caller is over its request rate (EC2 and ELBv2 spellings).
THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
                              "RequestThrottled", "RequestThrottledException", "SlowDown"})
FAMILIES = ("elbv2", "ec2")
DEFAULT_RATE = 10.0
# Additive increase per answered request, as a share of the configured rate: after a halving, about
# ten answers bring the rate back (never above the configured rate).
INCREASE_SHARE = 0.05
# The rate never drops below this share of the configured one (nor below MIN_RATE).
FLOOR_SHARE = 0.05
MIN_RATE = 0.1


class PaceListener(Protocol):
    def discovery_rate(self, family: str, rate: float) -> None: ...

    def discovery_wait(self, family: str, seconds: float) -> None: ...


class Bucket:
    """One family's pacing: `take()` before a request, `answered()` after each answer. Pure but for
    the clock and the sleep, both injected."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("a rate is more than zero requests a second")
        self.configured = rate
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")  # earliest time the next request may be sent
        self._lock = threading.Lock()

    def take(self) -> float:
        """Wait for the token; returns the seconds waited."""
        with self._lock:
            waited = 0.0
            if self._next == float("inf"):  # the last answer was never heard of: space from now
                self._next = self._clock() + 1.0 / self.rate
            while True:
                left = self._next - self._clock()
                if left <= 0:
                    break
                self._sleep(left)
                waited += left
            # Until this request is answered, the next one waits (one token: no bursts).
            self._next = float("inf")
            return waited

    def answered(self, throttled: bool) -> None:
        """The request was answered (or failed): the next may go 1/rate seconds from now."""
        with self._lock:
            if throttled:
                self.rate = max(self.rate / 2, self.configured * FLOOR_SHARE, MIN_RATE)
            else:
                self.rate = min(self.configured, self.rate + self.configured * INCREASE_SHARE)
            self._next = self._clock() + 1.0 / self.rate

    def release(self) -> None:
        """The request was never sent (an error before sending): the next may go at once."""
        with self._lock:
            if self._next == float("inf"):
                self._next = self._clock()


class Pacer:
    """The buckets of every family, and whether the current thread is discovering."""

    def __init__(self, rate: float | None = DEFAULT_RATE, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._local = threading.local()
        self.listeners: list[PaceListener] = []
        self.buckets: dict[str, Bucket] = {}
        self.configure(rate)

    def configure(self, rate: float | None) -> None:
        """Requests a second per family; None: discovery is not paced."""
        self.buckets = {} if rate is None else {f: Bucket(rate, self._clock, self._sleep) for f in FAMILIES}
        self._publish()

    @contextmanager
    def discovering(self) -> Iterator[None]:
        """Pace this thread's requests while inside."""
        before = getattr(self._local, "active", False)
        self._local.active = True
        try:
            yield
        finally:
            self._local.active = before

    def _bucket(self, family: str) -> Bucket | None:
        if not getattr(self._local, "active", False):
            return None
        return self.buckets.get(family)

    def before_send(self, family: str) -> None:
        bucket = self._bucket(family)
        if bucket is None:
            return
        waited = bucket.take()
        if waited > 0:
            for listener in self.listeners:
                listener.discovery_wait(family, waited)

    def answered(self, family: str, code: str | None) -> None:
        bucket = self._bucket(family)
        if bucket is None:
            return
        rate = bucket.rate
        bucket.answered(code in THROTTLING_CODES)
        if bucket.rate != rate:
            for listener in self.listeners:
                listener.discovery_rate(family, bucket.rate)

    def add_listener(self, listener: PaceListener) -> None:
        self.listeners.append(listener)
        self._publish()

    def _publish(self) -> None:
        for family, bucket in self.buckets.items():
            for listener in getattr(self, "listeners", ()):
                listener.discovery_rate(family, bucket.rate)
