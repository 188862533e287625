"""The daemon's events thread: long-polls the events queue, counts what arrives, asks for a rule
check (or a topology refresh) when an event touches something watched, keeps the recent events for
attribution, and records the outage windows that revoke-then-grant pairs reveal once a check's read
confirms them (monitor.core.event_evidence): an event is evidence, never a verdict.

A queue that cannot be read is said once (log, and a finding through the daemon) and retried with
backoff; polling the rules goes on whatever happens here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from monitor.core.event_evidence import OutageIndex, Sightings
from monitor.core.event_match import Outage, Watched
from monitor.core.event_trust import LogLimiter, Refused
from monitor.core.events import ELB, ApiEvent
from monitor.core.model import Finding, ReadFailure, Severity
from monitor.daemon.ports import MetricsSink

log = structlog.get_logger("monitor.event_feed")

# Events kept for attribution and outage windows: a cut older than this was seen by the polls long
# ago, and its event would only be matched by an unrelated later finding.
KEEP_SECONDS = 3600.0
KEEP_EVENTS = 2000
FAILURE_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# The queue is healthy while its last receive succeeded within this long (a receive waits up to 20 s).
HEALTHY_WITHIN_SECONDS = 60.0


class Queue(Protocol):
    def poll(self, watched: Watched) -> Any: ...


class EventSink(Protocol):
    def record(self, namespace: str, ingress: str, reason: str, message: str, warning: bool, now: float) -> bool: ...


class EventFeed:
    """One consumer of the events queue, in a thread of its own once started."""

    def __init__(self, queue: Queue, metrics: MetricsSink, *, queue_url: str = "", wall: Callable[[], float] = time.time,
                 events: EventSink | None = None) -> None:
        self._queue = queue
        self._metrics = metrics
        self.queue_url = queue_url
        self._wall = wall
        self.events = events
        self._lock = threading.Lock()
        self._recent: list[ApiEvent] = []
        self._index = OutageIndex()
        self._pending: list[Outage] = []  # windows the events show, until a read confirms or refutes them
        self._forgot_at = float("-inf")
        self._said_unseen = LogLimiter()
        self._failure: ReadFailure | None = None
        self._said_rejected = LogLimiter()
        self._polled = False
        self._read_at: float | None = None  # wall time of the last receive that succeeded
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Set by the daemon: what is watched now, what to do on a matched event, and which Ingresses
        # sit behind a security group (for the outage window's Kubernetes Event).
        self.watched: Callable[[], Watched | None] = lambda: None
        self.on_matched: Callable[[tuple[ApiEvent, ...]], None] = lambda events: None
        self.ingresses_of_group: Callable[[str], list[tuple[str, str]]] = lambda group: []
        self.may_post: Callable[[], bool] = lambda: True
        self.on_outage: list[Callable[[Outage], None]] = []  # e.g. the demo's view

    # -- state the daemon reads ---------------------------------------------------------------
    def recent(self) -> tuple[ApiEvent, ...]:
        with self._lock:
            return tuple(self._recent)

    def healthy(self, now: float) -> bool:
        """Whether the queue is read: its last receive succeeded, recently. Not before a first poll."""
        read_at = self._read_at
        return self._failure is None and read_at is not None and now - read_at <= HEALTHY_WITHIN_SECONDS

    @property
    def failure(self) -> ReadFailure | None:
        """The last receive's failure while the queue cannot be read; None once it is read again."""
        return self._failure

    # -- one poll -----------------------------------------------------------------------------
    def poll_once(self) -> Any:
        watched = self.watched()
        if watched is None:  # no topology yet: nothing is watched, so keep the messages for later
            return None
        result = self._queue.poll(watched)
        self._polled = True
        self._note_failures(result.failures)
        if self._failure is None:
            self._read_at = self._wall()
        for reason, count in result.ignored:
            self._metrics.count_events(reason, count)
        now = self._wall()
        self._note_rejected(result.rejected, now)
        if not result.events:
            return result
        fresh: list[ApiEvent] = []
        for received in result.events:
            event = received.event
            self._metrics.observe_event(event.event_name, received.lag_seconds)
            log.info("event_matched", event_name=event.event_name, event_id=event.event_id,
                     principal=event.principal.arn, security_groups=list(event.security_groups),
                     lag_seconds=round(received.lag_seconds, 3))
            fresh.append(event)
        with self._lock:
            kept = [e for e in self._recent + fresh if e.event_time >= now - KEEP_SECONDS]
            self._recent = kept[-KEEP_EVENTS:]
            if now - self._forgot_at >= 60.0:
                self._index.forget_before(now - KEEP_SECONDS)
                self._forgot_at = now
            self._pending.extend(self._index.add(fresh))
            del self._pending[:-KEEP_EVENTS]
        try:
            self.on_matched(tuple(fresh))
        except Exception:  # the check is asked for best effort: the poll stays the backstop
            log.exception("event_trigger_failed")
        return result

    def _note_rejected(self, rejected: tuple[Refused, ...], now: float) -> None:
        for refused in rejected:
            self._metrics.count_rejected_event(refused.reason.value)
            count = self._said_rejected.note(refused.reason.value, now)
            if count is not None:  # at most one line per reason a minute, with the count since the last
                log.warning("event_rejected", reason=refused.reason.value, events=count, event_id=refused.event_id,
                            event_name=refused.event_name, detail=refused.detail)

    def _note_failures(self, failures: tuple[ReadFailure, ...]) -> None:
        receive = next((f for f in failures if f.operation == "ReceiveMessage"), None)
        if receive is not None and self._failure is None:
            log.warning("events_queue_unreachable", queue=self.queue_url, code=receive.code,
                        error=receive.message[:200])
        elif receive is None and self._failure is not None:
            log.info("events_queue_reachable", queue=self.queue_url)
        self._failure = receive
        for failure in failures:
            if failure.operation != "ReceiveMessage":
                log.warning("events_message_not_deleted", queue=self.queue_url, code=failure.code)

    def saw_rules(self, seen: Sightings, now: float) -> None:
        """After a check's read (already in `seen`): announce the outage windows the reads now agree
        with, drop those they contradict, keep the rest until a read of their group or an hour."""
        with self._lock:
            pending, self._pending = self._pending, []
        keep, confirmed, refuted = [], [], 0
        for outage in pending:
            verdict = seen.judge(outage)
            if verdict is True:
                confirmed.append(outage)
            elif verdict is False:
                refuted += 1
            elif outage.granted.event_time >= now - KEEP_SECONDS:
                keep.append(outage)
        with self._lock:
            self._pending = keep + self._pending
        for outage in confirmed:
            self._announce_outage(outage, now)
        if refuted and (count := self._said_unseen.note("unseen", now, refuted)) is not None:
            # A pair of events the reads do not bear out: forged, or about a rule never watched.
            log.info("outage_window_not_seen", windows=count)

    def _announce_outage(self, outage: Outage, now: float) -> None:
        seconds = outage.seconds
        self._metrics.observe_outage_window(seconds)
        log.warning("outage_window", direction=outage.direction, security_group=outage.rule.group_id,
                    rule=outage.rule.text(), seconds=round(seconds, 3),
                    revoked_by=outage.revoked.principal.arn, revoke_event_id=outage.revoked.event_id,
                    granted_by=outage.granted.principal.arn, grant_event_id=outage.granted.event_id)
        for listener in self.on_outage:
            try:
                listener(outage)
            except Exception:
                log.exception("outage_listener_failed")
        if self.events is None or not self.may_post():
            return
        message = (f"{outage.rule.text()} was revoked by {outage.revoked.principal.arn} "
                   f"(event {outage.revoked.event_id}) and granted again {seconds:g}s later by "
                   f"{outage.granted.principal.arn} (event {outage.granted.event_id}): traffic through it "
                   f"was cut for {seconds:g}s.")
        for namespace, ingress in self.ingresses_of_group(outage.rule.group_id):
            self.events.record(namespace, ingress, "OutageWindow", message, True, now)

    # -- the thread ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="events-queue", daemon=True)
        self._thread.start()
        log.info("events_queue_started", queue=self.queue_url)

    def stop(self, timeout: float = 1.0) -> bool:
        """Ask the thread to stop; True if it has. A receive in its long poll is not waited for: the
        thread is a daemon thread, and a message it receives then is delivered again later."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                result = self.poll_once()
            except Exception:  # never let the thread die: the polls of the rules need no help
                log.exception("events_poll_failed")
                result = None
                failures += 1
            else:
                failures = failures + 1 if self._failure is not None else 0
            if result is None and failures == 0:
                self._stop.wait(1.0)  # no topology yet
            elif failures:
                self._stop.wait(FAILURE_BACKOFF[min(failures, len(FAILURE_BACKOFF)) - 1])


def needs_refresh(event: ApiEvent) -> bool:
    """Events that change the topology itself (an ALB's groups, targets, an ENI's groups), not only
    rules: the check alone would read rules against a stale topology."""
    return event.source == ELB or bool(event.network_interfaces)


def attribution_off(queue_url: str, code: str) -> Finding:
    return Finding(code="ATTRIBUTION_OFF", severity=Severity.WARNING, message=(
        f"the events queue {queue_url} cannot be read ({code}): who cuts a path is not known and gaps "
        "shorter than a check go unseen; the rules are still checked every interval. Check the queue URL, "
        "its region, and sqs:ReceiveMessage and sqs:GetQueueAttributes in the monitor's role."))
