"""Coverage over the union of rules, per protocol and port, on literal rules and address ranges."""

from __future__ import annotations

import pytest

from monitor.core.coverage import Peer, Verdict, admits, cover, health_check_protocol, traffic_protocols
from monitor.core.model import PeerKind, Rule

ALB_SUBNETS = ("10.0.0.0/24", "10.0.1.0/24")
ALB_SUBNETS6 = ("2600:1f14:abc:100::/64", "2600:1f14:abc:101::/64")
FROM_ALB = Peer(groups=frozenset({"sg-alb"}), networks=ALB_SUBNETS)
FROM_ALB6 = Peer(groups=frozenset({"sg-alb"}), networks=ALB_SUBNETS6, family=6)
PREFIX_LISTS = {"pl-both": ("10.0.0.0/24", "10.0.1.0/24"), "pl-one": ("10.0.0.0/24",),
                "pl-v6": ("2600:1f14:abc:100::/56",), "pl-mixed": ("10.0.0.0/23", "2600:1f14:abc:101::/64")}


def rule(peer="sg-alb", protocol="tcp", lo=30000, hi=32767, rule_id=None):
    if peer.startswith("sg-"):
        kind = PeerKind.SECURITY_GROUP
    elif peer.startswith("pl-"):
        kind = PeerKind.PREFIX_LIST
    else:
        kind = PeerKind.CIDR6 if ":" in peer else PeerKind.CIDR
    return Rule("sg-node", protocol, lo, hi, kind, peer, rule_id=rule_id or f"sgr-{protocol}-{lo}-{peer}")


TCP_NODEPORT = (("tcp", 30080),)


@pytest.mark.parametrize("rules, peer, covered", [
    # one rule per ALB subnet (Terraform's cidr_blocks = [a, b]) covers the ALB as a whole
    ((rule("10.0.0.0/24"), rule("10.0.1.0/24")), FROM_ALB, True),
    ((rule("10.0.0.0/24"),), FROM_ALB, False),
    # pieces that only together cover a subnet
    ((rule("10.0.0.0/25"), rule("10.0.0.128/25"), rule("10.0.1.0/24")), FROM_ALB, True),
    ((rule("10.0.0.0/25"), rule("10.0.1.0/24")), FROM_ALB, False),
    # a CIDR rule and a prefix list add up, as do two prefix lists
    ((rule("10.0.1.0/24"), rule("pl-one")), FROM_ALB, True),
    ((rule("pl-both"),), FROM_ALB, True),
    ((rule("pl-mixed"),), FROM_ALB, True),
    ((rule("0.0.0.0/0"),), FROM_ALB, True),
    ((rule("::/0"),), FROM_ALB, False),  # IPv6 rules do not admit IPv4 traffic
    # IPv6 paths: CIDR6 rules and IPv6 prefix-list entries against the subnets' IPv6 CIDRs
    ((rule("::/0"),), FROM_ALB6, True),
    ((rule("0.0.0.0/0"),), FROM_ALB6, False),
    ((rule("2600:1f14:abc:100::/64"), rule("2600:1f14:abc:101::/64")), FROM_ALB6, True),
    ((rule("2600:1f14:abc:100::/64"),), FROM_ALB6, False),
    ((rule("pl-v6"),), FROM_ALB6, True),
    ((rule("pl-mixed"),), FROM_ALB6, False),  # its IPv6 entry holds one subnet of two
    # a reference to one of the ALB's groups covers on its own; another group does not
    ((rule("sg-alb"),), FROM_ALB, True),
    ((rule("sg-alb"),), FROM_ALB6, True),
    ((rule("sg-other"),), FROM_ALB, False),
    ((), FROM_ALB, False),
])
def test_union_of_rules(rules, peer, covered):
    assert cover(rules, TCP_NODEPORT, peer, PREFIX_LISTS).covered is covered


@pytest.mark.parametrize("protocol, lo, hi, need, admitted", [
    ("tcp", 30000, 32767, ("tcp", 30080), True),
    ("6", 30080, 30080, ("tcp", 30080), True),
    ("udp", 30080, 30080, ("tcp", 30080), False),
    ("udp", 31055, 31055, ("udp", 31055), True),
    ("17", 31000, 31100, ("udp", 31055), True),
    ("tcp", 31055, 31055, ("udp", 31055), False),
    ("-1", None, None, ("udp", 31055), True),
    ("-1", None, None, ("tcp", 1), True),
    ("icmp", -1, -1, ("tcp", 30080), False),
    ("tcp", 30081, 30090, ("tcp", 30080), False),
])
def test_protocol_and_port(protocol, lo, hi, need, admitted):
    assert admits(rule(protocol=protocol, lo=lo, hi=hi), need) is admitted


@pytest.mark.parametrize("target_group, expected", [
    ("HTTP", ("tcp",)), ("HTTPS", ("tcp",)), ("TCP", ("tcp",)), ("TLS", ("tcp",)),
    ("UDP", ("udp",)), ("TCP_UDP", ("tcp", "udp")),
])
def test_target_group_protocols(target_group, expected):
    assert traffic_protocols(target_group) == expected


@pytest.mark.parametrize("protocol", ["HTTP", "HTTPS", "TCP", ""])
def test_health_checks_are_tcp(protocol):
    assert health_check_protocol(protocol) == "tcp"


def test_every_need_must_be_admitted_and_missing_ones_are_named():
    needs = (("udp", 31055), ("tcp", 31056))
    only_tcp = (rule(protocol="tcp", lo=31055, hi=31056),)
    assert cover(only_tcp, needs, FROM_ALB, {}) == Verdict(False, ("sgr-tcp-31055-sg-alb",), (("udp", 31055),))
    both = (rule(protocol="udp", lo=31055, hi=31055), rule(protocol="tcp", lo=31056, hi=31056))
    assert cover(both, needs, FROM_ALB, {}).covered is True


def test_covered_by_names_the_rules_that_contributed():
    rules = (rule("10.0.0.0/24", rule_id="sgr-a"), rule("10.0.1.0/24", rule_id="sgr-b"),
             rule("192.168.0.0/24", rule_id="sgr-elsewhere"), rule("10.0.0.0/24", protocol="udp", rule_id="sgr-udp"))
    assert cover(rules, TCP_NODEPORT, FROM_ALB, {}).covered_by == ("sgr-a", "sgr-b")


@pytest.mark.parametrize("rules, peer, prefix_lists, complete, covered", [
    # a prefix list whose entries were not read might hold the missing subnet
    ((rule("10.0.0.0/24"), rule("pl-unread")), FROM_ALB, {}, True, None),
    # subnets not read: CIDR rules prove nothing either way, except the whole internet
    ((rule("10.0.0.0/24"),), Peer(frozenset({"sg-alb"}), None), {}, True, None),
    ((rule("0.0.0.0/0"),), Peer(frozenset({"sg-alb"}), None), {}, True, True),
    ((rule("sg-other"),), Peer(frozenset({"sg-alb"}), None), {}, True, False),  # no CIDR rule at all
    # a group whose rules were not read might admit it
    ((), FROM_ALB, {}, False, None),
    ((rule("sg-alb"),), FROM_ALB, {}, False, True),
])
def test_unknown_inputs_never_make_a_false_verdict(rules, peer, prefix_lists, complete, covered):
    assert cover(rules, TCP_NODEPORT, peer, prefix_lists, rules_complete=complete).covered is covered


def test_egress_to_a_target_address():
    to_target = Peer(groups=frozenset({"sg-node"}), networks=("10.0.0.12",))
    out = lambda peer, **kw: Rule("sg-alb", kw.get("protocol", "-1"), kw.get("lo"), kw.get("hi"),  # noqa: E731
                                  PeerKind.SECURITY_GROUP if peer.startswith("sg-") else PeerKind.CIDR, peer,
                                  rule_id=f"out-{peer}", egress=True)
    assert cover((out("0.0.0.0/0"),), TCP_NODEPORT, to_target, {}).covered is True
    assert cover((out("10.0.0.0/16", protocol="tcp", lo=30080, hi=30080),), TCP_NODEPORT, to_target, {}).covered
    assert cover((out("0.0.0.0/0", protocol="tcp", lo=443, hi=443),), TCP_NODEPORT, to_target, {}).covered is False
    assert cover((out("sg-node", protocol="tcp", lo=0, hi=65535),), TCP_NODEPORT, to_target, {}).covered is True
    unknown_address = Peer(groups=frozenset({"sg-node"}), networks=None)
    assert cover((out("10.0.0.0/16"),), TCP_NODEPORT, unknown_address, {}).covered is None
