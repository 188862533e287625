"""DescribeSecurityGroupRules items, as AWS returns them, become rules with their direction kept."""

from __future__ import annotations

from monitor.aws.rules import to_rule
from monitor.core.model import PeerKind, Rule

DEFAULT_EGRESS = {"SecurityGroupRuleId": "sgr-0e1", "GroupId": "sg-alb", "GroupOwnerId": "123456789012",
                  "IsEgress": True, "IpProtocol": "-1", "FromPort": -1, "ToPort": -1, "CidrIpv4": "0.0.0.0/0",
                  "Tags": []}
EGRESS_TO_NODES = {"SecurityGroupRuleId": "sgr-0e2", "GroupId": "sg-alb", "IsEgress": True, "IpProtocol": "udp",
                   "FromPort": 31055, "ToPort": 31055,
                   "ReferencedGroupInfo": {"GroupId": "sg-node", "UserId": "123456789012"}}
INGRESS6 = {"SecurityGroupRuleId": "sgr-0i1", "GroupId": "sg-node", "IsEgress": False, "IpProtocol": "tcp",
            "FromPort": 8080, "ToPort": 8080, "CidrIpv6": "2600:1f14:abc:100::/64", "Description": "pods"}


def test_egress_rules_are_kept_as_egress():
    assert to_rule(DEFAULT_EGRESS) == Rule("sg-alb", "-1", None, None, PeerKind.CIDR, "0.0.0.0/0",
                                           rule_id="sgr-0e1", egress=True)
    assert to_rule(EGRESS_TO_NODES) == Rule("sg-alb", "udp", 31055, 31055, PeerKind.SECURITY_GROUP, "sg-node",
                                            rule_id="sgr-0e2", egress=True)


def test_ingress_rules_are_not_egress():
    rule = to_rule(INGRESS6)
    assert rule.egress is False and rule.peer_kind is PeerKind.CIDR6 and rule.description == "pods"
    assert rule.key != to_rule({**INGRESS6, "IsEgress": True}).key  # the direction is part of a rule's identity
