"""Events are evidence, not truth: the daemon over moto with its events queue, fed events from the
wrong account or region, dated ahead, forged, or in floods, must neither believe nor act on more
than its own reads show."""

from __future__ import annotations

import json
import time

import structlog

from monitor.demo import world as demo_world
from monitor.demo.trail import _rule_item
from tests.test_attribution_daemon import (event_id, metric, parts, poll_until, revoke_by_id,  # noqa: F401
                                           rule_pair, stamp)
from tests.test_events import HUMAN, V2, message
from tests.test_events_queue import aws, put, queue, remaining  # noqa: F401  (fixtures)


def poll_until_read(built, messages: int) -> None:
    """Poll until `messages` messages were read from the queue, whatever became of them (bounded)."""
    deadline = time.monotonic() + 60
    while sum(metric(built, "albsg_events_total", result=r) or 0
              for r in ("matched", "rejected", "unwatched", "duplicate")) < messages:
        assert time.monotonic() < deadline, "the messages never arrived"
        built.daemon.feed.poll_once()


def send(built, *envelopes: dict) -> None:
    """Straight onto the queue, as anyone allowed sqs:SendMessage can, envelope and all."""
    for envelope in envelopes:
        aws("sqs").send_message(QueueUrl=built.daemon.feed.queue_url, MessageBody=json.dumps(envelope))


def account_of(built) -> str:
    return built.daemon.topology.load_balancers[0].arn.split(":")[4]


def shop_finding(summary, world):
    (finding,) = [f for f in summary.report.findings
                  if f.code == "ACCESS_REVOKED" and f.load_balancer == world.lb_name["shop"]]
    return finding


def test_events_from_another_account_or_region_are_rejected_counted_and_logged_once_a_minute(world, parts):
    assert parts.daemon.run_once().ok
    foreign = revoke_by_id(world, "shop_v1", HUMAN)
    foreign["account"] = "999999999999"  # another account's bus forwards to this queue
    elsewhere = revoke_by_id(world, "blog_v1", HUMAN)
    elsewhere["account"], elsewhere["region"] = account_of(parts), "us-west-2"
    again = dict(foreign, detail=dict(foreign["detail"], eventID=event_id()))
    with structlog.testing.capture_logs() as logs:
        send(parts, foreign, elsewhere, again)
        poll_until_read(parts, 3)
    assert metric(parts, "albsg_events_rejected_total", reason="other_account") == 2
    assert metric(parts, "albsg_events_rejected_total", reason="other_region") == 1
    assert metric(parts, "albsg_events_total", result="rejected") == 3
    assert metric(parts, "albsg_events_total", result="matched") == 0
    said = [e for e in logs if e["event"] == "event_rejected"]
    # one line per reason within the minute, however many events
    assert sorted(e["reason"] for e in said) == ["other_account", "other_region"]
    assert "999999999999" in next(e["detail"] for e in said if e["reason"] == "other_account")
    assert remaining(parts.daemon.feed.queue_url) == 0
    summary = parts.daemon.check()
    # the reads still see both cuts; no rejected event names who made them
    assert shop_finding(summary, world).attribution is None
    assert all(f.attribution is None for f in summary.report.findings)


def forged_revoke(world, key: str, identity: dict, when: float) -> dict:
    """The event of a revoke of a world rule by its id, without the call: anyone can write one."""
    return message("RevokeSecurityGroupIngress",
                   {"groupId": world.sg["cluster"], "securityGroupRuleIds": {"items": [
                       {"securityGroupRuleId": world.rule[key]}]}},
                   {"_return": True}, identity=identity, time=stamp(at=when), event_id=event_id(), account=False)


def test_an_event_dated_years_ahead_is_rejected_and_cannot_steal_the_attribution_of_the_real_revoke(world, parts):
    assert parts.daemon.run_once().ok
    # Someone who can write to the queue names the rule the v2 controller is about to revoke, years ahead.
    put(forged_revoke(world, "shop_v1", HUMAN, time.time() + 5 * 365 * 86400))
    poll_until_read(parts, 1)
    assert metric(parts, "albsg_events_rejected_total", reason="future") == 1
    assert parts.daemon.feed.recent() == ()  # not kept: it would outlive every real event
    put(revoke_by_id(world, "shop_v1", V2))
    poll_until(parts, 1)
    finding = shop_finding(parts.daemon.check(), world)
    assert finding.attribution is not None and finding.attribution.principal == V2["arn"]


def forged_pair(world, key: str, identity: dict, when: float, gap: float) -> tuple[dict, dict]:
    """A revoke and a grant of a world rule as CloudTrail would record them, without either call:
    the revoke names the rule's real id, the grant an id AWS never gave."""
    rule = world.clients()["ec2"].describe_security_group_rules(
        SecurityGroupRuleIds=[world.rule[key]])["SecurityGroupRules"][0]
    item = _rule_item(rule)
    revoke = message("RevokeSecurityGroupIngress", {"groupId": rule["GroupId"], "securityGroupRuleIds": {
        "items": [{"securityGroupRuleId": rule["SecurityGroupRuleId"]}]}},
        {"_return": True, "revokedSecurityGroupRuleSet": {"items": [item]}}, identity=identity,
        time=stamp(at=when), event_id=event_id(), account=False)
    grant = message("AuthorizeSecurityGroupIngress", {"groupId": rule["GroupId"]},
                    {"_return": True, "securityGroupRuleSet": {"items": [dict(item, securityGroupRuleId="sgr-0forged")]}},
                    identity=identity, time=stamp(at=when + gap), event_id=event_id(), account=False)
    return revoke, grant


def test_a_forged_revoke_and_grant_pair_records_no_outage_window_and_names_no_culprit(world, parts):
    assert parts.daemon.run_once().ok
    logs = structlog.testing.LogCapture()
    structlog.configure(processors=[logs])
    try:
        put(*forged_pair(world, "shop_v1", HUMAN, time.time() - 100, 4))
        poll_until(parts, 2)
        for _ in range(2):
            summary = parts.daemon.check()
    finally:
        structlog.reset_defaults()
    assert not [e for e in logs.entries if e["event"] == "outage_window"]
    assert metric(parts, "albsg_outage_windows_total") == 0
    assert [e["windows"] for e in logs.entries if e["event"] == "outage_window_not_seen"] == [1]
    assert not [f for f in summary.report.findings if f.attribution is not None]
    # a real revoke-then-grant of the same rule is still seen, with its length
    revoke, grant = rule_pair(world, "shop_v1", V2, V2, time.time() - 10, 3)
    put(revoke, grant)
    poll_until(parts, 4)
    parts.daemon.check()
    assert metric(parts, "albsg_outage_windows_total") == 1
    assert metric(parts, "albsg_outage_window_seconds_sum") == 3.0
