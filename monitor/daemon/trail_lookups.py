"""Without an events queue: after a revocation is detected, look its security group up in CloudTrail
(LookupEvents) to say later who cut it. CloudTrail makes an event searchable minutes after the call,
so each group is tried a few times on a schedule; LookupEvents allows two calls a second per account
and region, shared with everyone, so the monitor makes at most one every RATE_SECONDS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from monitor.aws.trail_lookup import lookup_group
from monitor.core.events import ApiEvent

log = structlog.get_logger("monitor.trail_lookups")

RATE_SECONDS = 10.0
# Seconds after the detection at which a group is looked up: at once (the call may be old), then
# while CloudTrail catches up (typically within 5 minutes, at worst about 15).
RETRY_AFTER = (0.0, 120.0, 300.0, 600.0, 900.0)
WINDOW_BEFORE_SECONDS = 900.0  # how far before the detection the cut may have happened
KEEP_EVENTS = 500


class TrailLookups:
    """Pending lookups, one per security group, and the events they found."""

    def __init__(self, client: Any, *, wall: Callable[[], float] = time.time, rate_seconds: float = RATE_SECONDS,
                 retry_after: tuple[float, ...] = RETRY_AFTER) -> None:
        self._client = client
        self._wall = wall
        self._rate = rate_seconds
        self._retry_after = retry_after
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[float, int]] = {}  # group -> (detected at, attempts made)
        self._found: dict[str, ApiEvent] = {}  # event id -> event
        self._last_call: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def request(self, group: str) -> None:
        """Look this group up (again from the start of the schedule if it is not pending)."""
        with self._lock:
            self._pending.setdefault(group, (self._wall(), 0))

    def done(self, group: str) -> None:
        """The cut of this group is attributed: no more lookups for it."""
        with self._lock:
            self._pending.pop(group, None)

    def pending(self) -> dict[str, int]:
        with self._lock:
            return {group: attempts for group, (_, attempts) in self._pending.items()}

    def recent(self) -> tuple[ApiEvent, ...]:
        with self._lock:
            return tuple(self._found.values())

    def run_due(self) -> bool:
        """At most one LookupEvents call, if one is due and the rate allows it; True if one was made."""
        now = self._wall()
        with self._lock:
            if self._last_call is not None and now - self._last_call < self._rate:
                return False
            due = sorted((detected + self._retry_after[attempts], group, detected, attempts)
                         for group, (detected, attempts) in self._pending.items())
            if not due or due[0][0] > now:
                return False
            _, group, detected, attempts = due[0]
            self._last_call = now
            attempts += 1
            if attempts >= len(self._retry_after):
                self._pending.pop(group)
            else:
                self._pending[group] = (detected, attempts)
        events, failure = lookup_group(self._client, group, detected - WINDOW_BEFORE_SECONDS, now)
        if failure is not None:
            log.warning("trail_lookup_failed", security_group=group, attempt=attempts, code=failure.code,
                        error=failure.message)
        else:
            log.info("trail_lookup", security_group=group, attempt=attempts, events=len(events))
        with self._lock:
            for event in events:
                self._found[event.event_id] = event
            while len(self._found) > KEEP_EVENTS:
                self._found.pop(next(iter(self._found)))
        return True

    # -- the thread ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="trail-lookups", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 0.5) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.run_due()
            except Exception:  # never end the thread: attribution is a nicety, the checks go on
                log.exception("trail_lookup_crashed")
