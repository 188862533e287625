"""Targets that get no traffic (draining, unused) are neither judged nor looked up: a rollout's
draining pods, whose addresses no ENI owns any more, must not make their load balancer unknown."""

from __future__ import annotations

from monitor import aws
from monitor.aws.discover import _attach_enis, _Discovery
from monitor.core.evaluate import evaluate
from monitor.core.model import LoadBalancer, Observation, PeerKind, Rule, SecurityGroup, Target, TargetGroup, Topology

LB = "arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:loadbalancer/app/k8s-shop-web/1"
TG = "arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:targetgroup/k8s-shop-web/1"


def test_draining_and_unused_targets_never_page():
    targets = (
        Target("i-ok", 30080, "eni-ok", ("sg-node",), state="healthy"),
        Target("i-unused", 30080, "eni-x", ("sg-bare",), state="unused"),  # no rule admits it
        Target("10.0.9.9", 8080, None, None, state="draining"),  # its ENI is gone with its pod
    )
    topology = Topology(
        cluster="c", region="r",
        load_balancers=(LoadBalancer(LB, "k8s-shop-web", "application", "vpc", ("sg-alb",), ("10.0.0.0/24",),
                                     adoption="v2"),),
        target_groups=(TargetGroup(TG, "t", "instance", "HTTP", 30080, "vpc", "traffic-port", (LB,), targets),),
        security_groups=(SecurityGroup("sg-node", "node", "", "vpc"), SecurityGroup("sg-bare", "bare", "", "vpc")))
    rules = (Rule("sg-node", "tcp", 30080, 30080, PeerKind.SECURITY_GROUP, "sg-alb", rule_id="sgr-1"),)
    egress = (Rule("sg-alb", "-1", None, None, PeerKind.CIDR, "0.0.0.0/0", rule_id="sgr-out", egress=True),)
    report = evaluate(topology, Observation(rules=rules, egress_rules=egress,
                                            read_groups=frozenset({"sg-node", "sg-bare", "sg-alb"})))
    lb, = report.load_balancers
    assert lb.reachable is True and [p.target for p in lb.paths] == ["i-ok"]
    assert report.exit_code == 0 and not report.findings


def test_a_draining_target_whose_address_no_eni_owns_is_not_looked_up(world, proxy):
    clients = aws.connect(world.region)
    draining = TargetGroup(TG, "t", "ip", "HTTP", 8080, "vpc-anything", "traffic-port", (LB,),
                           (Target("10.99.0.5", 8080, None, None, state="draining"),))
    d = _Discovery(clients, world.cluster)
    out, = _attach_enis(d, [draining])
    assert d.failures == [] and not d.incomplete
    assert proxy.count(action="DescribeNetworkInterfaces") == 0
    assert out.targets == draining.targets

    initial = TargetGroup(TG, "t", "ip", "HTTP", 8080, "vpc-anything", "traffic-port", (LB,),
                          (Target("10.99.0.5", 8080, None, None, state="initial"),))
    d = _Discovery(clients, world.cluster)
    _attach_enis(d, [initial])  # a target still judged is looked up, and an unowned address is unknown
    assert proxy.count(action="DescribeNetworkInterfaces") >= 1
    assert d.incomplete == {LB}
