"""The pure verdict on literal values: coverage, unknowns, reachability and findings."""

from __future__ import annotations

import pytest

from monitor.evaluate import evaluate
from monitor.model import (
    LoadBalancer,
    Observation,
    PeerKind,
    ReadFailure,
    Rule,
    SecurityGroup,
    Target,
    TargetGroup,
    Topology,
)

LB = "arn:aws:elasticloadbalancing:r:1:loadbalancer/app/a/1"
TG = "arn:aws:elasticloadbalancing:r:1:targetgroup/t/1"
CLUSTER_TAG = (("kubernetes.io/cluster/c", "owned"),)


def topology(targets=None, health="traffic-port", incomplete=frozenset(), groups=None):
    targets = (Target("i-1", 30080, "eni-1", ("sg-node",)),) if targets is None else targets
    return Topology(
        cluster="c", region="r",
        load_balancers=(LoadBalancer(LB, "a", "application", "vpc", ("sg-alb",), ("10.0.0.0/24", "10.0.1.0/24"),
                                     adoption="v2"),),
        target_groups=(TargetGroup(TG, "t", "instance", "HTTP", 30080, "vpc", health, (LB,), targets),),
        security_groups=groups or (SecurityGroup("sg-node", "n", "", "vpc", CLUSTER_TAG),
                                   SecurityGroup("sg-alb", "a", "[k8s] Managed SecurityGroup for LoadBalancer", "vpc")),
        incomplete_lbs=incomplete,
    )


def rule(protocol="tcp", lo=30080, hi=30080, peer="sg-alb", kind=PeerKind.SECURITY_GROUP, group="sg-node", description=""):
    return Rule(group, protocol, lo, hi, kind, peer, rule_id=f"sgr-{protocol}-{lo}-{hi}-{peer}", description=description)


def allow_all_out(group="sg-alb"):
    """The default egress rule every new security group gets."""
    return Rule(group, "-1", None, None, PeerKind.CIDR, "0.0.0.0/0", rule_id=f"sgr-out-{group}", egress=True)


def observe(*rules, read=frozenset({"sg-node"}), prefix_lists=(), failures=(), alb_groups=("sg-alb",)):
    """The rules read, plus the ALB's SGs read with their default egress."""
    return Observation(rules=tuple(rules), read_groups=read | set(alb_groups), prefix_lists=prefix_lists,
                       failures=failures, egress_rules=tuple(allow_all_out(g) for g in alb_groups))


@pytest.mark.parametrize("rules, covered", [
    ((rule(),), True),
    ((rule("-1", None, None),), True),
    ((rule("tcp", 0, 65535),), True),
    ((rule("6", 30000, 32767),), True),
    ((rule("tcp", 30081, 30090),), False),
    ((rule("udp", 0, 65535),), False),
    ((rule(peer="sg-other"),), False),
    ((rule(kind=PeerKind.CIDR, peer="0.0.0.0/0"),), True),
    ((rule(kind=PeerKind.CIDR, peer="10.0.0.0/16"),), True),
    ((rule(kind=PeerKind.CIDR, peer="10.0.0.0/24"),), False),  # one of the two ALB subnets only
    ((rule(kind=PeerKind.CIDR6, peer="::/0"),), False),
    ((), False),
])
def test_coverage(rules, covered):
    report = evaluate(topology(), observe(*rules))
    (lb,) = report.load_balancers
    assert lb.paths[0].covered is covered
    assert lb.reachable is covered
    assert report.exit_code == (0 if covered else 1)


def test_prefix_list_covering_alb_subnets():
    pl = (("pl-1", ("10.0.0.0/23",)),)
    report = evaluate(topology(), observe(rule(kind=PeerKind.PREFIX_LIST, peer="pl-1"), prefix_lists=pl))
    assert report.load_balancers[0].reachable is True


def test_health_check_port_must_be_admitted_too():
    report = evaluate(topology(health="30081"), observe(rule()))
    path = report.load_balancers[0].paths[0]
    assert path.ports == (30080, 30081) and path.covered is False and path.missing_ports == (30081,)
    finding = next(f for f in report.findings if f.code == "ACCESS_REVOKED")
    assert "30081" in finding.message and finding.security_group == "sg-node"


def test_unread_rules_make_paths_unknown_never_false():
    failure = ReadFailure("ec2", "DescribeSecurityGroupRules", "Throttling", "slow down")
    report = evaluate(topology(), observe(read=frozenset(), failures=(failure,)))
    assert report.load_balancers[0].paths[0].covered is None
    assert report.load_balancers[0].reachable is None
    assert report.complete is False and report.exit_code == 3
    assert [f.code for f in report.findings] == ["OBSERVATION_INCOMPLETE"]


def test_rule_on_a_read_group_covers_even_if_another_group_was_unread():
    target = Target("i-1", 30080, "eni-1", ("sg-node", "sg-extra"))
    report = evaluate(topology(targets=(target,)), observe(rule(), read=frozenset({"sg-node"})))
    assert report.load_balancers[0].paths[0].covered is True


def test_unknown_target_group_makes_alb_unknown():
    report = evaluate(topology(targets=None, incomplete=frozenset({LB})), observe(rule()))
    assert report.load_balancers[0].reachable is None


def test_unknown_eni_makes_path_unknown():
    report = evaluate(topology(targets=(Target("i-1", 30080, None, None),)), observe(rule()))
    assert report.load_balancers[0].paths[0].covered is None


def test_a_known_false_path_wins_over_an_unknown_one():
    targets = (Target("i-1", 30080, "eni-1", ("sg-node",)), Target("i-2", 30080, None, None))
    report = evaluate(topology(targets=targets), observe())
    assert report.load_balancers[0].reachable is False and report.exit_code == 1


def test_draining_targets_are_not_checked():
    targets = (Target("i-1", 30080, "eni-1", ("sg-node",), state="draining"),)
    report = evaluate(topology(targets=targets), observe())
    assert report.load_balancers[0].paths == () and report.load_balancers[0].reachable is True


def test_fresh_alb_security_groups_from_the_check_are_used():
    fresh = Observation(rules=(rule(peer="sg-new"),), read_groups=frozenset({"sg-node", "sg-new"}),
                        lb_security_groups=((LB, ("sg-new",)),), egress_rules=(allow_all_out("sg-new"),))
    assert evaluate(topology(), fresh).load_balancers[0].reachable is True


def test_deleted_alb_disappears_from_the_report():
    gone = Observation(rules=(), read_groups=frozenset({"sg-node"}), live_lb_arns=frozenset())
    assert evaluate(topology(), gone).load_balancers == ()
