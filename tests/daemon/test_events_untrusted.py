"""Events are evidence, not truth: the daemon over moto with its events queue, fed events from the
wrong account or region, dated ahead, forged, or in floods, must neither believe nor act on more
than its own reads show."""

from __future__ import annotations

import json
import time

import structlog

from monitor.demo import world as demo_world
from monitor.demo.trail import _rule_item
from tests.aws.test_events_queue import aws, put, queue, remaining  # noqa: F401  (fixtures)
from tests.core.test_events import HUMAN, V2, message
from tests.daemon.test_attribution_daemon import event_id, metric, parts, poll_until, revoke_by_id, rule_pair, stamp  # noqa: F401


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
    summary = parts.daemon.check()
    # the reads see both cuts; no event of another account or region names who made them
    assert shop_finding(summary, world).rule and shop_finding(summary, world).attribution is None
    assert all(f.attribution is None for f in summary.report.findings)
    assert metric(parts, "albsg_events_rejected_total", reason="other_account") == 2
    assert metric(parts, "albsg_events_rejected_total", reason="other_region") == 1
    assert metric(parts, "albsg_events_total", result="rejected") == 3
    assert metric(parts, "albsg_events_total", result="matched") == 0
    said = [e for e in logs if e["event"] == "event_rejected"]
    # one line per reason within the minute, however many events
    assert sorted(e["reason"] for e in said) == ["other_account", "other_region"]
    assert "999999999999" in next(e["detail"] for e in said if e["reason"] == "other_account")
    assert remaining(parts.daemon.feed.queue_url) == 0


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
    put(revoke_by_id(world, "shop_v1", V2))
    poll_until_read(parts, 2)
    finding = shop_finding(parts.daemon.check(), world)
    assert finding.attribution is not None and finding.attribution.principal == V2["arn"]
    assert metric(parts, "albsg_events_rejected_total", reason="future") == 1
    # not kept: it would outlive every real event
    assert [e.principal.arn for e in parts.daemon.feed.recent()] == [V2["arn"]]


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


def test_five_thousand_matched_events_are_processed_in_seconds_and_ask_for_a_few_checks(world, monkeypatch,
                                                                                          record_property):
    from monitor.surface.main import assemble_daemon
    from tests.core.test_events import sg_permission
    from tests.daemon.test_attribution_daemon import settings
    from tests.support.sqs_standin import SqsStandIn

    with SqsStandIn() as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", standin.url)
        built = assemble_daemon(settings(world, standin.queue_url))
        try:
            built.daemon.feed._queue._wait = 0
            assert built.daemon.run_once().ok
            asked: list[str] = []
            built.daemon.on_check_wanted = asked.append
            built.daemon.on_refresh_wanted = asked.append
            group, peer, account = world.sg["cluster"], world.sg["backend"], account_of(built)
            start = time.time() - 1800
            bodies = []
            for n in range(2500):  # a revoke and a grant of 2,500 rules, a second apart
                for name, at in (("RevokeSecurityGroupIngress", 0), ("AuthorizeSecurityGroupIngress", 1)):
                    envelope = message(name, {"groupId": group, "ipPermissions": {"items": [
                        sg_permission("tcp", 1000 + n, 1000 + n, peer)]}}, {"_return": True}, identity=HUMAN,
                        time=stamp(at=start + n * 0.5 + at), event_id=event_id(), account=False)
                    envelope["account"] = account
                    bodies.append(json.dumps(envelope))
            standin.send(*bodies)
            began, cpu = time.monotonic(), time.thread_time()
            while standin.left():
                built.daemon.feed.poll_once()
                assert time.monotonic() - began < 120, f"{standin.left()} messages still queued after 120 s"
            took, cpu = time.monotonic() - began, time.thread_time() - cpu
            record_property("flood_5000_events_seconds", round(took, 2))
            record_property("flood_5000_events_cpu_seconds", round(cpu, 2))
            record_property("flood_5000_events_checks_asked", len(asked))
            assert metric(built, "albsg_events_total", result="matched") == 5000
            # The thread's own CPU, not the wall: a loaded machine stretches the wall, a scan of every
            # window per event (quadratic) would cost minutes of CPU.
            assert cpu < 30, cpu
            # the trailing check of the burst is asked once its gap has passed
            deadline = time.monotonic() + 10
            while built.daemon._event_checks._timer is not None:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert 1 <= len(asked) <= 2 + took / 2, asked  # one per 2 s of burst at most, not one per receive
            assert built.daemon.check().ok  # and the check holding 2,500 unconfirmed windows still runs
            assert metric(built, "albsg_outage_windows_total") == 0
        finally:
            built.server.stop()


def test_events_naming_unknown_load_balancers_read_those_by_arn_within_a_bound_never_a_full_discovery(world, parts):
    assert parts.daemon.run_once().ok
    prefix = world.lb["shop"].rsplit("/", 2)[0]  # arn:…:loadbalancer/app
    made_up = [f"{prefix}/k8s-forged-{n:03d}/{n:016x}" for n in range(30)]
    put(*[message("SetSecurityGroups", {"loadBalancerArn": arn, "securityGroups": [world.sg["backend"]]}, {},
                  identity=HUMAN, time=stamp(), event_id=event_id(), account=False) for arn in made_up[:10]])
    put(*[message("SetSecurityGroups", {"loadBalancerArn": arn, "securityGroups": [world.sg["backend"]]}, {},
                  identity=HUMAN, time=stamp(), event_id=event_id(), account=False) for arn in made_up[10:20]])
    put(*[message("DeleteLoadBalancer", {"loadBalancerArn": arn}, {}, identity=HUMAN, time=stamp(),
                  event_id=event_id(), account=False) for arn in made_up[20:]])
    poll_until_read(parts, 30)
    before = parts.clients.counter.calls.copy()
    assert parts.daemon.run_once().ok
    sent = parts.clients.counter.calls - before
    assert metric(parts, "albsg_topology_refreshes_total", reason="event") in (None, 0)
    assert metric(parts, "albsg_topology_refreshes_total", reason="load_balancer_changed") >= 1
    # 20 ARNs at most a minute are described (one call, then one by one as AWS fails a batch naming a
    # missing one): not the region's every load balancer and target group
    assert sent[("elbv2", "DescribeLoadBalancers")] <= 1 + 20 + 1, sent  # + the check's own listing
    assert sent[("elbv2", "DescribeTargetGroups")] == 0, sent
    assert {lb.arn for lb in parts.daemon.topology.load_balancers}.isdisjoint(made_up)


def test_events_naming_nothing_placeable_ask_for_one_full_discovery_a_minute(world, parts):
    from monitor.core.events import ApiEvent, Principal

    assert parts.daemon.run_once().ok
    for n in range(3):
        parts.daemon._on_events((ApiEvent(event_id=event_id(), event_name="ModifyNetworkInterfaceAttribute",
                                          source="aws.ec2", event_time=time.time(), principal=Principal(HUMAN["arn"]),
                                          network_interfaces=(f"eni-0unknown{n}",)),))
        assert parts.daemon.run_once().ok
    assert metric(parts, "albsg_topology_refreshes_total", reason="event") == 1
