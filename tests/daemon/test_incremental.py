"""A new, vanished or re-grouped ALB costs requests in proportion to it, not to the region: counted
at a proxy in front of moto, against worlds of different sizes."""

from __future__ import annotations

import pytest

from monitor import aws
from monitor.daemon.loop import Daemon
from monitor.daemon.topology import READ_IN_CHECK
from monitor.surface.metrics import Metrics
from tests.daemon.test_nacl_check import ALLOW_ALL, acl_on
from tests.support.awsproxy import THROTTLE, AwsProxy
from tests.support.fixtures import tiny_aws_env, tiny_moto, tiny_world  # noqa: F401 (fixtures)
from tests.support.tinyworld import CLUSTER, World, add_alb

STEADY_CHECK = {("elbv2", "DescribeLoadBalancers"): 1, ("ec2", "DescribeSecurityGroupRules"): 1,
                ("ec2", "DescribeNetworkAcls"): 1}
# One new ALB with one instance target group: its tags, its target groups (by ARN), their health,
# the instances, the security groups and the subnets. No listing of the region.
NEW_ALB = {("elbv2", "DescribeTags"): 1, ("elbv2", "DescribeTargetGroups"): 1, ("elbv2", "DescribeTargetHealth"): 1,
           ("ec2", "DescribeInstances"): 1, ("ec2", "DescribeSecurityGroups"): 1, ("ec2", "DescribeSubnets"): 1}


def plus(*counts: dict) -> dict:
    total: dict = {}
    for c in counts:
        for key, n in c.items():
            total[key] = total.get(key, 0) + n
    return total


@pytest.fixture
def counted(tiny_world: World, monkeypatch):
    with AwsProxy(tiny_world.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        clients = aws.connect(None)
        clients.pacer.configure(None)  # pacing is tested on its own; counts here, not time
        metrics = Metrics()
        clients.counter.listeners.append(metrics)
        yield proxy, Daemon(clients, CLUSTER, metrics, interval=10.0, topology_interval=300.0), metrics


def verdicts(summary) -> dict[str, bool | None]:
    return {lb.name: lb.reachable for lb in summary.report.load_balancers}


@pytest.mark.parametrize("albs", [2, 12])
def test_a_new_alb_costs_the_same_few_requests_whatever_the_number_of_albs(tiny_world, counted, albs):
    proxy, daemon, metrics = counted
    for i in range(albs - 2):
        add_alb(tiny_world, "shop", f"svc{i}")
    daemon.run_once()
    assert len(daemon.topology.load_balancers) == albs
    new = add_alb(tiny_world, "shop", "admin")
    proxy.reset_counts()
    monitored = daemon.run_once()  # the check's listing shows it: it reads it, then the rules
    assert monitored.refresh_wanted is None
    assert verdicts(monitored)[new.name] is True and monitored.complete
    counts = dict(proxy.requests)
    # Its SG is known before the rules are read: the node rule naming it needs no look-up.
    assert counts == plus(STEADY_CHECK, NEW_ALB), counts
    assert sum(NEW_ALB.values()) < 20
    assert monitored.api_calls == 3  # the update's requests are not the check's
    body = metrics.exposition()[0].decode()
    assert 'albsg_topology_refreshes_total{reason="new_load_balancer"} 1.0' in body


def test_more_new_albs_than_a_check_reads_are_read_by_the_refresh_job(tiny_world, counted):
    proxy, daemon, _ = counted
    daemon.run_once()
    new = [add_alb(tiny_world, "shop", f"new{i}") for i in range(READ_IN_CHECK + 1)]
    proxy.reset_counts()
    seen = daemon.run_once()
    assert seen.refresh_wanted == "new_load_balancer"
    assert not {a.name for a in new} & set(verdicts(seen))
    assert proxy.count("elbv2", "DescribeTags") == 0  # none read by the check
    monitored = daemon.run_once()  # the update, then the check
    assert all(verdicts(monitored)[a.name] is True for a in new) and monitored.complete


def test_a_new_alb_read_alone_is_judged_by_the_network_acls_too(tiny_world, counted):
    """The incremental read gives the new ALB its subnets and its targets theirs: a network ACL
    denying its node port is named for it as for the ALBs of the full discovery."""
    proxy, daemon, metrics = counted
    daemon.run_once()
    acl = acl_on(tiny_world, tiny_world.subnets[0], (90, False, "6", "deny", "10.0.2.0/24", (30000, 32767)), *ALLOW_ALL)
    new = add_alb(tiny_world, "shop", "admin")
    daemon.run_once()
    monitored = daemon.run_once()
    assert verdicts(monitored)[new.name] is False and monitored.complete
    blocked = [f for f in monitored.report.findings if f.code == "NACL_BLOCKED" and f.load_balancer == new.name]
    assert len(blocked) == 1 and acl in blocked[0].message and "rule 90" in blocked[0].message


def test_a_deleted_alb_is_dropped_once_a_read_of_it_confirms_it_gone(tiny_world, counted):
    """The listing that lacks it proves nothing on its own: unknown for that check, then one
    DescribeLoadBalancers by its ARN (LoadBalancerNotFound) drops it."""
    proxy, daemon, metrics = counted
    daemon.run_once()
    web, api = tiny_world.albs["web"].name, tiny_world.albs["api"].name
    tiny_world.delete_alb("api")
    proxy.reset_counts()
    first, second = daemon.run_once(), daemon.run_once()
    assert first.refresh_wanted == "load_balancer_gone"
    assert verdicts(first) == {web: True, api: None} and not first.complete
    assert dict(proxy.requests) == plus(STEADY_CHECK, STEADY_CHECK, {("elbv2", "DescribeLoadBalancers"): 1})
    assert [lb.name for lb in daemon.topology.load_balancers] == [web]
    assert verdicts(second) == {web: True} and second.complete


def test_an_alb_given_another_security_group_is_read_again_alone(tiny_world, counted):
    proxy, daemon, _ = counted
    daemon.run_once()
    web = tiny_world.albs["web"]
    ec2, elbv2 = tiny_world.client("ec2"), tiny_world.client("elbv2")
    extra = ec2.create_security_group(GroupName="extra", Description="added by hand", VpcId=tiny_world.vpc_id)["GroupId"]
    elbv2.set_security_groups(LoadBalancerArn=web.arn, SecurityGroups=[web.security_group, extra])
    proxy.reset_counts()
    seen = daemon.run_once()  # read again by the check that lists it
    assert seen.refresh_wanted is None
    assert dict(proxy.requests) == plus(STEADY_CHECK, NEW_ALB)
    lb = next(lb for lb in daemon.topology.load_balancers if lb.arn == web.arn)
    assert set(lb.security_groups) == {web.security_group, extra}
    assert extra in {g.group_id for g in daemon.topology.security_groups}


@pytest.mark.parametrize("failing", ["DescribeTags", "DescribeTargetGroups", "DescribeTargetHealth",
                                     "DescribeInstances"])
def test_a_failed_update_leaves_the_new_alb_unknown_and_is_retried(tiny_world, counted, failing):
    proxy, daemon, _ = counted
    daemon.run_once()
    new = add_alb(tiny_world, "shop", "admin")
    proxy.fail([failing], kind=THROTTLE)
    failed = daemon.run_once()  # the check's read of it fails
    assert verdicts(failed).get(new.name) is None  # not monitored, or unknown: never a verdict
    assert not failed.complete
    assert not [f for f in failed.report.findings if f.severity.value == "critical"]
    assert failed.refresh_wanted == "new_load_balancer"  # asks again
    proxy.heal()
    proxy.reset_counts()
    retried = daemon.run_once()
    assert verdicts(retried)[new.name] is True and retried.complete
    assert sum(proxy.requests.values()) < 20


def test_past_the_topology_interval_a_change_gets_the_full_discovery_the_backstop_owes(tiny_world, monkeypatch):
    """Changes wake the refresh early; when the periodic full discovery is due, that one runs."""
    now = [1000.0]
    with AwsProxy(tiny_world.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        clients = aws.connect(None)
        clients.pacer.configure(None)
        daemon = Daemon(clients, CLUSTER, Metrics(), interval=10.0, topology_interval=300.0,
                        monotonic=lambda: now[0])
        daemon.run_once()
        add_alb(tiny_world, "shop", "admin")
        now[0] += 301.0
        daemon.run_once()  # asks
        proxy.reset_counts()
        daemon.run_once()
        assert proxy.count("elbv2", "DescribeLoadBalancers") == 2  # the full discovery's listing and the check's
        assert proxy.count("elbv2", "DescribeTargetHealth") == 3


def test_an_alb_asked_for_by_arn_gets_its_new_target_group_for_a_few_requests(tiny_world, counted):
    """What an AWS event naming one ALB (a target group attached) costs: that ALB alone."""
    proxy, daemon, _ = counted
    daemon.run_once()
    web = tiny_world.albs["web"]
    elbv2 = tiny_world.client("elbv2")
    tg = elbv2.create_target_group(Name="k8s-web-admin", Protocol="HTTP", Port=30081, VpcId=tiny_world.vpc_id,
                                   TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": tiny_world.instance_id, "Port": 30081}])
    elbv2.create_listener(LoadBalancerArn=web.arn, Protocol="HTTP", Port=8080,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
    proxy.reset_counts()
    daemon.reread_load_balancers([web.arn])
    daemon.run_once()
    assert dict(proxy.requests) == plus(STEADY_CHECK, NEW_ALB, {("elbv2", "DescribeLoadBalancers"): 1,
                                                                ("elbv2", "DescribeTargetHealth"): 1})
    assert tg in {t.arn for t in daemon.topology.target_groups if web.arn in t.load_balancer_arns}


def test_an_alb_asked_for_by_arn_that_is_gone_is_dropped(tiny_world, counted):
    proxy, daemon, _ = counted
    daemon.run_once()
    api = tiny_world.albs["api"]
    tiny_world.delete_alb("api")
    proxy.reset_counts()
    daemon.reread_load_balancers([api.arn])
    daemon.refresh_topology()
    assert [lb.arn for lb in daemon.topology.load_balancers] == [tiny_world.albs["web"].arn]
    assert not daemon.topology.failures
    assert proxy.count() <= 2  # the ARN described (and asked alone if moto refuses the batch)


def test_an_alb_seen_while_a_refresh_runs_is_read_by_that_refresh_before_it_returns(tiny_world, counted):
    """The refresh job cannot be woken while it runs (the wake would be skipped): it sees to the
    changes asked for meanwhile itself."""
    import threading
    import time

    proxy, daemon, _ = counted
    daemon.run_once()
    proxy.reset_counts()
    proxy.delay(["DescribeTargetHealth"], seconds=2.0)
    refresh = threading.Thread(target=daemon.refresh_topology, args=("scheduled",))
    refresh.start()
    deadline = time.monotonic() + 30
    while proxy.count("elbv2", "DescribeTags") < 1 and time.monotonic() < deadline:
        time.sleep(0.02)  # the full discovery has listed the ALBs: the new one is not among them
    new = add_alb(tiny_world, "shop", "admin")
    assert daemon.check().refresh_wanted == "new_load_balancer"
    proxy.heal()
    refresh.join(60)
    assert new.arn in {lb.arn for lb in daemon.topology.load_balancers}


def test_a_target_group_scaled_to_zero_is_unknown_for_one_retry_then_believed(tiny_world, counted):
    """One DescribeTargetHealth answer with no target, where targets were seen, could be a glitch:
    the ALB is unknown (never "reachable with nothing to judge") until the retry reads the same."""
    proxy, _, metrics = counted
    clock = [1000.0]
    daemon = Daemon(aws.connect(None), CLUSTER, metrics, interval=10.0, topology_interval=300.0,
                    monotonic=lambda: clock[0], wall=lambda: clock[0])
    web, api = tiny_world.albs["web"], tiny_world.albs["api"]
    assert verdicts(daemon.run_once()) == {web.name: True, api.name: True}
    elbv2 = tiny_world.client("elbv2")
    for d in elbv2.describe_target_health(TargetGroupArn=web.target_group_arn)["TargetHealthDescriptions"]:
        elbv2.deregister_targets(TargetGroupArn=web.target_group_arn, Targets=[d["Target"]])
    daemon.refresh_topology("scheduled")
    doubted = daemon.check()
    assert verdicts(doubted) == {web.name: None, api.name: True} and not doubted.complete
    assert "listed no target where targets were seen before" in " ".join(f.message for f in doubted.report.findings)
    clock[0] += 10.0
    believed = daemon.run_once()  # the incomplete topology's retry reads it empty again
    assert verdicts(believed) == {web.name: True, api.name: True} and believed.complete
    assert [lb.paths for lb in believed.report.load_balancers if lb.name == web.name] == [()]


def test_a_new_alb_whose_read_in_a_check_failed_is_left_to_the_refresh_job(tiny_world, counted):
    """A check does not try again what a check failed to read (every check would pay for it, or
    miss its deadline on it again): the refresh job reads it, and a check runs once it has."""
    proxy, daemon, _ = counted
    woken: list[str] = []
    daemon.run_once()
    daemon.on_check_wanted = woken.append
    new = add_alb(tiny_world, "shop", "admin")
    proxy.fail(["DescribeTags"], kind=THROTTLE)
    failed = daemon.check()
    assert failed.refresh_wanted == "new_load_balancer" and new.name not in verdicts(failed)
    daemon.refresh_topology()  # still throttled: no check asked for what it could not read
    assert woken == []
    proxy.reset_counts()
    again = daemon.check()  # not read in the check again: asked of the refresh job again
    assert proxy.count("elbv2", "DescribeTags") == 0 and new.name not in verdicts(again)
    assert again.refresh_wanted == "new_load_balancer"
    proxy.heal()
    daemon.refresh_topology()
    assert woken == ["topology_updated"]
    assert verdicts(daemon.check())[new.name] is True


def test_a_read_in_a_check_keeps_the_update_an_event_asked_for(tiny_world, counted):
    """An event asked for one ALB's re-read; a check reads a new ALB itself before the refresh job
    runs: the job still runs that small update, not a full discovery of the account."""
    proxy, daemon, metrics = counted
    daemon.run_once()
    daemon.reread_load_balancers([tiny_world.albs["web"].arn])
    new = add_alb(tiny_world, "shop", "admin")
    assert verdicts(daemon.check())[new.name] is True
    proxy.reset_counts()
    daemon.refresh_topology()
    assert proxy.count("elbv2", "DescribeTargetGroups") == 1  # web's alone: no full discovery
    body = metrics.exposition()[0].decode()
    assert 'albsg_topology_refreshes_total{reason="load_balancer_changed"} 1.0' in body
    assert 'reason="scheduled"' not in body
