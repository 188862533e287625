"""The demo account's CloudTrail: an EventBridge rule with the monitor's event pattern sends to an SQS
queue the daemon reads, and the story puts on the default bus the management events its API calls
make on AWS (who called, when, what the call removed or created)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import boto3

from monitor.core.events import DETAIL_TYPE, EVENT_NAMES
from monitor.demo.world import ACCOUNT, World

QUEUE = "alb-sg-monitor-demo-events"
HUMAN_ROLE = (f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/ap-northeast-1/"
              "AWSReservedSSO_PlatformAdmin_3f2a9c1d0b7e6a54")


def pattern() -> dict[str, Any]:
    """The same pattern as deploy/events/event-pattern.json, from the list the parser reads."""
    return {"source": sorted(EVENT_NAMES), "detail-type": [DETAIL_TYPE],
            "detail": {"eventSource": [s.removeprefix("aws.") + ".amazonaws.com" for s in sorted(EVENT_NAMES)],
                       "eventName": sorted(n for names in EVENT_NAMES.values() for n in names)}}


def create_queue(world: World) -> str:
    """The queue and the rule that fills it; returns the queue URL."""
    sqs, events = _client(world, "sqs"), _client(world, "events")
    url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=QUEUE, EventPattern=json.dumps(pattern()), State="ENABLED")
    events.put_targets(Rule=QUEUE, Targets=[{"Id": "monitor", "Arn": arn}])
    return url


def identity(role_arn: str, session: str) -> dict[str, Any]:
    """userIdentity of a call made with a role's temporary credentials (IRSA, SSO)."""
    name = role_arn.rsplit("/", 1)[-1]
    return {"type": "AssumedRole", "principalId": f"AROADEMO:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/{session}", "accountId": ACCOUNT,
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROADEMO", "arn": role_arn,
                                                 "accountId": ACCOUNT, "userName": name}}}


def _rule_item(rule: dict[str, Any]) -> dict[str, Any]:
    item = {"groupId": rule["GroupId"], "securityGroupRuleId": rule["SecurityGroupRuleId"], "isEgress": False,
            "ipProtocol": rule["IpProtocol"], "fromPort": rule["FromPort"], "toPort": rule["ToPort"]}
    if rule.get("ReferencedGroupInfo", {}).get("GroupId"):
        item["referencedGroupInfo"] = {"groupId": rule["ReferencedGroupInfo"]["GroupId"]}
    elif rule.get("CidrIpv4"):
        item["cidrIpv4"] = rule["CidrIpv4"]
    return item


def put_call(world: World, name: str, who: dict[str, Any], rule: dict[str, Any]) -> None:
    """The CloudTrail event of a revoke or authorize of `rule` (a DescribeSecurityGroupRules item)."""
    item = _rule_item(rule)
    if name.startswith("Revoke"):
        request = {"groupId": rule["GroupId"],
                   "securityGroupRuleIds": {"items": [{"securityGroupRuleId": rule["SecurityGroupRuleId"]}]}}
        response = {"_return": True, "revokedSecurityGroupRuleSet": {"items": [item]}}
    else:
        request = {"groupId": rule["GroupId"], "ipPermissions": {"items": [{
            "ipProtocol": rule["IpProtocol"], "fromPort": rule["FromPort"], "toPort": rule["ToPort"],
            "groups": {"items": [{"groupId": item.get("referencedGroupInfo", {}).get("groupId")}]}}]}}
        response = {"_return": True, "securityGroupRuleSet": {"items": [item]}}
    _put(world, name, "ec2.amazonaws.com", who, request, response)


def put_created(world: World, arn: str) -> None:
    """The CloudTrail event of a CreateLoadBalancer that made the load balancer `arn`, as the v2
    controller's role calls it."""
    lb = _client(world, "elbv2").describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0]
    request = {"name": lb["LoadBalancerName"], "type": lb["Type"], "scheme": lb.get("Scheme"),
               "securityGroups": lb.get("SecurityGroups", []),
               "subnets": [zone["SubnetId"] for zone in lb.get("AvailabilityZones", ())]}
    response = {"loadBalancers": [{"loadBalancerArn": arn, "loadBalancerName": lb["LoadBalancerName"],
                                   "dNSName": lb.get("DNSName"), "type": lb["Type"]}]}
    _put(world, "CreateLoadBalancer", "elasticloadbalancing.amazonaws.com",
         identity(f"arn:aws:iam::{ACCOUNT}:role/aws-load-balancer-controller", "1733043600123456789"), request, response)


def _put(world: World, name: str, event_source: str, who: dict[str, Any], request: dict, response: dict) -> None:
    when = datetime.fromtimestamp(int(time.time()), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    detail = {"eventVersion": "1.09", "userIdentity": who, "eventTime": when, "eventSource": event_source,
              "eventName": name, "awsRegion": world.region, "sourceIPAddress": "10.20.1.17",
              "requestParameters": request, "responseElements": response, "eventID": str(uuid.uuid4()),
              "readOnly": False, "eventType": "AwsApiCall", "managementEvent": True}
    source = "aws." + event_source.split(".")[0]
    _client(world, "events").put_events(Entries=[{"Source": source, "DetailType": DETAIL_TYPE,
                                                   "Detail": json.dumps(detail)}])


def _client(world: World, service: str) -> Any:
    return boto3.client(service, region_name=world.region, endpoint_url=world.endpoint,
                        aws_access_key_id="demo", aws_secret_access_key="demo")


def revoke(world: World, key: str, role_arn: str) -> None:
    """The v2 controller revokes a rule by its id: the call, and its CloudTrail event."""
    _revoke(world, key, identity(role_arn, "1733043600123456789"))


def revoke_by_hand(world: World, key: str) -> None:
    """A person on the platform team's SSO role revokes a rule from the console: the call, and its event."""
    _revoke(world, key, identity(HUMAN_ROLE, "alice@example.com"))


def _revoke(world: World, key: str, who: dict[str, Any]) -> None:
    from monitor.demo import world as w

    w.revoke(world, key)
    put_call(world, "RevokeSecurityGroupIngress", who, world.revoked[key])


def restore_by_hand(world: World, key: str) -> None:
    """A person on the platform team's SSO role authorizes the rule again: the call, and its event."""
    from monitor.demo import world as w

    w.restore(world, key)
    rule = world.clients()["ec2"].describe_security_group_rules(
        SecurityGroupRuleIds=[world.rule[key]])["SecurityGroupRules"][0]
    put_call(world, "AuthorizeSecurityGroupIngress", identity(HUMAN_ROLE, "alice@example.com"), rule)
