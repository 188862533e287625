"""The load balancer listing in a check: every check without a healthy events queue; with one, only
after an event that changes what it says (CreateLoadBalancer, DeleteLoadBalancer, SetSecurityGroups),
and at least once per --topology-interval. Over moto through a counting proxy, the queue served by
the SQS stand-in."""

from __future__ import annotations

import json
import time

import pytest

from monitor.core.settings import Settings
from monitor.daemon.listing import ListingClock, cut_read_by_arn
from monitor.surface.main import assemble_daemon
from tests.core.test_events import V2, message
from tests.daemon.test_attribution_daemon import event_id, stamp
from tests.daemon.test_fault_matrix import inject
from tests.support.awsproxy import THROTTLE, AwsProxy
from tests.support.fixtures import tiny_aws_env, tiny_moto, tiny_world  # noqa: F401 (fixtures)
from tests.support.sqs_standin import SqsStandIn
from tests.support.tinyworld import CLUSTER, add_alb

LISTING = "DescribeLoadBalancers"


# -- the clock, pure -------------------------------------------------------------------------------

def test_without_a_healthy_queue_every_check_reads_the_listing():
    clock = ListingClock(ceiling=300.0)
    for now in (0.0, 5.0, 10.0):
        turn = clock.turn(now, queue_healthy=False)
        assert (turn.read, turn.why) == (True, "no_queue")
        clock.listed(turn, now)


def test_with_a_healthy_queue_the_listing_waits_for_an_event_or_the_ceiling():
    clock = ListingClock(ceiling=300.0)
    first = clock.turn(0.0, queue_healthy=True)
    assert (first.read, first.why) == (True, "first")
    clock.listed(first, 0.0)
    assert clock.turn(5.0, True).read is False
    clock.want()
    event = clock.turn(10.0, True)
    assert (event.read, event.why) == (True, "event")
    clock.want()  # a second event while that listing is read: the next check reads it again
    clock.listed(event, 11.0)
    assert clock.turn(15.0, True).why == "event"
    clock.listed(clock.turn(15.0, True), 15.0)
    assert clock.turn(20.0, True).read is False
    assert clock.turn(315.0, True).why == "ceiling"


def test_a_listing_that_failed_answers_no_ask():
    clock = ListingClock(ceiling=300.0)
    clock.listed(clock.turn(0.0, True), 0.0)
    clock.want()
    assert clock.turn(5.0, True).why == "event"  # that check's listing failed: listed() was not called
    assert clock.turn(10.0, True).why == "event"


# -- the daemon, over moto ---------------------------------------------------------------------------

@pytest.fixture
def queued(tiny_world, monkeypatch):
    """A daemon reading its events queue (the stand-in), behind a proxy that counts its requests."""
    with AwsProxy(tiny_world.endpoint) as proxy, SqsStandIn() as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", standin.url)
        built = assemble_daemon(Settings(cluster_name=CLUSTER, kubernetes="off", listen="127.0.0.1:0", interval=15.0,
                                         events_queue=standin.queue_url, discovery_rate=1000.0))
        built.daemon.feed._queue._wait = 0
        try:
            assert built.daemon.run_once().ok
            built.daemon.feed.poll_once()  # read once: the queue is healthy
            yield proxy, standin, built
        finally:
            built.server.stop()


def _send(standin: SqsStandIn, built, name: str, request: dict, response: dict | None = None) -> None:
    _, _, _, region, account, _ = built.daemon.topology.load_balancers[0].arn.split(":", 5)
    envelope = message(name, request, response or {}, identity=V2, time=stamp(), event_id=event_id(), account=False)
    envelope.update(account=account, region=region)
    envelope["detail"]["awsRegion"] = region
    standin.send(json.dumps(envelope))
    deadline = time.monotonic() + 30
    while standin.left():
        built.daemon.feed.poll_once()
        assert time.monotonic() < deadline, "the event was never received"


def test_a_healthy_queue_spares_the_listing_until_an_alb_is_created(tiny_world, queued):
    proxy, standin, built = queued
    daemon = built.daemon
    daemon.check()  # the first check with the queue read lists once
    proxy.reset_counts()
    quiet = daemon.check()
    assert quiet.ok and quiet.listed is False and proxy.calls(LISTING) == 0
    assert quiet.api_calls == 2  # the rules and the network ACLs
    new = add_alb(tiny_world, "shop", "admin")
    _send(standin, built, "CreateLoadBalancer",
          {"name": new.name, "type": "application", "securityGroups": [new.security_group]},
          {"loadBalancers": [{"loadBalancerArn": new.arn, "loadBalancerName": new.name}]})
    # The event asked for the new ALB by its ARN; the refresh reads it, and the check after it lists.
    seen = daemon.run_once()
    assert seen.listed is True
    assert {lb.name: lb.reachable for lb in seen.report.load_balancers}[new.name] is True
    proxy.reset_counts()
    assert daemon.check().listed is False and proxy.calls(LISTING) == 0


def test_a_security_group_change_makes_the_next_check_list(tiny_world, queued):
    proxy, standin, built = queued
    daemon = built.daemon
    daemon.check()
    web = tiny_world.albs["web"]
    _send(standin, built, "SetSecurityGroups", {"loadBalancerArn": web.arn, "securityGroups": [web.security_group]})
    proxy.reset_counts()
    assert daemon.run_once().listed is True and proxy.calls(LISTING) >= 1


def test_a_queue_that_cannot_be_read_brings_the_listing_back_to_every_check(tiny_world, queued):
    proxy, standin, built = queued
    daemon = built.daemon
    daemon.check()
    assert daemon.check().listed is False
    standin.__exit__()  # the queue's endpoint goes away: the receive fails
    daemon.feed.poll_once()
    proxy.reset_counts()
    assert daemon.check().listed is True and proxy.calls(LISTING) == 1


def test_a_failed_listing_is_read_again_by_the_next_check(tiny_world, queued):
    proxy, standin, built = queued
    daemon = built.daemon
    daemon.check()
    web = tiny_world.albs["web"]
    _send(standin, built, "SetSecurityGroups", {"loadBalancerArn": web.arn, "securityGroups": [web.security_group]})
    daemon.run_once()
    proxy.fail([LISTING], THROTTLE)
    _send(standin, built, "DeleteLoadBalancer", {"loadBalancerArn": tiny_world.albs["api"].arn})
    failed = daemon.run_once()
    assert failed.listed is True and not failed.report.complete
    proxy.heal()
    proxy.reset_counts()
    assert daemon.check().listed is True and proxy.calls(LISTING) == 1


def test_an_alb_deleted_before_its_event_arrives_is_not_called_cut(tiny_world, queued):
    """v2 deletes a load balancer, then revokes its node rule; the DeleteLoadBalancer event is still
    on its way. The check that sees the rule gone reads that load balancer again by its ARN before
    saying anything: gone, it is unknown (never ACCESS_REVOKED), and the update after drops it."""
    proxy, standin, built = queued
    daemon = built.daemon
    daemon.check()
    assert daemon.check().listed is False
    web = tiny_world.albs["web"]
    tiny_world.client("elbv2").delete_load_balancer(LoadBalancerArn=web.arn)
    tiny_world.revoke_node_rule("web")
    proxy.reset_counts()
    seen = daemon.check()
    assert seen.listed is False and seen.read_again == 1 and proxy.calls(LISTING) == 1
    verdicts = {lb.name: lb.reachable for lb in seen.report.load_balancers}
    assert verdicts[web.name] is None
    assert not [f for f in seen.report.findings if f.code == "ACCESS_REVOKED" and f.load_balancer == web.name]
    after = daemon.run_once()  # the update AWS's answer asked for drops it
    assert web.name not in {lb.name for lb in after.report.load_balancers}
    assert not [f for f in after.report.findings if f.code == "ACCESS_REVOKED"]


def test_a_real_cut_is_reported_once_its_load_balancer_is_read_again(tiny_world, queued):
    proxy, standin, built = queued
    daemon = built.daemon
    daemon.check()
    assert daemon.check().listed is False
    tiny_world.revoke_node_rule("web")  # the rule goes; the load balancer stays
    proxy.reset_counts()
    seen = daemon.check()
    assert seen.listed is False and seen.read_again == 1 and proxy.calls(LISTING) == 1
    assert [f.load_balancer for f in seen.report.findings if f.code == "ACCESS_REVOKED"] == [tiny_world.albs["web"].name]


def test_an_alb_moved_to_another_group_before_its_event_arrives_is_judged_on_its_new_group(tiny_world, queued):
    """v2 gives the ALB another security group and revokes the old group's node rule; the
    SetSecurityGroups event is still on its way. Read again by ARN, the ALB is judged on the group
    it has now, which the nodes admit: reachable, no cut reported."""
    proxy, standin, built = queued
    daemon = built.daemon
    daemon.check()
    web, api = tiny_world.albs["web"], tiny_world.albs["api"]
    tiny_world.client("elbv2").set_security_groups(LoadBalancerArn=web.arn, SecurityGroups=[api.security_group])
    tiny_world.revoke_node_rule("web")
    seen = daemon.check()
    assert seen.listed is False and seen.read_again == 1
    assert {lb.name: lb.reachable for lb in seen.report.load_balancers}[web.name] is True
    assert not [f for f in seen.report.findings if f.code == "ACCESS_REVOKED"]


@pytest.mark.parametrize("kind", ["throttling", "access_denied", "5xx", "connection_reset", "malformed", "empty"])
def test_a_cut_whose_load_balancer_cannot_be_read_again_is_unknown_until_it_can(tiny_world, queued, kind):
    """The read by ARN fails, or answers without the load balancer: the cut is not believed (no
    verdict, no ACCESS_REVOKED, the report incomplete) until a read succeeds."""
    proxy, standin, built = queued
    daemon = built.daemon
    daemon.check()
    web = tiny_world.albs["web"]
    tiny_world.revoke_node_rule("web")
    inject(proxy, "elbv2", LISTING, kind)
    blind = daemon.check()
    assert blind.read_again == 1
    assert {lb.name: lb.reachable for lb in blind.report.load_balancers}[web.name] is None
    assert not blind.report.complete
    assert not [f for f in blind.report.findings if f.code == "ACCESS_REVOKED"]
    proxy.heal()
    seen = daemon.run_once()
    assert {lb.name: lb.reachable for lb in seen.report.load_balancers}[web.name] is False
    assert [f.load_balancer for f in seen.report.findings if f.code == "ACCESS_REVOKED"] == [web.name]


@pytest.mark.parametrize(("cut", "load_balancers", "by_arn"), [
    (1, 3, True),  # one request either way
    (20, 400, True),
    (21, 400, False),  # two reads by ARN, one page of listing
    (260, 5000, True),  # 13 reads by ARN, 13 pages
    (261, 5000, False),
])
def test_cut_load_balancers_are_read_by_arn_while_that_takes_no_more_requests_than_the_listing(
        cut, load_balancers, by_arn):
    assert cut_read_by_arn(cut, load_balancers) is by_arn


def test_a_cut_seen_while_the_listing_failed_is_believed_only_once_read_again(tiny_world, queued):
    """Without the queue every check lists; when that listing fails, a cut is read again by ARN
    like one found without the listing: throttled too, it is unknown, never ACCESS_REVOKED."""
    proxy, standin, built = queued
    daemon = built.daemon
    standin.__exit__()
    daemon.feed.poll_once()  # the queue cannot be read: every check lists
    web = tiny_world.albs["web"]
    tiny_world.revoke_node_rule("web")
    proxy.fail([LISTING], THROTTLE)
    blind = daemon.check()
    assert blind.listed is True and blind.read_again == 1
    assert {lb.name: lb.reachable for lb in blind.report.load_balancers}[web.name] is None
    assert not [f for f in blind.report.findings if f.code == "ACCESS_REVOKED"]
    proxy.heal()
    seen = daemon.run_once()
    assert [f.load_balancer for f in seen.report.findings if f.code == "ACCESS_REVOKED"] == [web.name]
