"""NLB client addresses on literal values: with client IP preservation on, the traffic port must admit
the clients, not only the load balancer's subnets; the health check stays judged against the subnets."""

from __future__ import annotations

from dataclasses import replace

import pytest

from monitor.core import restores
from monitor.core.clients import default_preserve
from monitor.core.cluster_model import ClusterState, Service
from monitor.core.evaluate import evaluate
from monitor.core.ingress_join import join_ingresses
from monitor.core.memory import Memory, RuleTuple, remember
from monitor.core.model import LoadBalancer, Observation, PeerKind, Rule, SecurityGroup, Target, TargetGroup, Topology

LB = "arn:aws:elasticloadbalancing:r:1:loadbalancer/net/n/1"
TG = "arn:aws:elasticloadbalancing:r:1:targetgroup/t/1"
SUBNETS = ("10.0.0.0/24", "10.0.1.0/24")
TRAFFIC, HEALTH = 30080, 30254


def nlb(groups=("sg-nlb",), **changes) -> LoadBalancer:
    return replace(LoadBalancer(LB, "n", "network", "vpc", tuple(groups), SUBNETS, adoption="v2",
                                scheme="internet-facing", ip_address_type="ipv4"), **changes)


def topology(lb=None, preserve=True, target_type="instance", protocol="TCP", health="traffic-port", lb_type=None):
    lb = lb or nlb()
    if lb_type:
        lb = replace(lb, lb_type=lb_type)
    target_id = "i-1" if target_type == "instance" else "10.0.5.9"
    tg = TargetGroup(TG, "t", target_type, protocol, TRAFFIC, "vpc", health, (LB,),
                     (Target(target_id, TRAFFIC, "eni-1", ("sg-node",)),), preserve_client_ip=preserve)
    return Topology("c", "r", (lb,), (tg,), (SecurityGroup("sg-node", "n", "", "vpc"),), known_lb_arns=frozenset({LB}))


def cidr(peer, lo=TRAFFIC, hi=TRAFFIC, protocol="tcp"):
    kind = PeerKind.CIDR6 if ":" in peer else PeerKind.CIDR
    return Rule("sg-node", protocol, lo, hi, kind, peer, rule_id=f"sgr-{protocol}-{lo}-{peer}")


def from_group(group="sg-nlb", lo=TRAFFIC, hi=TRAFFIC):
    return Rule("sg-node", "tcp", lo, hi, PeerKind.SECURITY_GROUP, group, rule_id=f"sgr-{lo}-{group}")


def subnet_rules(lo=TRAFFIC, hi=TRAFFIC):
    return tuple(cidr(s, lo, hi) for s in SUBNETS)


def check(topo, *rules):
    groups = {"sg-node", *topo.load_balancers[0].security_groups}
    out = tuple(Rule(g, "-1", None, None, PeerKind.CIDR, "0.0.0.0/0", rule_id=f"out-{g}", egress=True)
                for g in topo.load_balancers[0].security_groups)
    report = evaluate(topo, Observation(rules=tuple(rules), read_groups=frozenset(groups), egress_rules=out))
    return report, report.load_balancers[0].paths[0]


def codes(report):
    return [f.code for f in report.findings]


def test_subnets_admitted_but_not_the_clients_is_an_outage_health_checks_do_not_see():
    report, path = check(topology(), *subnet_rules())
    assert path.covered is True  # the health check passes: it comes from the subnets
    assert path.clients_admitted is False and path.clients_missing == ("0.0.0.0/0",)
    assert path.reachable is False and report.load_balancers[0].reachable is False
    (finding,) = report.findings
    assert finding.code == "CLIENTS_NOT_ADMITTED" and finding.severity.value == "critical"
    assert finding.load_balancer == "n" and finding.security_group == "sg-node"
    assert "tcp 30080" in finding.message and "0.0.0.0/0" in finding.message
    assert ("--group-id sg-node --ip-permissions 'IpProtocol=tcp,FromPort=30080,ToPort=30080,"
            "IpRanges=[{CidrIp=0.0.0.0/0,Description=clients}]'") in finding.message
    assert report.exit_code == 1


@pytest.mark.parametrize("topo, rules", [
    (topology(preserve=False), subnet_rules()),  # preservation off: the NLB sends from its subnets
    (topology(), (from_group(),)),  # a reference to the NLB's group admits it whatever the source address
    (topology(), (cidr("0.0.0.0/0"),)),  # internet-facing, open to everyone
    (topology(lb_type="application"), subnet_rules()),  # an ALB never preserves, whatever was read
    (topology(lb=nlb(scheme="internal", vpc_cidrs=("10.0.0.0/16",))), (cidr("10.0.0.0/16"),)),
    (topology(lb=nlb(client_ranges=("203.0.113.0/24", "198.51.100.0/24"))),
     (*subnet_rules(), cidr("203.0.113.0/24"), cidr("198.51.100.0/24"))),
])
def test_clients_admitted_is_no_finding(topo, rules):
    report, path = check(topo, *rules)
    assert path.clients_admitted is True and path.reachable is True, report.findings
    assert report.findings == () and report.exit_code == 0


def test_only_the_service_source_ranges_not_admitted_are_named():
    topo = topology(lb=nlb(client_ranges=("203.0.113.0/24", "198.51.100.0/24")))
    report, path = check(topo, *subnet_rules(), cidr("203.0.113.0/24"))
    assert path.clients_admitted is False and path.clients_missing == ("198.51.100.0/24",)
    (finding,) = report.findings
    assert "198.51.100.0/24" in finding.message and "203.0.113.0/24" not in finding.message


def test_an_internal_nlb_needs_its_vpc_admitted():
    topo = topology(lb=nlb(scheme="internal", vpc_cidrs=("10.0.0.0/16", "10.1.0.0/16")))
    report, path = check(topo, cidr("10.0.0.0/16"))
    assert path.clients_missing == ("10.1.0.0/16",) and codes(report) == ["CLIENTS_NOT_ADMITTED"]


def test_dualstack_internet_facing_needs_ipv6_clients_only_for_ipv6_targets():
    lb = nlb(ip_address_type="dualstack")
    report, path = check(topology(lb=lb), cidr("0.0.0.0/0"))
    assert path.clients_admitted is True  # an IPv4 target: IPv6 clients reach it translated, from the subnets
    tg = TargetGroup(TG, "t", "ip", "UDP", TRAFFIC, "vpc", "traffic-port", (LB,),
                     (Target("2600:1f18::5", TRAFFIC, "eni-1", ("sg-node",)),), preserve_client_ip=True)
    topo = replace(topology(lb=replace(lb, subnet_ipv6_cidrs=("2600:1f18::/64",))), target_groups=(tg,))
    report, path = check(topo, cidr("0.0.0.0/0", protocol="udp"), cidr("2600:1f18::/64"))
    assert path.clients_admitted is False and path.clients_missing == ("::/0",)


@pytest.mark.parametrize("topo", [
    topology(preserve=None),  # the attribute could not be read
    topology(lb=nlb(scheme="internal", vpc_cidrs=None)),  # the VPC could not be read
    topology(lb=nlb(client_ranges=None)),  # Kubernetes read, its Services not
])
def test_what_could_not_be_read_is_unknown_never_a_finding(topo):
    report, path = check(topo, *subnet_rules())
    assert path.clients_admitted is None and path.reachable is None
    assert "CLIENTS_NOT_ADMITTED" not in codes(report) and report.exit_code == 0


def test_a_traffic_port_admitted_from_the_clients_only_is_covered_when_the_health_check_has_its_own_port():
    """The Service's ranges on the traffic port, the subnets on the health-check port (v2's rules for
    an NLB without groups and externalTrafficPolicy Local): nothing is lost, nothing is revoked."""
    topo = topology(lb=nlb(groups=(), client_ranges=("203.0.113.0/24",)), health=str(HEALTH))
    report, path = check(topo, cidr("203.0.113.0/24"), *subnet_rules(HEALTH, HEALTH))
    assert path.covered is True and path.clients_admitted is True and report.findings == ()
    # The health-check port stays judged against the subnets.
    report, path = check(topo, cidr("203.0.113.0/24"))
    assert path.covered is False and path.missing == (("tcp", HEALTH),) and path.clients_admitted is True
    assert codes(report) == ["ACCESS_REVOKED"]


@pytest.mark.parametrize("target_type, protocol, expected", [
    ("instance", "TCP", True), ("instance", "TLS", True), ("ip", "TCP", False), ("ip", "TLS", False),
    ("ip", "UDP", True), ("ip", "TCP_UDP", True), ("instance", "UDP", True),
])
def test_aws_default_for_preservation(target_type, protocol, expected):
    assert default_preserve(target_type, protocol) is expected


def test_an_nlb_without_groups_whose_cidr_rule_is_revoked_is_reported_and_never_restored():
    topo = topology(lb=nlb(groups=()), preserve=False)
    healthy, _ = check(topo, *subnet_rules())
    mem = remember(Memory(), healthy, subnet_rules(), 100.0)
    report, path = check(topo, subnet_rules()[0])
    assert path.covered is False
    (finding,) = report.findings
    assert finding.code == "ACCESS_REVOKED"
    # The fix names the subnets: there is no group to name as the source.
    assert "IpRanges=[{CidrIp=10.0.0.0/24,Description=restored-by-hand},{CidrIp=10.0.1.0/24," in finding.message
    assert "GroupId=" not in finding.message
    mem = remember(mem, report, (subnet_rules()[0],), 115.0)
    needed = restores.needs(mem, report)
    assert needed == {RuleTuple.of(subnet_rules()[1]): needed[RuleTuple.of(subnet_rules()[1])]}
    assert [n.reason for n in needed.values()] == [restores.CIDR_NOT_RESTORED]


@pytest.mark.parametrize("services, expected", [
    ((Service("game", "tcp", "LoadBalancer", source_ranges=("203.0.113.0/24",)),), ("203.0.113.0/24",)),
    ((Service("game", "other", "LoadBalancer", source_ranges=("203.0.113.0/24",)),), ()),  # not its Service
    (None, None),  # Services unread: the clients are unknown
])
def test_the_nlb_of_a_service_takes_its_source_ranges(services, expected):
    lb = nlb(tags=(("service.k8s.aws/stack", "game/tcp"),))
    joined = join_ingresses(topology(lb=lb), ClusterState(services=services))
    assert joined.load_balancers[0].client_ranges == expected
