"""The pure verdict on literal values: coverage, unknowns, reachability and findings."""

from __future__ import annotations

from dataclasses import replace

import pytest

from monitor.core.evaluate import evaluate
from monitor.core.model import (
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
    # one CIDR rule per ALB subnet: together they cover the ALB
    ((rule(kind=PeerKind.CIDR, peer="10.0.0.0/24"), rule(kind=PeerKind.CIDR, peer="10.0.1.0/24")), True),
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


def test_an_alb_missing_from_the_listing_is_unknown_not_gone_nor_revoked():
    """Deleted, or a listing that lost it: no verdict, no path, no finding but the incomplete one,
    until a read of it by ARN says (the daemon drops it from the topology only then)."""
    unlisted = Observation(rules=(), read_groups=frozenset({"sg-node"}), live_lb_arns=frozenset())
    report = evaluate(topology(), unlisted)
    (lb,) = report.load_balancers
    assert lb.arn == LB and lb.reachable is None and lb.paths == ()
    assert not report.complete and [f.code for f in report.findings] == ["OBSERVATION_INCOMPLETE"]
    assert "missing from the load balancer listing" in report.findings[0].message


def test_the_same_cidrs_as_rules_or_in_a_prefix_list_give_the_same_verdict():
    pl = (("pl-1", ("10.0.0.0/24", "10.0.1.0/24")),)
    as_list = evaluate(topology(), observe(rule(kind=PeerKind.PREFIX_LIST, peer="pl-1"), prefix_lists=pl))
    as_rules = evaluate(topology(), observe(rule(kind=PeerKind.CIDR, peer="10.0.0.0/24"),
                                            rule(kind=PeerKind.CIDR, peer="10.0.1.0/24")))
    assert as_list.load_balancers[0].reachable is as_rules.load_balancers[0].reachable is True
    assert as_rules.load_balancers[0].paths[0].covered_by == ("sgr-tcp-30080-30080-10.0.0.0/24",
                                                              "sgr-tcp-30080-30080-10.0.1.0/24")


def test_a_prefix_list_not_read_makes_the_path_unknown_not_revoked():
    report = evaluate(topology(), observe(rule(kind=PeerKind.CIDR, peer="10.0.0.0/24"),
                                          rule(kind=PeerKind.PREFIX_LIST, peer="pl-unread")))
    assert report.load_balancers[0].reachable is None and "ACCESS_REVOKED" not in [f.code for f in report.findings]


def test_subnets_not_read_make_cidr_coverage_unknown():
    topo = topology()
    topo = replace(topo, load_balancers=(replace(topo.load_balancers[0], subnet_cidrs=(), subnets_read=False),))
    assert evaluate(topo, observe(rule(kind=PeerKind.CIDR, peer="10.0.0.0/24"))).load_balancers[0].reachable is None
    assert evaluate(topo, observe(rule(kind=PeerKind.CIDR, peer="0.0.0.0/0"))).load_balancers[0].reachable is True


def udp_topology(protocol="UDP", health_protocol="TCP"):
    topo = topology(targets=(Target("i-1", 31055, "eni-1", ("sg-node",)),), health="31056")
    tg = replace(topo.target_groups[0], protocol=protocol, health_check_protocol=health_protocol)
    return replace(topo, target_groups=(tg,))


@pytest.mark.parametrize("protocol, rules, reachable, missing", [
    ("UDP", (rule("udp", 31055, 31055), rule("tcp", 31056, 31056)), True, ()),
    ("UDP", (rule("tcp", 31055, 31056),), False, (("udp", 31055),)),
    ("UDP", (rule("udp", 31055, 31056),), False, (("tcp", 31056),)),
    ("UDP", (rule("-1", None, None),), True, ()),
    ("UDP", (rule("17", 31000, 31100), rule("6", 31000, 31100)), True, ()),
    ("TCP_UDP", (rule("udp", 31055, 31055), rule("tcp", 31056, 31056)), False, (("tcp", 31055),)),
    ("TCP_UDP", (rule("udp", 31055, 31055), rule("tcp", 31055, 31056)), True, ()),
    ("TLS", (rule("tcp", 31055, 31056),), True, ()),
])
def test_traffic_with_the_target_groups_protocol_health_check_with_its_own(protocol, rules, reachable, missing):
    report = evaluate(udp_topology(protocol), observe(*rules))
    (path,) = report.load_balancers[0].paths
    assert report.load_balancers[0].reachable is reachable and path.missing == missing


def test_access_revoked_names_the_protocol_to_admit():
    report = evaluate(udp_topology(), observe(rule("tcp", 31055, 31056)))
    (finding,) = [f for f in report.findings if f.code == "ACCESS_REVOKED"]
    assert "admit udp 31055 from sg-alb" in finding.message
    assert "--ip-permissions 'IpProtocol=udp,FromPort=31055,ToPort=31055,UserIdGroupPairs=" in finding.message


def test_access_revoked_for_both_protocols_gives_one_permission_each():
    report = evaluate(udp_topology("TCP_UDP"), observe())
    (finding,) = [f for f in report.findings if f.code == "ACCESS_REVOKED"]
    assert "admit tcp 31055-31056, udp 31055 from sg-alb" in finding.message
    assert "'IpProtocol=tcp,FromPort=31055,ToPort=31056," in finding.message
    assert "'IpProtocol=udp,FromPort=31055,ToPort=31055," in finding.message


def outbound(protocol="-1", lo=None, hi=None, peer="0.0.0.0/0", kind=PeerKind.CIDR, group="sg-alb"):
    return Rule(group, protocol, lo, hi, kind, peer, rule_id=f"sgr-out-{protocol}-{lo}-{peer}", egress=True)


def with_egress(*egress, read=frozenset({"sg-node", "sg-alb"})):
    return Observation(rules=(rule(),), read_groups=read, egress_rules=tuple(egress))


def address_topology():
    return topology(targets=(Target("i-1", 30080, "eni-1", ("sg-node",), address="10.0.0.12"),))


@pytest.mark.parametrize("egress, allowed", [
    ((outbound(),), True),
    ((outbound("tcp", 443, 443),), False),
    ((outbound("tcp", 30080, 30080, peer="sg-node", kind=PeerKind.SECURITY_GROUP),), True),
    ((outbound("tcp", 30080, 30080, peer="sg-other", kind=PeerKind.SECURITY_GROUP),), False),
    ((outbound("tcp", 30000, 32767, peer="10.0.0.0/16"),), True),
    ((outbound("tcp", 30000, 32767, peer="10.0.1.0/24"),), False),  # not where the target is
    ((outbound("udp", 30080, 30080),), False),
    ((), False),
])
def test_the_albs_own_egress_must_let_the_traffic_out(egress, allowed):
    report = evaluate(address_topology(), with_egress(*egress))
    (lb,) = report.load_balancers
    assert lb.paths[0].covered is True and lb.paths[0].egress_allowed is allowed
    assert lb.reachable is allowed
    blocked = [f for f in report.findings if f.code == "EGRESS_BLOCKED"]
    assert len(blocked) == (0 if allowed else 1) and report.exit_code == (0 if allowed else 1)
    if blocked:
        assert blocked[0].security_group == "sg-alb" and blocked[0].severity.value == "critical"
        assert ("aws ec2 authorize-security-group-egress --group-id sg-alb --ip-permissions "
                "'IpProtocol=tcp,FromPort=30080,ToPort=30080,UserIdGroupPairs=[{GroupId=sg-node,") in blocked[0].message


def test_inbound_rules_never_count_as_outbound_nor_the_reverse():
    # the same all-traffic rule, in the wrong direction on each side
    inbound_on_alb = Rule("sg-alb", "-1", None, None, PeerKind.CIDR, "0.0.0.0/0", rule_id="sgr-in-alb")
    outbound_on_node = outbound(group="sg-node", peer="sg-alb", kind=PeerKind.SECURITY_GROUP)
    observation = Observation(rules=(inbound_on_alb,), read_groups=frozenset({"sg-node", "sg-alb"}),
                              egress_rules=(outbound_on_node,))
    (path,) = evaluate(address_topology(), observation).load_balancers[0].paths
    assert path.covered is False and path.egress_allowed is False


def test_alb_security_group_not_read_makes_egress_unknown_never_blocked():
    failure = ReadFailure("ec2", "DescribeSecurityGroupRules", "Throttling", "slow down")
    observation = Observation(rules=(rule(),), read_groups=frozenset({"sg-node"}), failures=(failure,))
    report = evaluate(address_topology(), observation)
    assert report.load_balancers[0].paths[0].egress_allowed is None
    assert report.load_balancers[0].reachable is None and report.exit_code == 3


def ipv6_topology(subnets6=("2600:1f14:abc:100::/64", "2600:1f14:abc:101::/64")):
    topo = topology(targets=(Target("2600:1f14:abc:100::1a", 8080, "eni-1", ("sg-node",)),))
    lb = replace(topo.load_balancers[0], subnet_ipv6_cidrs=subnets6)
    tg = replace(topo.target_groups[0], target_type="ip", port=8080)
    return replace(topo, load_balancers=(lb,), target_groups=(tg,))


@pytest.mark.parametrize("rules, covered", [
    ((rule("tcp", 8080, 8080, kind=PeerKind.CIDR6, peer="::/0"),), True),
    ((rule("tcp", 8080, 8080, kind=PeerKind.CIDR, peer="0.0.0.0/0"),), False),
    ((rule("tcp", 8080, 8080, kind=PeerKind.CIDR6, peer="2600:1f14:abc:100::/64"),
      rule("tcp", 8080, 8080, kind=PeerKind.CIDR6, peer="2600:1f14:abc:101::/64")), True),
    ((rule("tcp", 8080, 8080, kind=PeerKind.CIDR6, peer="2600:1f14:abc:100::/64"),), False),
    ((rule("tcp", 8080, 8080),), True),  # from the ALB's SG: any address family
])
def test_ipv6_targets_get_a_verdict_from_ipv6_rules(rules, covered):
    egress6 = Rule("sg-alb", "-1", None, None, PeerKind.CIDR6, "::/0", rule_id="sgr-out6", egress=True)
    observation = Observation(rules=rules, read_groups=frozenset({"sg-node", "sg-alb"}), egress_rules=(egress6,))
    report = evaluate(ipv6_topology(), observation)
    assert report.load_balancers[0].paths[0].covered is covered
    assert report.load_balancers[0].reachable is covered and report.exit_code == (0 if covered else 1)


def test_ipv6_target_needs_ipv6_egress():
    only_v4_out = Observation(rules=(rule("tcp", 8080, 8080),), read_groups=frozenset({"sg-node", "sg-alb"}),
                              egress_rules=(outbound(),))
    assert evaluate(ipv6_topology(), only_v4_out).load_balancers[0].paths[0].egress_allowed is False
