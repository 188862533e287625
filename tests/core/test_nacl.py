"""Network ACLs in the pure verdict: first match by rule number over ranges, both directions of a
stateless ACL, the final deny, one subnet, address families, and unknown when they were not read."""

from __future__ import annotations

from dataclasses import replace

import pytest

from monitor.core.evaluate import evaluate
from monitor.core.model import (
    LoadBalancer,
    NaclEntry,
    NetworkAcl,
    Observation,
    PeerKind,
    Rule,
    SecurityGroup,
    Subnet,
    Target,
    TargetGroup,
    Topology,
)
from monitor.core.nacl import first_deny

LB = "arn:aws:elasticloadbalancing:r:1:loadbalancer/app/a/1"
TG = "arn:aws:elasticloadbalancing:r:1:targetgroup/t/1"
A, B, C = Subnet("subnet-a", "10.0.1.0/24", ("2600:1::/64",)), Subnet("subnet-b", "10.0.2.0/24", ("2600:2::/64",)), \
    Subnet("subnet-c", "10.0.3.0/24", ("2600:3::/64",))
ALL = (NaclEntry(100, False, "-1", True, "0.0.0.0/0"), NaclEntry(100, True, "-1", True, "0.0.0.0/0"),
       NaclEntry(101, False, "-1", True, "::/0"), NaclEntry(101, True, "-1", True, "::/0"))


def final(*entries: NaclEntry) -> tuple[NaclEntry, ...]:
    """Entries plus the `*` denies AWS lists at the end of every ACL."""
    return (*entries, *(NaclEntry(32767, egress, "-1", False, cidr) for egress in (False, True)
                        for cidr in ("0.0.0.0/0", "::/0")))


def acl(acl_id: str, subnets: tuple[str, ...], *entries: NaclEntry, default=False) -> NetworkAcl:
    return NetworkAcl(acl_id, "vpc", default, subnets, final(*entries))


def topology(target_subnet="subnet-c", lb_subnets=(A, B), target_id="i-1", address="10.0.3.10",
             target_type="instance") -> Topology:
    target = Target(target_id, 30080, "eni-1", ("sg-node",), address=address, subnet_id=target_subnet, vpc_id="vpc")
    return Topology(
        cluster="c", region="r",
        load_balancers=(LoadBalancer(LB, "a", "application", "vpc", ("sg-alb",), tuple(s.cidr for s in lb_subnets),
                                     adoption="v2", subnets=lb_subnets),),
        target_groups=(TargetGroup(TG, "t", target_type, "HTTP", 30080, "vpc", "traffic-port", (LB,), (target,)),),
        security_groups=(SecurityGroup("sg-node", "n", "", "vpc", (("kubernetes.io/cluster/c", "owned"),)),),
    )


def observe(*acls: NetworkAcl, read: bool | None = True) -> Observation:
    rules = (Rule("sg-node", "tcp", 0, 65535, PeerKind.SECURITY_GROUP, "sg-alb", rule_id="sgr-1"),
             Rule("sg-alb", "-1", None, None, PeerKind.CIDR, "0.0.0.0/0", rule_id="sgr-out", egress=True),
             Rule("sg-alb", "-1", None, None, PeerKind.CIDR6, "::/0", rule_id="sgr-out6", egress=True))
    default = NetworkAcl("acl-default", "vpc", True, (), final(*ALL))
    return Observation(rules=rules, read_groups=frozenset({"sg-node", "sg-alb"}), egress_rules=rules[1:],
                       network_acls=(default, *acls), network_acls_read=read)


def path_of(report):
    (lb,) = report.load_balancers
    return lb.paths[0]


def test_default_acls_pass_the_path():
    report = evaluate(topology(), observe())
    assert path_of(report).nacl_allowed is True and path_of(report).reachable is True and report.exit_code == 0


def test_inbound_deny_of_the_node_port_from_an_alb_subnet_blocks_and_names_the_rule():
    target_acl = acl("acl-t", ("subnet-c",), NaclEntry(90, False, "6", False, "10.0.2.0/24", 30000, 32767), *ALL)
    report = evaluate(topology(), observe(target_acl))
    path = path_of(report)
    assert path.nacl_allowed is False and path.reachable is False and path.covered is True
    (block,) = path.nacl_blocked
    assert (block.acl_id, block.rule, block.direction, block.subnet_id) == ("acl-t", "90", "inbound", "subnet-c")
    assert (block.from_port, block.to_port, block.peer, block.reply) == (30080, 30080, "10.0.2.0/24", False)
    (finding,) = [f for f in report.findings if f.code == "NACL_BLOCKED"]
    assert finding.severity.value == "critical" and report.exit_code == 1
    assert "acl-t" in finding.message and "rule 90" in finding.message and "inbound" in finding.message
    assert "create-network-acl-entry --network-acl-id acl-t --ingress --rule-number <a free number below 90>" \
        in finding.message
    assert "--port-range From=30080,To=30080 --cidr-block 10.0.2.0/24 --rule-action allow" in finding.message


def test_replies_denied_on_the_way_back_block():
    target_acl = acl("acl-t", ("subnet-c",), NaclEntry(50, True, "6", False, "10.0.0.0/16", 1024, 65535), *ALL)
    path = path_of(evaluate(topology(), observe(target_acl)))
    assert path.nacl_allowed is False
    assert {(b.rule, b.direction, b.reply, b.from_port, b.to_port) for b in path.nacl_blocked} == {
        ("50", "outbound", True, 1024, 65535)}
    assert {b.peer for b in path.nacl_blocked} == {"10.0.1.0/24", "10.0.2.0/24"}  # both ALB subnets


def test_lb_subnet_acl_checks_the_target_address_outbound_and_the_replies_inbound():
    lb_acl = acl("acl-lb", ("subnet-a",), NaclEntry(10, False, "6", False, "10.0.3.10/32", 1024, 2000), *ALL)
    path = path_of(evaluate(topology(), observe(lb_acl)))
    (block,) = path.nacl_blocked
    assert (block.acl_id, block.direction, block.subnet_id, block.peer, block.reply) == \
        ("acl-lb", "inbound", "subnet-a", "10.0.3.10/32", True)


def test_an_allow_numbered_before_a_deny_shadows_it():
    target_acl = acl("acl-t", ("subnet-c",), NaclEntry(90, False, "6", True, "10.0.0.0/16", 30080, 30080),
                     NaclEntry(100, False, "-1", False, "10.0.0.0/8"), NaclEntry(110, False, "-1", True, "0.0.0.0/0"),
                     NaclEntry(100, True, "-1", True, "0.0.0.0/0"))
    assert path_of(evaluate(topology(), observe(target_acl))).nacl_allowed is True


def test_an_allow_covering_part_of_a_subnet_leaves_the_rest_to_a_later_deny():
    # 10.0.2.0/25 allowed first, the deny then meets 10.0.2.128/25, still undecided.
    entries = final(NaclEntry(10, False, "6", True, "10.0.2.0/25", 0, 65535),
                    NaclEntry(20, False, "6", False, "10.0.2.0/24", 30080, 30080))
    assert first_deny(entries, False, "tcp", "10.0.2.0/24", (30080, 30080), 4) == "20"
    # the other half allowed too: nothing left for the deny
    entries = final(NaclEntry(10, False, "6", True, "10.0.2.0/25", 0, 65535),
                    NaclEntry(11, False, "6", True, "10.0.2.128/25", 30000, 32767),
                    NaclEntry(20, False, "6", False, "10.0.2.0/24", 30080, 30080))
    assert first_deny(entries, False, "tcp", "10.0.2.0/24", (30080, 30080), 4) is None


def test_a_reply_range_allowed_in_part_falls_to_the_final_deny():
    entries = final(NaclEntry(10, True, "6", True, "0.0.0.0/0", 1024, 60000))
    assert first_deny(entries, True, "tcp", "10.0.1.0/24", (1024, 65535), 4) == "*"
    entries = final(NaclEntry(10, True, "6", True, "0.0.0.0/0", 1024, 60000),
                    NaclEntry(11, True, "6", True, "10.0.0.0/8", 60001, 65535))
    assert first_deny(entries, True, "tcp", "10.0.1.0/24", (1024, 65535), 4) is None


def test_without_the_listed_final_deny_what_is_left_is_still_denied():
    assert first_deny((NaclEntry(10, False, "17", True, "0.0.0.0/0"),), False, "tcp", "10.0.1.0/24",
                      (80, 80), 4) == "*"


def test_protocols_must_match():
    entries = final(NaclEntry(10, False, "17", False, "0.0.0.0/0", 0, 65535), NaclEntry(20, False, "6", True, "0.0.0.0/0", 0, 65535))
    assert first_deny(entries, False, "tcp", "10.0.1.0/24", (80, 80), 4) is None
    assert first_deny(entries, False, "udp", "10.0.1.0/24", (80, 80), 4) == "10"


def test_traffic_inside_one_subnet_is_not_filtered():
    deny_all = acl("acl-t", ("subnet-a",))  # nothing but the final denies
    report = evaluate(topology(target_subnet="subnet-a", lb_subnets=(A,), address="10.0.1.10"), observe(deny_all))
    assert path_of(report).nacl_allowed is True and report.exit_code == 0


def test_cross_zone_every_other_lb_subnet_is_checked():
    deny_all = acl("acl-t", ("subnet-a",))
    path = path_of(evaluate(topology(target_subnet="subnet-a", address="10.0.1.10"), observe(deny_all)))
    assert path.nacl_allowed is False  # subnet-b's traffic enters subnet-a
    assert {b.peer for b in path.nacl_blocked if not b.egress} == {"10.0.2.0/24"}


def test_an_ipv4_deny_does_not_touch_an_ipv6_path():
    target_acl = acl("acl-t", ("subnet-c",), NaclEntry(10, False, "-1", False, "0.0.0.0/0"), *ALL)
    report = evaluate(topology(target_id="2600:3::10", address="2600:3::10", target_type="ip"), observe(target_acl))
    assert path_of(report).nacl_allowed is True
    ipv6_deny = acl("acl-t", ("subnet-c",), NaclEntry(10, False, "-1", False, "::/0"), *ALL)
    path = path_of(evaluate(topology(target_id="2600:3::10", address="2600:3::10", target_type="ip"), observe(ipv6_deny)))
    assert path.nacl_allowed is False and {b.peer for b in path.nacl_blocked} == {"2600:1::/64", "2600:2::/64"}


def test_default_acl_is_judged_by_its_entries():
    edited = NetworkAcl("acl-default", "vpc", True, (), final(NaclEntry(5, False, "6", False, "10.0.0.0/16", 30080, 30080), *ALL))
    obs = observe()
    obs = replace(obs, network_acls=(edited,))
    path = path_of(evaluate(topology(), obs))
    assert path.nacl_allowed is False and {b.acl_id for b in path.nacl_blocked} == {"acl-default"}


@pytest.mark.parametrize("read", [False])
def test_acls_not_read_make_the_path_unknown_never_blocked(read):
    target_acl = acl("acl-t", ("subnet-c",))
    report = evaluate(topology(), observe(target_acl, read=read))
    path = path_of(report)
    assert path.nacl_allowed is None and path.reachable is None and path.covered is True
    assert "NACL_BLOCKED" not in {f.code for f in report.findings}


def test_a_subnet_whose_acl_is_unknown_leaves_the_path_unknown():
    obs = observe()
    obs = replace(obs, network_acls=())  # no default ACL listed for the VPC
    path = path_of(evaluate(topology(), obs))
    assert path.nacl_allowed is None and path.reachable is None


def test_one_finding_per_acl_rule_and_direction():
    target_acl = acl("acl-t", ("subnet-c",), NaclEntry(90, False, "6", False, "10.0.0.0/16", 0, 65535),
                     NaclEntry(91, True, "6", False, "10.0.0.0/16", 1024, 65535), *ALL)
    report = evaluate(topology(), observe(target_acl))
    nacl_findings = [f for f in report.findings if f.code == "NACL_BLOCKED"]
    assert len(nacl_findings) == 2
    assert any("rule 90" in f.message and "inbound" in f.message for f in nacl_findings)
    assert any("rule 91" in f.message and "replies on tcp 1024-65535" in f.message for f in nacl_findings)
