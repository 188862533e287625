"""CloudTrail management events, as EventBridge delivers them, read into what they touched, who made
them, and the outage windows they reveal: table-driven over literal CloudTrail-shaped messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.core.event_match import (
    ActorKind,
    KnownRoles,
    OpenRevokes,
    Watched,
    actor_kind,
    outage_windows,
    record,
    touches,
)
from monitor.core.events import (
    DETAIL_TYPE,
    EVENT_NAMES,
    MAX_MESSAGE_BYTES,
    ApiEvent,
    Effect,
    Principal,
    Rejected,
    Rejection,
    TouchedRule,
    parse_event,
    parse_message,
)
from monitor.core.memory import RuleTuple

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "111122223333"
V2_ROLE = f"arn:aws:iam::{ACCOUNT}:role/eks/prod-eks/aws-load-balancer-controller"
V1_ROLE = f"arn:aws:iam::{ACCOUNT}:role/alb-ingress-controller"
MONITOR_ROLE = f"arn:aws:iam::{ACCOUNT}:role/alb-sg-monitor-prod-eks"
SSO_ROLE = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/ap-northeast-1/AWSReservedSSO_Admin_0123456789abcdef"
ROLES = KnownRoles(v2_controller=frozenset({V2_ROLE}), v1_controller=frozenset({V1_ROLE}),
                   monitor=frozenset({MONITOR_ROLE}))
NODE_SG, ALB_SG, BACKEND_SG = "sg-0node", "sg-0alb", "sg-0backend"
LB_ARN = f"arn:aws:elasticloadbalancing:ap-northeast-1:{ACCOUNT}:loadbalancer/app/k8s-shop-web-0123456789/50dc6c495c0c9188"
TG_ARN = f"arn:aws:elasticloadbalancing:ap-northeast-1:{ACCOUNT}:targetgroup/k8s-shop-web-0123456789/73e2d6bc24d8a067"


def assumed(role_arn: str, session: str) -> dict:
    """userIdentity of a call made with a role's temporary credentials (IRSA, SSO, …)."""
    name = role_arn.rsplit("/", 1)[-1]
    return {"type": "AssumedRole", "principalId": f"AROAEXAMPLE:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/{session}", "accountId": ACCOUNT,
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "arn": role_arn,
                                                 "accountId": ACCOUNT, "userName": name},
                               "attributes": {"creationDate": "2026-12-01T09:00:00Z", "mfaAuthenticated": "false"}}}


V2 = assumed(V2_ROLE, "1733043600123456789")
HUMAN = assumed(SSO_ROLE, "alice@example.com")


def message(name: str, request: dict | None, response: dict | None = None, *, identity: dict = V2,
            time: str = "2026-12-01T10:00:00Z", event_id: str = "3b1c4a1e-0000-4000-8000-000000000001",
            source: str | None = None, account: bool = True, **detail) -> dict:
    source = source or ("aws.ec2" if name in EVENT_NAMES["aws.ec2"] else "aws.elasticloadbalancing")
    envelope = {"version": "0", "id": "6f9a7b0e-1111-4222-8333-444455556666", "detail-type": DETAIL_TYPE,
                "source": source, "time": time, "region": "ap-northeast-1", "resources": [],
                "detail": {"eventVersion": "1.09", "userIdentity": identity, "eventTime": time,
                           "eventSource": source.removeprefix("aws.") + ".amazonaws.com", "eventName": name,
                           "awsRegion": "ap-northeast-1", "sourceIPAddress": "10.0.1.23",
                           "userAgent": "aws-sdk-go-v2/1.30.3", "requestParameters": request,
                           "responseElements": response, "eventID": event_id, "readOnly": False,
                           "eventType": "AwsApiCall", "managementEvent": True, **detail}}
    if account:
        envelope["account"] = ACCOUNT
    return envelope


def permissions(*items: dict) -> dict:
    return {"items": list(items)}


def sg_permission(protocol: str, low: int, high: int, *groups: str) -> dict:
    return {"ipProtocol": protocol, "fromPort": low, "toPort": high,
            "groups": {"items": [{"groupId": g} for g in groups]}, "ipRanges": {}, "ipv6Ranges": {},
            "prefixListIds": {}}


def node_rule(low: int, high: int, peer: str = BACKEND_SG, protocol: str = "tcp") -> RuleTuple:
    return RuleTuple(NODE_SG, protocol, low, high, "sg", peer)


REVOKE_BY_PERMISSION = message(
    "RevokeSecurityGroupIngress",
    {"groupId": NODE_SG, "ipPermissions": permissions(sg_permission("tcp", 30000, 30100, BACKEND_SG))},
    {"requestId": "r-1", "_return": True})
REVOKE_BY_ID = message(
    "RevokeSecurityGroupIngress",
    {"groupId": NODE_SG, "securityGroupRuleIds": {"items": [{"securityGroupRuleId": "sgr-0aaa"}]}},
    {"requestId": "r-2", "_return": True,
     "revokedSecurityGroupRuleSet": {"items": [
         {"groupId": NODE_SG, "securityGroupRuleId": "sgr-0aaa", "isEgress": False, "ipProtocol": "tcp",
          "fromPort": 30000, "toPort": 30100, "referencedGroupId": BACKEND_SG}]}})
AUTHORIZE = message(
    "AuthorizeSecurityGroupIngress",
    {"groupId": NODE_SG, "ipPermissions": permissions(
        {"ipProtocol": "6", "fromPort": 8080, "toPort": 8080, "groups": {},
         "ipRanges": {"items": [{"cidrIp": "10.0.0.0/24"}, {"cidrIp": "10.0.1.0/24", "description": "alb b"}]},
         "ipv6Ranges": {"items": [{"cidrIpv6": "2600:1f18::/56"}]}, "prefixListIds": {}})},
    {"requestId": "r-3", "_return": True,
     "securityGroupRuleSet": {"items": [
         {"groupOwnerId": ACCOUNT, "groupId": NODE_SG, "securityGroupRuleId": "sgr-0c1", "isEgress": False,
          "ipProtocol": "tcp", "fromPort": 8080, "toPort": 8080, "cidrIpv4": "10.0.0.0/24"},
         {"groupOwnerId": ACCOUNT, "groupId": NODE_SG, "securityGroupRuleId": "sgr-0c2", "isEgress": False,
          "ipProtocol": "tcp", "fromPort": 8080, "toPort": 8080, "cidrIpv4": "10.0.1.0/24"},
         {"groupOwnerId": ACCOUNT, "groupId": NODE_SG, "securityGroupRuleId": "sgr-0c3", "isEgress": False,
          "ipProtocol": "tcp", "fromPort": 8080, "toPort": 8080, "cidrIpv6": "2600:1f18::/56"}]}})

TOUCHED = {
    "revoke ingress by permission: one rule per peer, from the request": (
        REVOKE_BY_PERMISSION, Effect.REVOKE, {NODE_SG},
        {TouchedRule("ingress", node_rule(30000, 30100))}, {}),
    "revoke ingress by rule id: the response names the rule": (
        REVOKE_BY_ID, Effect.REVOKE, {NODE_SG},
        {TouchedRule("ingress", node_rule(30000, 30100), "sgr-0aaa")}, {}),
    "revoke by rule id without a response: the id alone": (
        message("RevokeSecurityGroupIngress",
                {"groupId": NODE_SG, "securityGroupRuleIds": {"items": ["sgr-0bbb"]}}, None),
        Effect.REVOKE, {NODE_SG}, {TouchedRule("ingress", None, "sgr-0bbb")}, {}),
    "revoke of a rule that was not there (default VPC): nothing removed": (
        message("RevokeSecurityGroupIngress",
                {"groupId": NODE_SG, "ipPermissions": permissions(sg_permission("tcp", 30000, 30100, BACKEND_SG))},
                {"_return": True, "unknownIpPermissionSet": permissions(sg_permission("tcp", 30000, 30100, BACKEND_SG))}),
        Effect.REVOKE, {NODE_SG}, set(), {}),
    "revoke egress of all traffic on the ALB's group": (
        message("RevokeSecurityGroupEgress", {"groupId": ALB_SG, "ipPermissions": permissions(
            {"ipProtocol": "-1", "groups": {}, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
             "ipv6Ranges": {}, "prefixListIds": {}})}, {"_return": True}),
        Effect.REVOKE, {ALB_SG}, {TouchedRule("egress", RuleTuple(ALB_SG, "-1", None, None, "cidr", "0.0.0.0/0"))}, {}),
    "authorize: rule ids and tuples from the response, protocol 6 read as tcp": (
        AUTHORIZE, Effect.GRANT, {NODE_SG},
        {TouchedRule("ingress", RuleTuple(NODE_SG, "tcp", 8080, 8080, "cidr", "10.0.0.0/24"), "sgr-0c1"),
         TouchedRule("ingress", RuleTuple(NODE_SG, "tcp", 8080, 8080, "cidr", "10.0.1.0/24"), "sgr-0c2"),
         TouchedRule("ingress", RuleTuple(NODE_SG, "tcp", 8080, 8080, "cidr6", "2600:1f18::/56"), "sgr-0c3")}, {}),
    "authorize egress to a prefix list, from the request only": (
        message("AuthorizeSecurityGroupEgress", {"groupId": ALB_SG, "ipPermissions": permissions(
            {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "groups": {}, "ipRanges": {},
             "prefixListIds": {"items": [{"prefixListId": "pl-0abc"}]}})}, None),
        Effect.GRANT, {ALB_SG}, {TouchedRule("egress", RuleTuple(ALB_SG, "tcp", 443, 443, "prefix_list", "pl-0abc"))}, {}),
    "modify security group rules: PascalCase request, direction unknown": (
        message("ModifySecurityGroupRules", {"ModifySecurityGroupRulesRequest": {
            "GroupId": NODE_SG, "SecurityGroupRule": {"SecurityGroupRuleId": "sgr-0aaa", "SecurityGroupRule": {
                "IpProtocol": "tcp", "FromPort": "30000", "ToPort": "30200", "ReferencedGroupId": BACKEND_SG,
                "Description": "elbv2.k8s.aws/targetGroupBinding=shared"}}}},
            {"ModifySecurityGroupRulesResponse": {"return": True}}),
        Effect.CHANGE, {NODE_SG}, {TouchedRule("unknown", node_rule(30000, 30200), "sgr-0aaa")}, {}),
    "delete security group": (
        message("DeleteSecurityGroup", {"groupId": ALB_SG}, {"_return": True, "groupId": ALB_SG}),
        Effect.REVOKE, {ALB_SG}, set(), {}),
    "an ENI's groups replaced": (
        message("ModifyNetworkInterfaceAttribute", {"networkInterfaceId": "eni-0abc", "groupSet": {
            "items": [{"groupId": "sg-0other"}]}}, None),
        Effect.CHANGE, {"sg-0other"}, set(), {"network_interfaces": ("eni-0abc",)}),
    "an ENI attribute that is not its groups": (
        message("ModifyNetworkInterfaceAttribute", {"networkInterfaceId": "eni-0abc",
                                                    "sourceDestCheck": {"value": False}}, None),
        Effect.CHANGE, set(), set(), {"network_interfaces": ("eni-0abc",)}),
    "an ALB's groups replaced": (
        message("SetSecurityGroups", {"loadBalancerArn": LB_ARN, "securityGroups": [ALB_SG, "sg-0user"]},
                {"securityGroupIds": [ALB_SG, "sg-0user"]}),
        Effect.CHANGE, {ALB_SG, "sg-0user"}, set(), {"load_balancers": (LB_ARN,)}),
    "health-check port changed": (
        message("ModifyTargetGroup", {"targetGroupArn": TG_ARN, "healthCheckPort": "8081"}, {"targetGroups": []}),
        Effect.CHANGE, set(), set(), {"target_groups": (TG_ARN,)}),
    "load balancer deleted": (
        message("DeleteLoadBalancer", {"loadBalancerArn": LB_ARN}, None),
        Effect.REVOKE, set(), set(), {"load_balancers": (LB_ARN,)}),
    "targets registered": (
        message("RegisterTargets", {"targetGroupArn": TG_ARN, "targets": [{"id": "i-0a", "port": 30080},
                                                                          {"id": "10.0.1.12", "port": 8080}]}, None),
        Effect.CHANGE, set(), set(), {"target_groups": (TG_ARN,), "targets": ("i-0a", "10.0.1.12")}),
    "targets deregistered": (
        message("DeregisterTargets", {"targetGroupArn": TG_ARN, "targets": [{"id": "i-0a"}]}, None),
        Effect.REVOKE, set(), set(), {"target_groups": (TG_ARN,), "targets": ("i-0a",)}),
}


@pytest.mark.parametrize("case", TOUCHED)
def test_an_event_says_what_it_touched(case):
    envelope, effect, groups, rules, other = TOUCHED[case]
    event = parse_message(json.dumps(envelope))
    assert isinstance(event, ApiEvent), event
    assert event.effect is effect
    assert set(event.security_groups) == groups
    assert set(event.rules) == rules
    for name, value in other.items():
        assert getattr(event, name) == value
    assert event.event_time == 1796119200.0  # 2026-12-01T10:00:00Z
    assert (event.account, event.region) == (ACCOUNT, "ap-northeast-1")


def test_an_event_without_the_account_field_is_read_the_same():
    """Some emulators deliver events without `account`; real EventBridge always sends it."""
    event = parse_event(message("RevokeSecurityGroupIngress", REVOKE_BY_ID["detail"]["requestParameters"],
                                REVOKE_BY_ID["detail"]["responseElements"], account=False))
    assert isinstance(event, ApiEvent) and event.account is None
    assert event.rules == (TouchedRule("ingress", node_rule(30000, 30100), "sgr-0aaa"),)


REJECTED = {
    "not JSON": ("{'detail-type': ", Rejection.MALFORMED),
    "JSON, not an object": ("[1, 2]", Rejection.MALFORMED),
    "absurdly deep": ("[" * 100_000 + "]" * 100_000, Rejection.MALFORMED),
    "no detail": (json.dumps({"detail-type": DETAIL_TYPE, "source": "aws.ec2"}), Rejection.MALFORMED),
    "no event id": (json.dumps(message("DeleteSecurityGroup", {"groupId": ALB_SG}, event_id="")), Rejection.MALFORMED),
    "eventTime not a time": (json.dumps(message("DeleteSecurityGroup", {"groupId": ALB_SG}, time="yesterday")),
                             Rejection.MALFORMED),
    "eventTime without a zone": (json.dumps(message("DeleteSecurityGroup", {"groupId": ALB_SG},
                                                    time="2026-12-01T10:00:00")), Rejection.MALFORMED),
    "oversized": (json.dumps(message("DeleteSecurityGroup", {"groupId": ALB_SG}, padding="x" * MAX_MESSAGE_BYTES)),
                  Rejection.OVERSIZED),
    "another detail-type": (json.dumps({**message("DeleteSecurityGroup", {"groupId": ALB_SG}),
                                        "detail-type": "EC2 Instance State-change Notification"}),
                            Rejection.NOT_CLOUDTRAIL),
    "an API call we do not follow": (json.dumps(message("RunInstances", {}, source="aws.ec2")), Rejection.UNSUPPORTED),
    "an ELB name under the EC2 source": (json.dumps(message("SetSecurityGroups", {}, source="aws.ec2")),
                                         Rejection.UNSUPPORTED),
    "a failed call": (json.dumps(message("RevokeSecurityGroupIngress", {"groupId": NODE_SG}, None,
                                         errorCode="Client.UnauthorizedOperation",
                                         errorMessage="You are not authorized to perform this operation.")),
                      Rejection.FAILED_CALL),
}


@pytest.mark.parametrize("case", REJECTED)
def test_a_message_that_is_not_a_usable_event_is_a_classified_rejection(case):
    body, reason = REJECTED[case]
    result = parse_message(body)
    assert isinstance(result, Rejected) and result.reason is reason, result


def test_a_failed_call_keeps_its_id_and_name_for_the_count():
    result = parse_message(REJECTED["a failed call"][0])
    assert (result.event_name, result.detail) == ("RevokeSecurityGroupIngress", "Client.UnauthorizedOperation")
    assert result.event_id


def test_garbage_in_every_field_never_raises():
    """Wrong types anywhere below the envelope are tolerated: the event keeps what could be read."""
    hostile = message("RevokeSecurityGroupIngress", {"groupId": 7, "ipPermissions": {"items": [
        "x", {"ipProtocol": None, "groups": {"items": [None, {"groupId": ["sg"]}]}, "ipRanges": 5},
        {"ipProtocol": "tcp", "fromPort": True, "toPort": "many", "groups": {"items": [{"groupId": BACKEND_SG}]}}]},
        "securityGroupRuleIds": {"items": [3, {"securityGroupRuleId": None}]}},
        {"revokedSecurityGroupRuleSet": "none"}, identity={"type": "AWSService", "invokedBy": "ec2.amazonaws.com"})
    event = parse_event(hostile)
    assert isinstance(event, ApiEvent)
    assert event.rules == () and event.security_groups == ()
    assert actor_kind(event.principal, ROLES) is ActorKind.OTHER


ACTORS = {
    "the v2 controller's IRSA session": (V2, ActorKind.V2_CONTROLLER),
    "the v1 controller's role": (assumed(V1_ROLE, "i-0node"), ActorKind.V1_CONTROLLER),
    "this monitor": (assumed(MONITOR_ROLE, "botocore-session-1733043600"), ActorKind.MONITOR),
    "a human through SSO": (HUMAN, ActorKind.OTHER),
    "an IAM user": ({"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/terraform"}, ActorKind.OTHER),
    "a role with the controller's name in another account": (
        assumed("arn:aws:iam::444455556666:role/eks/prod-eks/aws-load-balancer-controller", "s"), ActorKind.OTHER),
    "a session without its issuer: matched by role name": (
        {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/aws-load-balancer-controller/s"},
        ActorKind.V2_CONTROLLER),
    "a role whose name only starts like the controller's": (
        assumed(f"arn:aws:iam::{ACCOUNT}:role/aws-load-balancer-controller-old", "s"), ActorKind.OTHER),
}


@pytest.mark.parametrize("case", ACTORS)
def test_the_caller_is_classified_from_its_role(case):
    identity, kind = ACTORS[case]
    event = parse_event(message("RevokeSecurityGroupIngress", {"groupId": NODE_SG}, identity=identity))
    assert actor_kind(event.principal, ROLES) is kind


def test_a_role_shared_by_both_controllers_counts_as_v2():
    shared = KnownRoles(v2_controller=frozenset({V1_ROLE}), v1_controller=frozenset({V1_ROLE}))
    assert actor_kind(Principal(arn="", role_arn=V1_ROLE), shared) is ActorKind.V2_CONTROLLER


WATCHED = Watched(security_groups=frozenset({NODE_SG, ALB_SG}), network_interfaces=frozenset({"eni-0abc"}),
                  load_balancers=frozenset({LB_ARN}), target_groups=frozenset({TG_ARN}))
MATCHES = {
    "a rule on a watched group": (REVOKE_BY_PERMISSION, True),
    "a rule elsewhere whose peer is a watched group": (
        message("RevokeSecurityGroupIngress", {"groupId": "sg-0db", "ipPermissions": permissions(
            sg_permission("tcp", 5432, 5432, NODE_SG))}), True),
    "a rule on an unwatched group": (
        message("RevokeSecurityGroupIngress", {"groupId": "sg-0db", "ipPermissions": permissions(
            sg_permission("tcp", 5432, 5432, "sg-0app"))}), False),
    "a watched ENI": (TOUCHED["an ENI attribute that is not its groups"][0], True),
    "a watched load balancer": (TOUCHED["load balancer deleted"][0], True),
    "a watched target group": (TOUCHED["targets registered"][0], True),
    "another target group": (message("ModifyTargetGroup", {"targetGroupArn": TG_ARN + "x"}), False),
}


@pytest.mark.parametrize("case", MATCHES)
def test_an_event_matches_what_is_watched(case):
    envelope, expected = MATCHES[case]
    assert touches(parse_event(envelope), WATCHED) is expected


# --- outage windows -------------------------------------------------------------------------------

def change(name: str, time: str, event_id: str, *rules: RuleTuple, identity: dict = V2) -> ApiEvent:
    items = [sg_permission(r.protocol, r.from_port, r.to_port, r.peer) for r in rules]
    event = parse_event(message(name, {"groupId": NODE_SG, "ipPermissions": {"items": items}},
                                identity=identity, time=time, event_id=event_id))
    assert isinstance(event, ApiEvent)
    return event


def revoke(time, event_id, *rules):
    return change("RevokeSecurityGroupIngress", time, event_id, *rules)


def grant(time, event_id, *rules):
    return change("AuthorizeSecurityGroupIngress", time, event_id, *rules)


OLD, WIDER = node_rule(30000, 30100), node_rule(30000, 30200)
GAPS = {
    "revoke, then the same tuple granted 7 s later": (
        [revoke("2026-12-01T10:00:00Z", "a", OLD), grant("2026-12-01T10:00:07Z", "b", OLD)], [7.0]),
    "v2 before 2.12: revoke the old range, grant the merged wider one": (
        [revoke("2026-12-01T10:00:00Z", "a", OLD), grant("2026-12-01T10:00:02Z", "b", WIDER)], [2.0]),
    "delivered out of order": (
        [grant("2026-12-01T10:00:03Z", "b", OLD), revoke("2026-12-01T10:00:00Z", "a", OLD)], [3.0]),
    "delivered twice": (
        [revoke("2026-12-01T10:00:00Z", "a", OLD), revoke("2026-12-01T10:00:00Z", "a", OLD),
         grant("2026-12-01T10:00:04Z", "b", OLD), grant("2026-12-01T10:00:04Z", "b", OLD)], [4.0]),
    "v2 since 2.12: grant the wider range first, then revoke the old one": (
        [grant("2026-12-01T10:00:00Z", "b", WIDER), revoke("2026-12-01T10:00:01Z", "a", OLD)], []),
    "a grant narrower than what was revoked closes nothing": (
        [revoke("2026-12-01T10:00:00Z", "a", WIDER), grant("2026-12-01T10:00:02Z", "b", OLD)], []),
    "a grant from another source closes nothing": (
        [revoke("2026-12-01T10:00:00Z", "a", OLD), grant("2026-12-01T10:00:02Z", "b", node_rule(30000, 30100, ALB_SG))], []),
    "revoke and grant in the same second: no order to trust": (
        [revoke("2026-12-01T10:00:00Z", "a", OLD), grant("2026-12-01T10:00:00Z", "b", OLD)], []),
    "revoked, never granted": ([revoke("2026-12-01T10:00:00Z", "a", OLD)], []),
    "the earlier grant was itself revoked: the later revoke opens a window": (
        [grant("2026-12-01T10:00:00Z", "g", WIDER), revoke("2026-12-01T10:00:01Z", "r1", WIDER),
         revoke("2026-12-01T10:00:02Z", "r2", OLD), grant("2026-12-01T10:00:09Z", "g2", OLD)], [7.0]),
}


@pytest.mark.parametrize("case", GAPS)
def test_a_revoke_then_a_covering_grant_is_an_outage_window_of_measured_length(case):
    events, lengths = GAPS[case]
    windows = outage_windows(events)
    assert sorted(w.seconds for w in windows) == sorted(lengths)
    for window in windows:
        assert window.revoked.effect is Effect.REVOKE and window.granted.effect is Effect.GRANT


def test_the_window_names_both_calls_and_who_made_them():
    (window,) = outage_windows([revoke("2026-12-01T10:00:00Z", "a", OLD), grant("2026-12-01T10:00:07Z", "b", WIDER)])
    assert (window.rule, window.direction) == (OLD, "ingress")
    assert (window.revoked.event_id, window.granted.event_id) == ("a", "b")
    assert actor_kind(window.revoked.principal, ROLES) is ActorKind.V2_CONTROLLER


def test_forgetting_old_revokes_bounds_what_is_kept():
    state, _ = record(OpenRevokes(), revoke("2026-12-01T10:00:00Z", "a", OLD))
    assert len(state.revoked) == 1
    state = state.forget_before(1796119200.0 + 600)
    assert state.revoked == ()
    state, closed = record(state, grant("2026-12-01T10:20:00Z", "b", OLD))
    assert closed == ()


def test_the_shipped_event_pattern_lists_exactly_the_events_the_parser_reads():
    pattern = json.loads((ROOT / "deploy" / "events" / "event-pattern.json").read_text())
    assert pattern["detail-type"] == [DETAIL_TYPE]
    assert sorted(pattern["source"]) == sorted(EVENT_NAMES)
    assert sorted(pattern["detail"]["eventName"]) == sorted(n for names in EVENT_NAMES.values() for n in names)
    assert sorted(pattern["detail"]["eventSource"]) == sorted(s.removeprefix("aws.") + ".amazonaws.com"
                                                              for s in EVENT_NAMES)
