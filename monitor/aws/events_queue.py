"""Long-polls the SQS queue an EventBridge rule fills with CloudTrail events, and turns one receive
into a `PollResult`: the new events that touch what is watched, with their lag, counts of
everything else by reason, and read failures as data. Every message it handled is deleted,
rejected ones included; nothing here raises.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.aws.calls import attempt
from monitor.aws.session import ApiCounter, side_client
from monitor.core.event_match import Watched, touches
from monitor.core.event_trust import Refused, describe, vet
from monitor.core.events import ApiEvent, Rejected, parse_message
from monitor.core.model import ReadFailure

# SQS limits: a receive waits at most 20 s for a message and returns at most 10. Long polling makes
# an idle queue cost one request per 20 s (about 130,000 a month), and an event arrives at once.
WAIT_SECONDS = 20
MAX_MESSAGES = 10
# The read must outlast the long poll, or every idle receive would time out.
READ_TIMEOUT_SECONDS = WAIT_SECONDS + 10
DEDUPE_EVENT_IDS = 10_000  # remembered event ids; EventBridge and SQS both deliver at least once
DUPLICATE = "duplicate"
UNWATCHED = "unwatched"
REJECTED = "rejected"  # another account or region, or dated in the future: see `PollResult.rejected`


@dataclass(frozen=True)
class Received:
    event: ApiEvent
    lag_seconds: float  # from the call (the event's time) to its receipt here


@dataclass(frozen=True)
class PollResult:
    events: tuple[Received, ...] = ()  # new events that touch something watched, in arrival order
    ignored: tuple[tuple[str, int], ...] = ()  # reason -> count: a Rejection value, "duplicate", "unwatched",
    # "rejected"
    received: int = 0  # messages received
    deleted: int = 0  # messages deleted
    failures: tuple[ReadFailure, ...] = ()
    rejected: tuple[Refused, ...] = ()  # the events not believed, and why

    def count(self, reason: str) -> int:
        return dict(self.ignored).get(reason, 0)


def connect_queue(region: str | None, counter: ApiCounter | None = None) -> Any:
    """An SQS client with the monitor's retries, and a read timeout longer than the long poll."""
    return side_client("sqs", region, counter, read_timeout=READ_TIMEOUT_SECONDS)


class EventsQueue:
    """One queue, read by one consumer. Messages are deleted once parsed, before anything acts on
    them: an event lost after that is caught by the next poll of the rules, which stays the backstop."""

    def __init__(self, sqs: Any, queue_url: str, *, wait_seconds: int = WAIT_SECONDS,
                 wall: Callable[[], float] = time.time, remember: int = DEDUPE_EVENT_IDS) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._wait = max(0, min(wait_seconds, WAIT_SECONDS))
        self._wall = wall
        self._remember = remember
        self._seen: OrderedDict[str, None] = OrderedDict()

    def poll(self, watched: Watched) -> PollResult:
        failures: list[ReadFailure] = []
        answer = attempt(failures, "sqs", "ReceiveMessage", lambda: self._sqs.receive_message(
            QueueUrl=self._url, MaxNumberOfMessages=MAX_MESSAGES, WaitTimeSeconds=self._wait), self._url)
        if answer is None:
            return PollResult(failures=tuple(failures))
        received_at = self._wall()
        messages = [m for m in answer.get("Messages", ()) if isinstance(m, dict)]
        events: list[Received] = []
        ignored: Counter[str] = Counter()
        rejected: list[Refused] = []
        deleted = 0
        for message in messages:
            outcome = self._classify(message.get("Body"), watched, received_at)
            if isinstance(outcome, ApiEvent):
                events.append(Received(outcome, max(0.0, received_at - outcome.event_time)))
            elif isinstance(outcome, Refused):
                ignored[REJECTED] += 1
                rejected.append(outcome)
            else:
                ignored[outcome] += 1
            if self._delete(message.get("ReceiptHandle"), failures):
                deleted += 1
        return PollResult(tuple(events), tuple(sorted(ignored.items())), len(messages), deleted, tuple(failures),
                          tuple(rejected))

    def _classify(self, body: Any, watched: Watched, now: float) -> ApiEvent | Refused | str:
        """The event, or why it is ignored."""
        parsed = parse_message(body) if isinstance(body, str) else None
        if parsed is None:
            return "malformed"
        if isinstance(parsed, Rejected):
            return parsed.reason.value
        distrust = vet(parsed, watched.account, watched.region, now)
        if distrust is not None:  # before the dedupe: a rejected event must not hide the real one of its id
            return describe(parsed, distrust, now)
        if parsed.event_id in self._seen:
            self._seen.move_to_end(parsed.event_id)
            return DUPLICATE
        self._seen[parsed.event_id] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return parsed if touches(parsed, watched) else UNWATCHED

    def _delete(self, receipt: Any, failures: list[ReadFailure]) -> bool:
        # One DeleteMessage per message rather than a batch: events are few, and the IAM action
        # (sqs:DeleteMessage) is then the operation itself. A failed delete only means SQS delivers
        # the message again after its visibility timeout, and the event id is then a duplicate.
        if not isinstance(receipt, str):
            return False
        return attempt(failures, "sqs", "DeleteMessage", lambda: self._sqs.delete_message(
            QueueUrl=self._url, ReceiptHandle=receipt), self._url) is not None


def probe(sqs: Any, queue_url: str) -> ReadFailure | None:
    """Whether the queue can be read, without taking a message from it (check and preflight)."""
    failures: list[ReadFailure] = []
    attempt(failures, "sqs", "GetQueueAttributes", lambda: sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"]), queue_url)
    return failures[0] if failures else None
