"""The daemon with an events queue, over moto through real HTTP: CloudTrail-shaped events put on the
default bus reach the queue through an EventBridge rule with the shipped pattern; the real daemon
reads them, checks at once, names the lost rule and who removed it, and records short gaps."""

from __future__ import annotations

import itertools
import json
import threading
import time
from datetime import datetime, timezone

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from monitor.core.settings import Settings
from monitor.daemon import runner
from monitor.demo import world as demo_world
from monitor.surface import render
from monitor.surface.main import DaemonParts, assemble_daemon
from tests.aws.test_events_queue import aws, put, queue, remaining  # noqa: F401  (queue is a fixture)
from tests.core.test_events import HUMAN, SSO_ROLE, V2, V2_ROLE, message

_ids = itertools.count()


def stamp(seconds_ago: float = 1.0, at: float | None = None) -> str:
    when = at if at is not None else time.time() - seconds_ago
    return datetime.fromtimestamp(int(when), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_id() -> str:
    return f"5d2e0c1a-0000-4000-8000-{next(_ids):012d}"


def revoke_by_id(world: demo_world.World, key: str, identity: dict, **extra) -> dict:
    """Revoke a world rule by its id in moto, and the CloudTrail event that call makes on AWS."""
    rule_id = world.rule[key]
    demo_world.revoke(world, key)
    group = world.revoked[key]["GroupId"]
    return message("RevokeSecurityGroupIngress",
                   {"groupId": group, "securityGroupRuleIds": {"items": [{"securityGroupRuleId": rule_id}]}},
                   {"_return": True}, identity=identity, time=extra.pop("time", stamp()),
                   event_id=extra.pop("event_id", event_id()))


def permission_call(name: str, world: demo_world.World, key: str, identity: dict, when: float) -> dict:
    """A revoke or authorize by permission of a world rule's tuple (the call is only in the event)."""
    rule = world.clients()["ec2"].describe_security_group_rules(
        SecurityGroupRuleIds=[world.rule[key]])["SecurityGroupRules"][0]
    permission = {"ipProtocol": rule["IpProtocol"], "fromPort": rule["FromPort"], "toPort": rule["ToPort"],
                  "groups": {"items": [{"groupId": rule["ReferencedGroupInfo"]["GroupId"]}]}}
    return message(name, {"groupId": rule["GroupId"], "ipPermissions": {"items": [permission]}}, {"_return": True},
                   identity=identity, time=stamp(at=when), event_id=event_id())


def rule_pair(world: demo_world.World, key: str, revoker: dict, granter: dict, when: float,
              gap: float) -> tuple[dict, dict]:
    """Revoke a world rule and grant it again in moto (it gets a new id), and the two CloudTrail
    events those calls make on AWS, `gap` seconds apart, each naming the rule it removed or created."""
    from monitor.demo.trail import _rule_item

    demo_world.revoke(world, key)
    before = world.revoked[key]
    demo_world.restore(world, key)
    after = world.clients()["ec2"].describe_security_group_rules(
        SecurityGroupRuleIds=[world.rule[key]])["SecurityGroupRules"][0]
    group = before["GroupId"]
    permission = {"ipProtocol": after["IpProtocol"], "fromPort": after["FromPort"], "toPort": after["ToPort"],
                  "groups": {"items": [{"groupId": after["ReferencedGroupInfo"]["GroupId"]}]}}
    revoke = message("RevokeSecurityGroupIngress", {"groupId": group, "securityGroupRuleIds": {
        "items": [{"securityGroupRuleId": before["SecurityGroupRuleId"]}]}},
        {"_return": True, "revokedSecurityGroupRuleSet": {"items": [_rule_item(before)]}},
        identity=revoker, time=stamp(at=when), event_id=event_id())
    grant = message("AuthorizeSecurityGroupIngress", {"groupId": group, "ipPermissions": {"items": [permission]}},
                    {"_return": True, "securityGroupRuleSet": {"items": [_rule_item(after)]}},
                    identity=granter, time=stamp(at=when + gap), event_id=event_id())
    return revoke, grant


def settings(world: demo_world.World, queue_url: str | None, **extra) -> Settings:
    return Settings(cluster_name=world.cluster, kubernetes="off", listen="127.0.0.1:0", interval=15.0,
                    events_queue=queue_url, v2_controller_role_arn=V2_ROLE, **extra)


def metric(parts: DaemonParts, name: str, **labels: str) -> float | None:
    body, _ = parts.metrics.exposition()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    return None


def poll_until(parts: DaemonParts, matched: int) -> None:
    """Poll the queue until `matched` events touched something watched (bounded)."""
    deadline = time.monotonic() + 60
    while (metric(parts, "albsg_events_total", result="matched") or 0) < matched:
        assert time.monotonic() < deadline, "the events never arrived"
        parts.daemon.feed.poll_once()


@pytest.fixture
def parts(world, queue):
    built = assemble_daemon(settings(world, queue))
    built.daemon.feed._queue._wait = 1  # short long polls: the test polls by hand
    yield built
    built.server.stop()


def test_a_v2_controller_revoke_and_a_human_revoke_are_attributed_with_the_lost_rule(world, parts):
    assert parts.daemon.run_once().ok
    shop_rule, blog_rule = world.rule["shop_v1"], world.rule["blog_v1"]
    put(revoke_by_id(world, "shop_v1", V2), revoke_by_id(world, "blog_v1", HUMAN))
    poll_until(parts, 2)
    with structlog.testing.capture_logs() as logs:
        summary = parts.daemon.check()
    said = {e["load_balancer"]: e for e in logs if e["event"] == "revocation_attributed"}
    assert said[world.lb_name["shop"]]["rule"] == shop_rule and said[world.lb_name["shop"]]["principal"] == V2["arn"]
    assert said[world.lb_name["blog"]]["actor_kind"] == "other"
    findings = {f.load_balancer: f for f in summary.report.findings if f.code == "ACCESS_REVOKED"}
    shop, blog = findings[world.lb_name["shop"]], findings[world.lb_name["blog"]]
    assert shop.rule == shop_rule and blog.rule == blog_rule
    assert (shop.attribution.actor_kind, blog.attribution.actor_kind) == ("v2_controller", "other")
    assert shop.attribution.principal == V2["arn"] and blog.attribution.principal == HUMAN["arn"]
    assert SSO_ROLE.rsplit("/", 1)[-1] in blog.attribution.principal
    document = render.to_dict(summary.report)
    shown = {f["load_balancer"]: f for f in document["findings"] if f["code"] == "ACCESS_REVOKED"}
    assert shown[world.lb_name["shop"]]["attribution"]["actor_kind"] == "v2_controller"
    assert shown[world.lb_name["blog"]]["attribution"]["event_id"] == blog.attribution.event_id
    assert metric(parts, "albsg_revocations_attributed_total", actor_kind="v2_controller") == 1
    assert metric(parts, "albsg_revocations_attributed_total", actor_kind="other") == 1
    # Counted once per event, however many checks show the finding again.
    parts.daemon.check()
    assert metric(parts, "albsg_revocations_attributed_total", actor_kind="v2_controller") == 1
    assert metric(parts, "albsg_events_received_total", event_name="RevokeSecurityGroupIngress") == 2
    assert metric(parts, "albsg_event_lag_seconds_count") == 2
    assert remaining(parts.daemon.feed.queue_url) == 0


def test_without_an_event_the_daemon_still_names_the_lost_rule(world):
    built = assemble_daemon(settings(world, None))
    try:
        assert built.daemon.run_once().ok
        lost = world.rule["shop_v1"]
        demo_world.revoke(world, "shop_v1")
        summary = built.daemon.check()
        (finding,) = [f for f in summary.report.findings
                      if f.code == "ACCESS_REVOKED" and f.load_balancer == world.lb_name["shop"]]
        assert finding.rule == lost and finding.attribution is None
    finally:
        built.server.stop()


def test_a_revoke_then_grant_shorter_than_the_interval_is_an_outage_window_of_its_length(world, parts):
    assert parts.daemon.run_once().ok
    logs = structlog.testing.LogCapture()
    structlog.configure(processors=[logs])
    try:
        revoke, grant = rule_pair(world, "shop_v1", V2, V2, time.time() - 10, 4)
        put(grant, revoke)  # the grant arrives first: EventBridge keeps no order
        poll_until(parts, 2)
        # the window is believed once a check's read shows the rule replaced (a new id, the old one gone)
        assert metric(parts, "albsg_outage_windows_total") == 0
        summary = parts.daemon.check()
    finally:
        structlog.reset_defaults()
    assert metric(parts, "albsg_outage_windows_total") == 1
    assert metric(parts, "albsg_outage_window_seconds_sum") == 4.0
    (window,) = [e for e in logs.entries if e["event"] == "outage_window"]
    assert window["seconds"] == 4.0 and window["revoked_by"] == V2["arn"]
    # No poll saw it: the check says the path is fine.
    assert summary.report.load_balancers and not [f for f in summary.report.findings if f.code == "ACCESS_REVOKED"]


def test_malformed_duplicate_and_unwatched_messages_are_counted_deleted_and_harmless(world, parts):
    assert parts.daemon.run_once().ok
    twice = revoke_by_id(world, "shop_v1", V2)
    other = message("RevokeSecurityGroupIngress", {"groupId": "sg-0notours", "securityGroupRuleIds": {
        "items": [{"securityGroupRuleId": "sgr-0notours"}]}}, {"_return": True}, identity=HUMAN, time=stamp(),
        event_id=event_id())
    put(twice, twice, other)
    aws("sqs").send_message(QueueUrl=parts.daemon.feed.queue_url, MessageBody="{not json")
    deadline = time.monotonic() + 60
    while sum(metric(parts, "albsg_events_total", result=r) or 0 for r in ("matched", "duplicate", "unwatched",
                                                                             "malformed")) < 4:
        assert time.monotonic() < deadline
        parts.daemon.feed.poll_once()
    for result in ("matched", "duplicate", "unwatched", "malformed"):
        assert metric(parts, "albsg_events_total", result=result) == 1, result
    assert remaining(parts.daemon.feed.queue_url) == 0
    summary = parts.daemon.check()
    assert summary.ok and any(f.attribution for f in summary.report.findings)


def test_an_unreachable_queue_leaves_polling_on_and_a_finding_says_attribution_is_off(world, aws_env):
    missing = f"{aws_env}/123456789012/alb-sg-monitor-events-gone"
    built = assemble_daemon(settings(world, missing))
    try:
        built.daemon.feed._queue._wait = 0
        assert built.daemon.run_once().ok
        built.daemon.feed.poll_once()
        demo_world.revoke(world, "shop_v1")
        summary = built.daemon.check()
        codes = {f.code: f for f in summary.report.findings}
        assert codes["ATTRIBUTION_OFF"].severity.value == "warning"
        assert "cannot be read" in codes["ATTRIBUTION_OFF"].message
        assert codes["ACCESS_REVOKED"].rule  # the check itself goes on
        assert metric(built, "albsg_load_balancer_reachable", load_balancer=world.lb_name["shop"]) == 0
    finally:
        built.server.stop()


def test_an_event_flips_the_metric_within_a_second_and_an_idle_queue_costs_three_requests_a_minute(
        world, queue, record_property):
    built = assemble_daemon(settings(world, queue))
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(built.daemon, built.server, 15.0, 300.0, stop, False))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not built.daemon.ready()[0]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        labels = {"load_balancer": world.lb_name["shop"]}
        assert metric(built, "albsg_load_balancer_reachable", **labels) == 1
        # Idle: note when each long poll starts, over two full ones.
        def receives() -> float | None:
            return metric(built, "albsg_aws_api_calls_total", service="sqs", operation="ReceiveMessage")

        starts, seen = [], receives()
        watch_until = time.monotonic() + 45
        while time.monotonic() < watch_until and len(starts) < 3:
            now = receives()
            if now != seen:
                starts.append(time.monotonic())
                seen = now
            time.sleep(0.05)
        assert len(starts) >= 2, starts
        per_minute = 60 * (len(starts) - 1) / (starts[-1] - starts[0])
        record_property("idle_queue_receives_per_minute", round(per_minute, 2))
        assert per_minute <= 3.5, per_minute
        event = revoke_by_id(world, "shop_v1", V2)
        put(event)
        arrived = time.monotonic()
        while metric(built, "albsg_load_balancer_reachable", **labels) != 0:
            assert time.monotonic() - arrived < 14, "the check ran on its interval, not on the event"
            time.sleep(0.02)
        took = time.monotonic() - arrived
        record_property("event_to_metric_seconds", round(took, 3))
        assert took < 5, took  # goal: under a second on a quiet machine
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive()


def test_check_and_preflight_say_whether_attribution_is_set_up(world, queue, aws_env, capsys):
    from monitor import cli

    base = ["--cluster-name", world.cluster, "--kubernetes", "off"]
    assert cli.main(["check", *base]) == 0
    assert "attribution: off (no --events-queue" in capsys.readouterr().out
    assert cli.main(["preflight", *base, "--events-queue", queue]) in (0, 1)
    out = capsys.readouterr().out
    assert f"attribution: events queue {queue}" in out and "ATTRIBUTION_OFF" not in out
    missing = f"{aws_env}/123456789012/alb-sg-monitor-events-gone"
    assert cli.main(["check", *base, "--events-queue", missing, "--output", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    (off,) = [f for f in document["findings"] if f["code"] == "ATTRIBUTION_OFF"]
    assert off["severity"] == "warning" and missing in off["message"]
    assert document["attribution"]["state"] == "off" and document["attribution"]["events_queue"] == missing
    # the JSON says the setup in every case, not only when it is broken
    for flags, state in (([], "not_configured"), (["--events-queue", queue], "on")):
        cli.main(["preflight", *base, *flags, "--output", "json"])
        assert json.loads(capsys.readouterr().out)["attribution"]["state"] == state


def test_with_kubernetes_the_v2_role_is_read_from_its_service_account_and_the_ingress_gets_events(world, queue):
    from monitor import kube
    from monitor.demo import cluster as demo_cluster
    from monitor.demo import trail
    from monitor.demo.kubeapi import DemoKubeApi

    with DemoKubeApi(demo_cluster.objects(world)) as api:
        # No role flag: the controller's IRSA role comes from its ServiceAccount.
        built = assemble_daemon(Settings(cluster_name=world.cluster, kubernetes="on", listen="127.0.0.1:0",
                                         events_queue=queue), kube=kube.for_host(api.url), identity="pod-a",
                                namespace="alb-sg-monitor")
        try:
            built.daemon.feed._queue._wait = 1
            deadline = time.monotonic() + 30
            while not built.leadership.is_leader():
                assert time.monotonic() < deadline, "never became leader"
                time.sleep(0.1)
            assert built.daemon.run_once().ok
            controller = trail.identity(demo_cluster.controller_role_arn(world), "1733043600123456789")
            now = time.time() - 10
            put(*rule_pair(world, "blog_v1", HUMAN, HUMAN, now, 3))
            put(revoke_by_id(world, "shop_v1", controller))
            poll_until(built, 3)
            summary = built.daemon.check()
            (finding,) = [f for f in summary.report.findings
                          if f.code == "ACCESS_REVOKED" and f.load_balancer == world.lb_name["shop"]]
            assert finding.attribution.actor_kind == "v2_controller"
            events = [o for o in api.objects if o["kind"] == "Event"]
            (cut,) = [e for e in events if e["reason"] == "RevocationAttributed"]
            assert (cut["involvedObject"]["namespace"], cut["involvedObject"]["name"]) == ("shop", "frontend")
            assert controller["arn"] in cut["message"] and finding.rule in cut["message"]
            gaps = [e for e in events if e["reason"] == "OutageWindow"]
            assert ("blog", "web") in {(e["involvedObject"]["namespace"], e["involvedObject"]["name"]) for e in gaps}
            assert all("3s" in e["message"] for e in gaps)
        finally:
            built.server.stop()


def test_a_target_group_event_reads_again_only_its_load_balancers_before_checking(world, parts):
    assert parts.daemon.run_once().ok
    shop = world.lb["shop"]
    group = next(tg for tg in parts.daemon.topology.target_groups if shop in tg.load_balancer_arns)
    # the target leaves its group in moto, and the call's event arrives
    world.clients()["elbv2"].deregister_targets(TargetGroupArn=group.arn,
                                                Targets=[{"Id": t.target_id, "Port": t.port} for t in group.targets])
    put(message("DeregisterTargets", {"targetGroupArn": group.arn, "targets": [{"id": group.targets[0].target_id}]},
                {}, identity=HUMAN, time=stamp(), event_id=event_id()))
    poll_until(parts, 1)
    before = parts.clients.counter.calls.copy()
    assert parts.daemon.run_once().ok
    # the shop ALB alone was read again (not a full discovery), then checked against the new topology
    assert metric(parts, "albsg_topology_refreshes_total", reason="load_balancer_changed") == 1
    assert metric(parts, "albsg_topology_refreshes_total", reason="event") in (None, 0)
    sent = parts.clients.counter.calls - before
    assert sent[("elbv2", "DescribeTargetHealth")] <= 2  # the shop ALB's groups, not every group
    after = next(tg for tg in parts.daemon.topology.target_groups if tg.arn == group.arn)
    assert not [t for t in after.targets or () if t.judged]


def test_an_event_the_topology_cannot_place_asks_for_a_full_discovery(world, parts):
    from monitor.core.events import ApiEvent, Principal
    from monitor.daemon.event_triggers import place

    assert parts.daemon.run_once().ok
    daemon = parts.daemon

    def change(**touched) -> ApiEvent:
        return ApiEvent(event_id=event_id(), event_name="ModifyNetworkInterfaceAttribute", source="aws.ec2",
                        event_time=time.time(), principal=Principal(arn=HUMAN["arn"]), **touched)

    shop_eni = next(t.eni_id for tg in daemon.topology.target_groups if world.lb["shop"] in tg.load_balancer_arns
                    for t in tg.targets or () if t.eni_id)
    assert world.lb["shop"] in place(daemon.topology, [change(network_interfaces=(shop_eni,))], None, None).known
    assert place(daemon.topology, [change(network_interfaces=("eni-0notinthetopology",))], None, None).unplaced
    daemon._on_events((change(network_interfaces=("eni-0notinthetopology",)),))
    assert daemon.run_once().ok
    assert metric(parts, "albsg_topology_refreshes_total", reason="event") == 1
