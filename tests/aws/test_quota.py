"""RULE_QUOTA_NEAR over HTTP against moto: groups filled with rules, the quota read from Service Quotas
(moto serves GetServiceQuota with AWS's default of 60, not GetAWSDefaultServiceQuota), or not readable."""

from __future__ import annotations

import json
from dataclasses import replace

import boto3
from botocore.stub import Stubber

from monitor import aws
from monitor.aws.discover import discover
from monitor.aws.quota import read_rule_quota
from monitor.aws.rules import RuleReader
from monitor.core.model import RuleQuota
from monitor.daemon.cycle import check_once
from tests.support.awsproxy import ERROR, THROTTLE
from tests.support.stubbed import stubbed

QUOTA_ACTIONS = ["GetServiceQuota", "GetAWSDefaultServiceQuota"]


def inbound(world, group: str) -> list[dict]:
    ec2 = world.clients()["ec2"]
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"]
    return [r for r in rules if not r["IsEgress"]]


def held(world, group: str, family: int, egress: bool = False) -> int:
    """The rules counted against the group's quota of one family, as AWS counts them: CIDR rules of
    that family and rules referencing a group or a prefix list."""
    ec2 = world.clients()["ec2"]
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"]
    other = "CidrIpv6" if family == 4 else "CidrIpv4"
    return sum(1 for r in rules if r["IsEgress"] is egress and not r.get(other))


def fill(world, group: str, family: int, upto: int, egress: bool = False) -> None:
    """Add CIDR rules of one family (on a port no path uses, from addresses no load balancer has)
    until the group holds `upto` rules against that family's quota."""
    before = held(world, group, family, egress)
    assert upto >= before
    if upto == before:
        return
    numbers = range(before, upto)  # above any CIDR an earlier fill added
    if family == 4:
        ranges = {"IpRanges": [{"CidrIp": f"198.18.{n}.0/24"} for n in numbers]}
    else:
        ranges = {"Ipv6Ranges": [{"CidrIpv6": f"2001:db8:{n:x}::/48"} for n in numbers]}
    ec2 = world.clients()["ec2"]
    write = ec2.authorize_security_group_egress if egress else ec2.authorize_security_group_ingress
    write(GroupId=group, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 9, "ToPort": 9, **ranges}])
    assert held(world, group, family, egress) == upto


def near(report) -> list:
    return [f for f in report.findings if f.code == "RULE_QUOTA_NEAR"]


def test_a_node_group_filled_to_56_inbound_rules_is_named(world, proxy):
    node = world.sg["cluster"]
    fill(world, node, 4, 56)
    report = check_once(aws.connect(None), world.cluster)
    (finding,) = near(report)
    assert finding.security_group == node and finding.severity.value == "warning"
    assert f"{node} holds 56 inbound IPv4 rules" in finding.message and "quota of 60:" in finding.message
    assert "not readable" not in finding.message
    assert report.complete and report.exit_code == 0  # a warning: the verdict is unchanged
    assert proxy.requests[("service-quotas", "GetServiceQuota")] == 1


def test_54_rules_give_no_finding(world, proxy):
    fill(world, world.sg["cluster"], 4, 54)
    assert not near(check_once(aws.connect(None), world.cluster))


def test_ipv6_rules_count_apart_from_ipv4(world, proxy):
    node = world.sg["cluster"]
    refs = held(world, node, 4)  # the demo's rules referencing groups count against both families
    fill(world, node, 4, refs + 26)
    fill(world, node, 6, refs + 26)
    assert len(inbound(world, node)) == refs + 52 >= 56  # near 60 all together, far from it in each family
    assert not near(check_once(aws.connect(None), world.cluster))
    ipv4 = [{"CidrIp": f"198.18.{n}.0/24"} for n in range(refs, refs + 26)]  # the IPv4 rules filled above
    world.clients()["ec2"].revoke_security_group_ingress(GroupId=node, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 9, "ToPort": 9, "IpRanges": ipv4}])
    fill(world, node, 6, 56)
    (finding,) = near(check_once(aws.connect(None), world.cluster))
    assert finding.security_group == node and "56 inbound IPv6 rules" in finding.message


def test_egress_is_counted_on_the_load_balancer_group(world, proxy):
    alb = world.sg["shop_alb"]
    fill(world, alb, 4, 57, egress=True)
    (finding,) = near(check_once(aws.connect(None), world.cluster))
    assert finding.security_group == alb and "57 outbound IPv4 rules" in finding.message
    assert finding.load_balancer == world.lb_name["shop"]


def test_a_group_whose_rules_were_not_read_gets_no_finding(world, proxy):
    fill(world, world.sg["cluster"], 4, 58)
    proxy.fail(["DescribeSecurityGroupRules"], kind=THROTTLE, service="ec2")
    report = check_once(aws.connect(None), world.cluster)
    assert not report.complete and not near(report)


def test_a_quota_not_readable_is_assumed_60_and_said(world, proxy):
    node = world.sg["cluster"]
    fill(world, node, 4, 56)
    proxy.fail(QUOTA_ACTIONS, kind=ERROR, code="AccessDeniedException", status=400, service="service-quotas")
    report = check_once(aws.connect(None), world.cluster)
    (finding,) = near(report)
    assert finding.security_group == node and "quota not readable, assumed 60" in finding.message
    # Not a failed read of the check: only this message depends on it.
    assert report.complete and report.exit_code == 0
    assert proxy.injected[("service-quotas", "GetServiceQuota")] == 1
    assert proxy.injected[("service-quotas", "GetAWSDefaultServiceQuota")] == 1


def test_a_throttled_quota_read_is_assumed_60(world, proxy):
    fill(world, world.sg["cluster"], 4, 57)
    proxy.fail(QUOTA_ACTIONS, kind=THROTTLE, service="service-quotas")
    (finding,) = near(check_once(aws.connect(None), world.cluster))
    assert "quota not readable, assumed 60" in finding.message


def test_an_applied_quota_is_used(world, proxy):
    """An account whose quota was raised to 100: 56 rules are far from it, 96 near it."""
    def raised(payload: bytes) -> bytes:
        answer = json.loads(payload)
        answer["Quota"]["Value"] = 100.0
        return json.dumps(answer).encode()

    proxy.rewrite("GetServiceQuota", raised)
    fill(world, world.sg["cluster"], 4, 56)
    assert not near(check_once(aws.connect(None), world.cluster))


def test_the_quota_is_read_once_per_reader(world, proxy):
    clients = aws.connect(None)
    topology = discover(clients, world.cluster)
    reader = RuleReader(clients)
    first = reader.read(topology)
    again = reader.read(topology)
    assert first.rule_quota == again.rule_quota == RuleQuota(60, read=True)
    assert proxy.requests[("service-quotas", "GetServiceQuota")] == 1


def _quota_answer(value: float) -> dict:
    return {"Quota": {"ServiceCode": "vpc", "QuotaCode": "L-0EA8095F", "Value": value}}


def test_where_no_quota_is_applied_the_default_is_read():
    """GetServiceQuota answers NoSuchResourceException for a quota with no applied value: AWS's
    default for the account is read instead (moto does not serve GetAWSDefaultServiceQuota)."""
    with stubbed() as (clients, _):
        quotas = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                               region_name="us-east-1").client("service-quotas")
        with Stubber(quotas) as stub:
            expected = {"ServiceCode": "vpc", "QuotaCode": "L-0EA8095F"}
            stub.add_client_error("get_service_quota", "NoSuchResourceException", expected_params=expected)
            stub.add_response("get_aws_default_service_quota", _quota_answer(60.0), expected)
            assert read_rule_quota(_with(clients, quotas)) == RuleQuota(60, read=True)
            stub.add_response("get_service_quota", _quota_answer(200.0), expected)
            assert read_rule_quota(_with(clients, quotas)) == RuleQuota(200, read=True)
            stub.add_client_error("get_service_quota", "AccessDeniedException", expected_params=expected)
            stub.add_client_error("get_aws_default_service_quota", "AccessDeniedException", expected_params=expected)
            assert read_rule_quota(_with(clients, quotas)) == RuleQuota(60, read=False)
            stub.add_response("get_service_quota", {"Quota": {"QuotaCode": "L-0EA8095F"}}, expected)  # no value
            stub.add_client_error("get_aws_default_service_quota", "ServiceException", expected_params=expected)
            assert read_rule_quota(_with(clients, quotas)) == RuleQuota(60, read=False)
    assert read_rule_quota(clients) == RuleQuota(60, read=False)  # no Service Quotas client at all


def _with(clients, quotas):
    return replace(clients, servicequotas=quotas)
