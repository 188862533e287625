"""The monitor's clients read AWS's answers into exactly what botocore's own parser makes of them:
every read the monitor sends, against the demo world in moto, and answers moto does not write
(IPv6, prefix lists, empty elements, a repeated element, errors)."""

from __future__ import annotations

from xml.etree import ElementTree

import botocore.session
import pytest
from botocore.parsers import ResponseParserFactory

from monitor.aws.models import TrimmedLoader
from monitor.aws.parsing import PlannedParserFactory, planned
from monitor.aws.session import connect
from monitor.demo.cluster import create_controller_role


def models() -> botocore.session.Session:
    """A botocore session on the monitor's models (only the EC2 operations it sends)."""
    core = botocore.session.get_session()
    core.register_component("data_loader", TrimmedLoader())
    return core


def stock(service: str, region: str = "ap-northeast-1"):
    """A client with botocore's own parser on the monitor's models, timestamps kept as text as the
    monitor keeps them."""
    core = models()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    return core.create_client(service, region_name=region)


def without_metadata(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "ResponseMetadata"}


def reads(world):
    """(service, operation, parameters) of every read the monitor sends, on this world's ids."""
    lb = world.lb["shop"] if "shop" in world.lb else next(iter(world.lb.values()))
    tg = next(iter(world.tg.values()))
    role = create_controller_role(world, migration_policy=True).rsplit("/", 1)[1]
    return [
        ("ec2", "describe_security_group_rules", {}),
        ("ec2", "describe_security_groups", {}),
        ("ec2", "describe_instances", {}),
        ("ec2", "describe_network_interfaces", {}),
        ("ec2", "describe_network_acls", {}),
        ("ec2", "describe_subnets", {}),
        ("ec2", "describe_vpcs", {}),
        ("elbv2", "describe_load_balancers", {}),
        ("elbv2", "describe_target_groups", {}),
        ("elbv2", "describe_target_health", {"TargetGroupArn": tg}),
        ("elbv2", "describe_target_group_attributes", {"TargetGroupArn": tg}),
        ("elbv2", "describe_tags", {"ResourceArns": [lb, tg]}),
        # IAM shares ELB's protocol, so one parser reads both (preflight's read of the controller's role)
        ("iam", "list_role_policies", {"RoleName": role}),
        ("iam", "get_role_policy", {"RoleName": role, "PolicyName": "AWSLoadBalancerControllerIAMPolicy"}),
        ("iam", "list_attached_role_policies", {"RoleName": role}),
        ("elbv2", "describe_load_balancers", {}),
    ]


def test_every_read_the_monitor_sends_is_parsed_as_botocore_parses_it(world):
    planned = connect("ap-northeast-1")
    compared = 0
    for service, operation, parameters in reads(world):
        ours = getattr(getattr(planned, service), operation)(**parameters)
        theirs = getattr(stock(service), operation)(**parameters)
        assert without_metadata(ours) == without_metadata(theirs), operation
        assert ours["ResponseMetadata"]["RequestId"]
        compared += sum(len(v) for v in ours.values() if isinstance(v, list))
    assert compared > 50  # items were compared, not empty answers


def legible(value):
    """The parse with XML elements (what botocore leaves of an element that came twice) as text."""
    if isinstance(value, dict):
        return {k: legible(v) for k, v in value.items()}
    if isinstance(value, list):
        return [legible(v) for v in value]
    if isinstance(value, ElementTree.Element):
        return ("element", value.tag, value.text)
    return value


EC2_RULES = b"""<?xml version="1.0" encoding="UTF-8"?>
<DescribeSecurityGroupRulesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>req-1</requestId>
  <securityGroupRuleSet>
    <item><securityGroupRuleId>sgr-1</securityGroupRuleId><groupId>sg-node</groupId>
      <groupOwnerId>123456789012</groupOwnerId><isEgress>false</isEgress><ipProtocol>tcp</ipProtocol>
      <fromPort>8080</fromPort><toPort>8080</toPort><cidrIpv6>2600:1f14::/56</cidrIpv6>
      <description></description><tagSet/></item>
    <item><securityGroupRuleId>sgr-2</securityGroupRuleId><groupId>sg-alb</groupId>
      <isEgress>true</isEgress><ipProtocol>-1</ipProtocol><fromPort>-1</fromPort><toPort>-1</toPort>
      <prefixListId>pl-1</prefixListId>
      <tagSet><item><key>elbv2.k8s.aws/targetGroupBinding</key><value>shared</value></item>
        <item><key>empty</key><value/></item></tagSet></item>
    <item><securityGroupRuleId>sgr-3</securityGroupRuleId><groupId>sg-node</groupId>
      <isEgress>false</isEgress><ipProtocol>udp</ipProtocol><fromPort>53</fromPort><toPort>53</toPort>
      <referencedGroupInfo><groupId>sg-alb</groupId><userId>123456789012</userId>
        <vpcId>vpc-1</vpcId><peeringStatus>active</peeringStatus></referencedGroupInfo>
      <unknownField>ignored</unknownField></item>
    <item><securityGroupRuleId>sgr-4</securityGroupRuleId><securityGroupRuleId>sgr-5</securityGroupRuleId>
      <groupId>sg-twice</groupId></item>
  </securityGroupRuleSet>
  <nextToken>token-2</nextToken>
</DescribeSecurityGroupRulesResponse>"""

EC2_THROTTLED = (b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>RequestLimitExceeded</Code>'
                 b"<Message>Request limit exceeded.</Message></Error></Errors><RequestID>req-2</RequestID></Response>")

ELB_PAGE = b"""<DescribeLoadBalancersResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">
  <DescribeLoadBalancersResult>
    <LoadBalancers>
      <member><LoadBalancerArn>arn:aws:elasticloadbalancing:ap-northeast-1:123456789012:loadbalancer/app/a/1</LoadBalancerArn>
        <Scheme>internet-facing</Scheme><Type>application</Type><IpAddressType>dualstack</IpAddressType>
        <CreatedTime>2026-12-06T10:00:00.000Z</CreatedTime>
        <SecurityGroups><member>sg-1</member><member>sg-2</member></SecurityGroups>
        <AvailabilityZones><member><ZoneName>ap-northeast-1a</ZoneName><SubnetId>subnet-1</SubnetId>
          <LoadBalancerAddresses><member><IPv6Address>2600::1</IPv6Address></member></LoadBalancerAddresses>
        </member></AvailabilityZones>
        <State><Code>active</Code></State></member>
      <member><LoadBalancerArn>arn:b</LoadBalancerArn><SecurityGroups/><Type>network</Type></member>
    </LoadBalancers>
    <NextMarker>marker-2</NextMarker>
  </DescribeLoadBalancersResult>
  <ResponseMetadata><RequestId>req-3</RequestId></ResponseMetadata>
</DescribeLoadBalancersResponse>"""


@pytest.mark.parametrize("service, operation, body, status", [
    ("ec2", "DescribeSecurityGroupRules", EC2_RULES, 200),
    ("ec2", "DescribeSecurityGroupRules", EC2_THROTTLED, 503),
    ("elbv2", "DescribeLoadBalancers", ELB_PAGE, 200),
], ids=["rules", "throttled", "load-balancers"])
def test_answers_moto_does_not_write_are_parsed_as_botocore_parses_them(service, operation, body, status):
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).output_shape
    protocol = model.metadata["protocol"]
    parsed = []
    for factory in (ResponseParserFactory(), PlannedParserFactory()):
        factory.set_parser_defaults(timestamp_parser=str)
        answer = {"body": body, "headers": {"x-amzn-requestid": "h"}, "status_code": status}
        parsed.append(factory.create_parser(protocol).parse(answer, shape))
    assert legible(parsed[0]) == legible(parsed[1])
    if status == 200:
        assert "NextToken" in parsed[1] or "NextMarker" in parsed[1]  # the page token is read


def test_the_two_listings_of_every_check_are_read_by_plans():
    """The rule listing and the load balancer listing, read every check: botocore's walk was most
    of a steady check's CPU at 5,000 ALBs."""
    for service, operation in (("ec2", "DescribeSecurityGroupRules"), ("elbv2", "DescribeLoadBalancers")):
        model = models().get_service_model(service)
        assert planned(model.metadata["protocol"], model.operation_model(operation).output_shape), operation
