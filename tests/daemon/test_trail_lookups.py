"""Without an events queue, the daemon looks a revoked group up in CloudTrail and names the caller
later. moto does not serve LookupEvents: a small CloudTrail-shaped responder on loopback speaks its
JSON 1.1 protocol, and the real CloudTrail client reaches it through AWS_ENDPOINT_URL_CLOUDTRAIL
(the other services stay on moto), so botocore's own serialisation is what is tested."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import structlog.testing

from monitor.aws.trail_lookup import connect_cloudtrail
from monitor.core.settings import Settings
from monitor.daemon.trail_lookups import RETRY_AFTER, TrailLookups
from monitor.demo import world as demo_world
from monitor.surface.main import assemble_daemon
from tests.core.test_events import V2, V2_ROLE
from tests.daemon.test_attribution_daemon import metric
from tests.support.awsproxy import ERROR

TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"


class Trail:
    """Answers LookupEvents with the records given for a resource name; records every request."""

    def __init__(self) -> None:
        self.records: dict[str, list[dict]] = {}
        self.requests: list[tuple[str, dict]] = []
        trail = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                trail.requests.append((self.headers.get("X-Amz-Target", ""), body))
                if self.headers.get("X-Amz-Target") != TARGET:
                    return self._answer(400, {"__type": "UnknownOperationException"})
                names = [a["AttributeValue"] for a in body.get("LookupAttributes", ())
                         if a.get("AttributeKey") == "ResourceName"]
                events = [{"EventId": r["eventID"], "EventName": r["eventName"], "ReadOnly": "false",
                           "EventTime": datetime.fromisoformat(r["eventTime"].replace("Z", "+00:00")).timestamp(),
                           "EventSource": r["eventSource"], "Username": r["userIdentity"]["arn"].rsplit("/", 1)[-1],
                           "Resources": [{"ResourceType": "AWS::EC2::SecurityGroup", "ResourceName": n}],
                           "CloudTrailEvent": json.dumps(r)}
                          for n in names for r in trail.records.get(n, ())
                          if body["StartTime"] <= datetime.fromisoformat(
                              r["eventTime"].replace("Z", "+00:00")).timestamp() <= body["EndTime"]]
                self._answer(200, {"Events": events})

            def _answer(self, status: int, document: dict) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def lookups(self) -> list[dict]:
        return [body for target, body in self.requests if target == TARGET]


@pytest.fixture
def trail(monkeypatch):
    running = Trail()
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", running.url)
    yield running
    running.server.shutdown()


def revoke_record(group: str, rule_id: str, when: float) -> dict:
    """The CloudTrail record of a revoke by rule id, as LookupEvents returns it in CloudTrailEvent."""
    return {"eventVersion": "1.09", "userIdentity": V2,
            "eventTime": datetime.fromtimestamp(int(when), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "ec2.amazonaws.com", "eventName": "RevokeSecurityGroupIngress",
            "awsRegion": "ap-northeast-1", "sourceIPAddress": "10.0.1.23",
            "requestParameters": {"groupId": group, "securityGroupRuleIds": {
                "items": [{"securityGroupRuleId": rule_id}]}},
            "responseElements": {"_return": True}, "eventID": f"7a1b2c3d-0000-4000-8000-{rule_id[-12:]:0>12}",
            "readOnly": False, "eventType": "AwsApiCall", "managementEvent": True}


def test_a_revocation_without_a_queue_is_attributed_later_from_cloudtrail(world, trail):
    parts = assemble_daemon(Settings(cluster_name=world.cluster, kubernetes="off", listen="127.0.0.1:0",
                                     v2_controller_role_arn=V2_ROLE))
    try:
        assert parts.daemon.feed is None and parts.daemon.lookups is not None
        assert parts.daemon.run_once().ok
        rule_id = world.rule["shop_v1"]
        demo_world.revoke(world, "shop_v1")
        group = world.revoked["shop_v1"]["GroupId"]
        trail.records[group] = [revoke_record(group, rule_id, time.time() - 2)]
        first = parts.daemon.check()
        (finding,) = [f for f in first.report.findings
                      if f.code == "ACCESS_REVOKED" and f.load_balancer == world.lb_name["shop"]]
        assert finding.rule == rule_id and finding.attribution is None  # CloudTrail not asked yet
        assert group in parts.daemon.lookups.pending()
        assert parts.daemon.lookups.run_due()
        (asked,) = trail.lookups()
        assert asked["LookupAttributes"] == [{"AttributeKey": "ResourceName", "AttributeValue": group}]
        assert asked["StartTime"] < time.time() - 600 and asked["EndTime"] <= time.time() + 1
        later = parts.daemon.check()
        (finding,) = [f for f in later.report.findings
                      if f.code == "ACCESS_REVOKED" and f.load_balancer == world.lb_name["shop"]]
        assert finding.attribution is not None
        assert (finding.attribution.actor_kind, finding.attribution.principal) == ("v2_controller", V2["arn"])
        assert metric(parts, "albsg_revocations_attributed_total", actor_kind="v2_controller") == 1
        assert group not in parts.daemon.lookups.pending()  # attributed: no more lookups
        assert metric(parts, "albsg_aws_api_calls_total", service="cloudtrail", operation="LookupEvents") == 1
    finally:
        parts.server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_lookups_are_rate_limited_and_retried_a_bounded_number_of_times(trail, aws_env):
    clock = Clock()
    lookups = TrailLookups(connect_cloudtrail("ap-northeast-1"), wall=clock)
    lookups.request("sg-0aaa")
    lookups.request("sg-0bbb")
    assert lookups.run_due()
    clock.now += 1
    assert not lookups.run_due()  # one call every 10 s at most
    clock.now += 9
    assert lookups.run_due()
    assert [b["LookupAttributes"][0]["AttributeValue"] for b in trail.lookups()] == ["sg-0aaa", "sg-0bbb"]
    for _ in range(400):  # a little over an hour, in 10 s steps
        clock.now += 10
        lookups.run_due()
    assert len(trail.lookups()) == 2 * len(RETRY_AFTER)  # CloudTrail never had it: each group gave up
    assert lookups.pending() == {}
    times = [b["EndTime"] for b in trail.lookups()]
    assert all(later - earlier >= 10 for earlier, later in zip(times, times[1:]))


def test_a_failing_lookup_is_said_and_never_raises(monkeypatch, aws_env):
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDTRAIL", "http://127.0.0.1:9")  # nothing listens there
    lookups = TrailLookups(connect_cloudtrail("ap-northeast-1"), wall=Clock())
    lookups.request("sg-0aaa")
    assert lookups.run_due()
    assert lookups.recent() == () and lookups.pending() == {"sg-0aaa": 1}


# What a proxy or load balancer in front of CloudTrail answers when the service behind it fails.
ERROR_PAGE = ("<!doctype html>\n<html lang=en>\n<title>502 Bad Gateway</title>\n<h1>Bad Gateway</h1>\n"
              + "<p>The upstream server did not answer. " + "Please retry later. " * 300 + "</p>\n</html>\n")


def test_a_lookup_answered_by_an_html_error_page_logs_one_short_line(proxy):
    proxy.fail(["LookupEvents"], kind=ERROR, service="cloudtrail", status=403, body=ERROR_PAGE.encode())
    lookups = TrailLookups(connect_cloudtrail("ap-northeast-1"), wall=Clock())
    lookups.request("sg-0aaa")
    with structlog.testing.capture_logs() as logs:
        assert lookups.run_due()
    (failed,) = [entry for entry in logs if entry["event"] == "trail_lookup_failed"]
    assert failed["code"] == "403"
    assert failed["error"] == "502 Bad Gateway"  # the page's title: one line, no markup
    assert proxy.calls("LookupEvents") >= 1 and lookups.pending() == {"sg-0aaa": 1}


def test_a_long_one_line_error_is_cut_to_200_characters(proxy):
    proxy.fail(["LookupEvents"], kind=ERROR, service="cloudtrail", status=403,
               body=("Access denied by the egress filter: " + "rule 42 " * 100).encode())
    lookups = TrailLookups(connect_cloudtrail("ap-northeast-1"), wall=Clock())
    lookups.request("sg-0aaa")
    with structlog.testing.capture_logs() as logs:
        assert lookups.run_due()
    (failed,) = [entry for entry in logs if entry["event"] == "trail_lookup_failed"]
    assert failed["error"].startswith("Access denied by the egress filter: rule 42")
    assert len(failed["error"]) == 200 and failed["error"].endswith("…") and "\n" not in failed["error"]
