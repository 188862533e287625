"""Naming the lost rule and who removed it, on literal reports, memories and CloudTrail events."""

from __future__ import annotations

from monitor.attribution import attribute
from monitor.events import parse_event
from monitor.memory import Memory, PathKey, PathMemory, RuleTuple
from monitor.model import Finding, LoadBalancerResult, Report, Severity
from tests.test_events import (ALB_SG, HUMAN, LB_ARN, NODE_SG, ROLES, TG_ARN, V2, message, permissions,
                               sg_permission)

LB = "k8s-shop-web-0123456789"
LOST = RuleTuple(NODE_SG, "tcp", 0, 65535, "sg", ALB_SG, "sgr-0lost")


def report(*findings: Finding) -> Report:
    return Report(cluster="c", region="ap-northeast-1", complete=True, findings=findings, load_balancers=(
        LoadBalancerResult(name=LB, arn=LB_ARN, adoption="v1", security_groups=(ALB_SG,), reachable=False, paths=()),))


def memory(*lost: RuleTuple) -> Memory:
    return Memory(paths=((PathKey(LB_ARN, TG_ARN, "i-0aaa", 30080),
                          PathMemory(covering=lost, uncovered_since=100.0, lost=lost)),))


REVOKED = Finding("ACCESS_REVOKED", Severity.CRITICAL, "cannot reach ...", load_balancer=LB, security_group=NODE_SG)
EGRESS = Finding("EGRESS_BLOCKED", Severity.CRITICAL, "cannot send ...", load_balancer=LB, security_group=ALB_SG)


def event(name: str, request: dict, identity: dict = V2, time: str = "2026-12-01T10:00:00Z", n: int = 1):
    parsed = parse_event(message(name, request, {"_return": True}, identity=identity, time=time,
                                 event_id=f"3b1c4a1e-0000-4000-8000-{n:012d}"))
    assert not hasattr(parsed, "reason"), parsed
    return parsed


def by_id(rule_id: str, group: str = NODE_SG, **kw):
    return event("RevokeSecurityGroupIngress",
                 {"groupId": group, "securityGroupRuleIds": {"items": [{"securityGroupRuleId": rule_id}]}}, **kw)


def test_the_lost_rule_is_named_from_memory_and_the_matching_revoke_names_who():
    (finding,) = attribute(report(REVOKED), memory(LOST), [by_id("sgr-0lost")], ROLES).findings
    assert finding.rule == "sgr-0lost"
    assert (finding.attribution.actor_kind, finding.attribution.principal) == ("v2_controller", V2["arn"])


def test_a_revoke_of_another_rule_of_the_group_is_not_taken_for_the_cut():
    (finding,) = attribute(report(REVOKED), memory(LOST), [by_id("sgr-0other")], ROLES).findings
    assert finding.rule == "sgr-0lost" and finding.attribution is None


def test_the_latest_of_two_matching_revokes_is_the_one_named():
    first = by_id("sgr-0lost", identity=V2, time="2026-12-01T10:00:00Z", n=1)
    again = event("RevokeSecurityGroupIngress", {"groupId": NODE_SG, "ipPermissions": permissions(
        sg_permission("tcp", 0, 65535, ALB_SG))}, identity=HUMAN, time="2026-12-01T10:05:00Z", n=2)
    (finding,) = attribute(report(REVOKED), memory(LOST), [again, first], ROLES).findings
    assert finding.attribution.principal == HUMAN["arn"] and finding.attribution.actor_kind == "other"


def test_a_deleted_group_is_attributed_to_whoever_deleted_it():
    deleted = event("DeleteSecurityGroup", {"groupId": NODE_SG}, identity=HUMAN)
    (finding,) = attribute(report(REVOKED), memory(LOST), [deleted], ROLES).findings
    assert finding.attribution.event_name == "DeleteSecurityGroup"


def test_an_egress_cut_is_attributed_to_the_egress_revoke_on_the_albs_group_and_names_its_rule():
    egress = event("RevokeSecurityGroupEgress", {"groupId": ALB_SG, "securityGroupRuleIds": {
        "items": [{"securityGroupRuleId": "sgr-0out"}]}}, identity=HUMAN)
    ingress = by_id("sgr-0lost")
    findings = attribute(report(EGRESS, REVOKED), memory(LOST), [egress, ingress], ROLES).findings
    egress_finding = next(f for f in findings if f.code == "EGRESS_BLOCKED")
    assert egress_finding.rule == "sgr-0out" and egress_finding.attribution.principal == HUMAN["arn"]
    assert next(f for f in findings if f.code == "ACCESS_REVOKED").attribution.principal == V2["arn"]


def test_a_grant_is_never_taken_for_the_cut():
    grant = event("AuthorizeSecurityGroupIngress", {"groupId": NODE_SG, "ipPermissions": permissions(
        sg_permission("tcp", 0, 65535, ALB_SG))})
    (finding,) = attribute(report(REVOKED), memory(LOST), [grant], ROLES).findings
    assert finding.attribution is None
