"""The events queue adapter over moto, through real HTTP: an EventBridge rule on the default bus with
the shipped event pattern and an SQS target, CloudTrail-shaped events put on the bus (moto delivers
them through the rule during the call), then read, counted and deleted by the adapter."""

from __future__ import annotations

import itertools
import json
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest

from monitor.aws.events_queue import DUPLICATE, UNWATCHED, EventsQueue, PollResult, connect_queue
from monitor.aws.session import ApiCounter
from monitor.core.event_match import ActorKind, Watched, actor_kind
from monitor.core.events import Rejection
from tests.core.test_events import HUMAN, NODE_SG, ROLES, V2, message, node_rule, sg_permission

ROOT = Path(__file__).resolve().parents[2]
PATTERN = (ROOT / "deploy" / "events" / "event-pattern.json").read_text()
WATCHED = Watched(security_groups=frozenset({NODE_SG}))
_names = itertools.count()
REGION = "ap-northeast-1"  # the aws_env fixture's AWS_REGION (boto3 itself reads AWS_DEFAULT_REGION)
_ids = itertools.count()


def aws(service: str):
    return boto3.client(service, region_name=REGION)


@pytest.fixture
def queue(aws_env):
    """A queue fed by a rule with the shipped pattern, as deploy/terraform/events.tf sets them up."""
    name = f"alb-sg-monitor-events-test-{next(_names)}"
    sqs, events = aws("sqs"), aws("events")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventPattern=PATTERN, State="ENABLED")
    events.put_targets(Rule=name, Targets=[{"Id": "monitor", "Arn": arn}])
    yield url
    events.remove_targets(Rule=name, Ids=["monitor"])
    events.delete_rule(Name=name)
    sqs.delete_queue(QueueUrl=url)


def put(*envelopes: dict) -> None:
    """What CloudTrail does on AWS: put each event on the default bus."""
    entries = [{"Source": e["source"], "DetailType": e["detail-type"], "Detail": json.dumps(e["detail"])}
               for e in envelopes]
    answer = aws("events").put_events(Entries=entries)
    assert answer["FailedEntryCount"] == 0, answer


def revoke(identity: dict, group: str = NODE_SG, *, event_id: str | None = None, seconds_ago: float = 3.0) -> dict:
    when = datetime.fromtimestamp(int(time.time() - seconds_ago), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return message("RevokeSecurityGroupIngress",
                   {"groupId": group, "ipPermissions": {"items": [sg_permission("tcp", 30000, 30100, "sg-0backend")]}},
                   {"_return": True}, identity=identity, time=when,
                   event_id=event_id or f"0e7c2f4a-0000-4000-8000-{next(_ids):012d}")


def drain(adapter: EventsQueue, expected_messages: int) -> list[PollResult]:
    """Poll until `expected_messages` were received (bounded: a loaded machine may be slow)."""
    results: list[PollResult] = []
    deadline = time.monotonic() + 60
    while sum(r.received for r in results) < expected_messages and time.monotonic() < deadline:
        results.append(adapter.poll(WATCHED))
        assert not results[-1].failures, results[-1].failures
    return results


def total(results: list[PollResult], reason: str) -> int:
    return sum(r.count(reason) for r in results)


def remaining(url: str) -> int:
    attributes = aws("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(v) for v in attributes["Attributes"].values())


def test_a_revoke_by_the_v2_controller_and_one_by_a_human_are_attributed(queue):
    counter = ApiCounter()
    adapter = EventsQueue(connect_queue(None, counter), queue, wait_seconds=1)
    put(revoke(V2, seconds_ago=3), revoke(HUMAN, seconds_ago=5))
    results = drain(adapter, 2)
    received = [r for result in results for r in result.events]
    kinds = sorted(actor_kind(r.event.principal, ROLES).value for r in received)
    assert kinds == [ActorKind.OTHER.value, ActorKind.V2_CONTROLLER.value]
    for r in received:
        assert r.event.rules[0].rule == node_rule(30000, 30100)
        assert r.event.account is None  # moto leaves `account` out; real EventBridge sends it
        assert 2.0 <= r.lag_seconds < 60, r.lag_seconds
    assert sum(r.deleted for r in results) == 2 and remaining(queue) == 0
    assert counter.calls[("sqs", "DeleteMessage")] == 2


def test_malformed_duplicate_unwatched_and_failed_calls_are_counted_and_deleted(queue):
    adapter = EventsQueue(connect_queue(None), queue, wait_seconds=1)
    twice = revoke(V2, event_id="0e7c2f4a-dddd-4000-8000-000000000001")
    failed = revoke(V2)
    failed["detail"]["errorCode"] = "Client.UnauthorizedOperation"
    put(twice, twice, revoke(HUMAN, group="sg-0unwatched"), failed)
    aws("sqs").send_message(QueueUrl=queue, MessageBody="{not json")
    results = drain(adapter, 5)
    assert [r.event.event_id for result in results for r in result.events] == [twice["detail"]["eventID"]]
    assert total(results, DUPLICATE) == 1
    assert total(results, UNWATCHED) == 1
    assert total(results, Rejection.MALFORMED.value) == 1
    assert total(results, Rejection.FAILED_CALL.value) == 1
    assert sum(r.deleted for r in results) == 5 and remaining(queue) == 0


def test_an_event_the_pattern_does_not_list_never_reaches_the_queue(queue):
    adapter = EventsQueue(connect_queue(None), queue, wait_seconds=1)
    put(message("RunInstances", {}, source="aws.ec2"), revoke(V2))
    results = drain(adapter, 1)
    assert sum(r.received for r in results) == 1 and len(results[0].events) == 1
    assert adapter.poll(WATCHED).received == 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_missing_queue_is_a_read_failure_not_an_exception(aws_env):
    missing = f"{aws_env}/123456789012/alb-sg-monitor-events-gone"
    result = EventsQueue(connect_queue(None), missing, wait_seconds=1).poll(WATCHED)
    assert result.events == () and result.received == 0
    (failure,) = result.failures
    assert (failure.service, failure.operation) == ("sqs", "ReceiveMessage")
    assert "NonExistentQueue" in failure.code or "QueueDoesNotExist" in failure.code, failure
    assert failure.scope == missing


def test_an_unreachable_endpoint_is_a_read_failure_not_an_exception(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    url = "https://sqs.ap-northeast-1.amazonaws.com/123456789012/alb-sg-monitor-events-prod"
    result = EventsQueue(connect_queue(None), url, wait_seconds=1).poll(WATCHED)
    (failure,) = result.failures
    assert failure.code == "EndpointConnectionError" and result.events == ()


def test_duplicates_are_remembered_within_a_bound_and_an_idle_poll_is_one_request(queue):
    """The dedupe memory is bounded: past `remember` newer ids, an old id counts as new again."""
    counter = ApiCounter()
    adapter = EventsQueue(connect_queue(None, counter), queue, wait_seconds=1, remember=2)
    first, second, third = (revoke(V2, event_id=f"0e7c2f4a-eeee-4000-8000-00000000000{i}") for i in range(3))
    seen = []
    for batch in ([first, first], [second, third], [first]):
        put(*batch)
        results = drain(adapter, len(batch))
        seen.append((sum(len(r.events) for r in results), total(results, DUPLICATE)))
    assert seen == [(1, 1), (2, 0), (1, 0)]  # `first` forgotten after two newer ids: new again
    assert adapter.poll(WATCHED).received == 0
    calls = dict(counter.calls)
    adapter.poll(WATCHED)
    assert {k: v - calls.get(k, 0) for k, v in counter.calls.items() if v != calls.get(k, 0)} == {
        ("sqs", "ReceiveMessage"): 1}
    assert counter.calls[("sqs", "DeleteMessage")] == 5 and remaining(queue) == 0


@pytest.mark.parametrize("max_attempts, sent", [("1", 1), (None, 3)])
def test_the_queue_client_keeps_to_aws_max_attempts_like_the_checks_clients(aws_env, monkeypatch, max_attempts, sent):
    """AWS_MAX_ATTEMPTS (or the profile's max_attempts) bounds the queue's retries as it bounds the
    checks': 1 is one request per poll; unset, the monitor's own 3."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    if max_attempts is None:
        monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    else:
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", max_attempts)
    counter = ApiCounter()
    url = "https://sqs.ap-northeast-1.amazonaws.com/123456789012/alb-sg-monitor-events-prod"
    result = EventsQueue(connect_queue(None, counter), url, wait_seconds=1).poll(WATCHED)
    assert result.failures and counter.calls[("sqs", "ReceiveMessage")] == sent
