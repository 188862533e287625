"""Naming the lost rule and who removed it, on literal reports, memories and CloudTrail events."""

from __future__ import annotations

from datetime import datetime

from monitor.core.attribution import attribute
from monitor.core.event_evidence import Sightings
from monitor.core.events import parse_event
from monitor.core.memory import Memory, PathKey, PathMemory, RuleTuple
from monitor.core.model import Finding, LoadBalancerResult, Report, Severity
from tests.core.test_events import (
    ALB_SG,
    HUMAN,
    LB_ARN,
    NODE_SG,
    ROLES,
    TG_ARN,
    V2,
    message,
    permissions,
    sg_permission,
)

LB = "k8s-shop-web-0123456789"
LOST = RuleTuple(NODE_SG, "tcp", 0, 65535, "sg", ALB_SG, "sgr-0lost")
CUT_SEEN = datetime.fromisoformat("2026-12-01T10:10:00+00:00").timestamp()  # the check that saw the cut


def report(*findings: Finding) -> Report:
    return Report(cluster="c", region="ap-northeast-1", complete=True, findings=findings, load_balancers=(
        LoadBalancerResult(name=LB, arn=LB_ARN, adoption="v1", security_groups=(ALB_SG,), reachable=False, paths=()),))


def memory(*lost: RuleTuple) -> Memory:
    return Memory(paths=((PathKey(LB_ARN, TG_ARN, "i-0aaa", 30080),
                          PathMemory(covering=lost, uncovered_since=CUT_SEEN, lost=lost)),))


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


def test_an_egress_cut_is_attributed_to_the_egress_revoke_the_reads_saw_and_names_its_rule():
    egress = event("RevokeSecurityGroupEgress", {"groupId": ALB_SG, "securityGroupRuleIds": {
        "items": [{"securityGroupRuleId": "sgr-0out"}]}}, identity=HUMAN)
    ingress = by_id("sgr-0lost")
    out = RuleTuple(ALB_SG, "tcp", 0, 65535, "sg", NODE_SG, "sgr-0out")
    seen = Sightings()
    # no read of the group yet: an event naming an outbound rule the monitor never saw names nobody
    findings = attribute(report(EGRESS, REVOKED), memory(LOST), [egress, ingress], ROLES, seen).findings
    assert next(f for f in findings if f.code == "EGRESS_BLOCKED").attribution is None
    seen.saw([("egress", out)], [ALB_SG], CUT_SEEN - 900)
    seen.saw([], [ALB_SG], CUT_SEEN)
    findings = attribute(report(EGRESS, REVOKED), memory(LOST), [egress, ingress], ROLES, seen).findings
    egress_finding = next(f for f in findings if f.code == "EGRESS_BLOCKED")
    assert egress_finding.rule == "sgr-0out" and egress_finding.attribution.principal == HUMAN["arn"]
    assert next(f for f in findings if f.code == "ACCESS_REVOKED").attribution.principal == V2["arn"]


def test_a_revoke_the_reads_did_not_see_or_dated_after_the_cut_was_seen_names_nobody():
    # nothing remembered on the path: the reads never saw the rule the event names go
    (finding,) = attribute(report(REVOKED), memory(), [by_id("sgr-0lost")], ROLES).findings
    assert finding.attribution is None
    later = by_id("sgr-0lost", identity=HUMAN, time="2026-12-01T11:00:00Z", n=3)
    (finding,) = attribute(report(REVOKED), memory(LOST), [by_id("sgr-0lost"), later], ROLES).findings
    assert finding.attribution.principal == V2["arn"]  # not the one dated after the check saw the cut
    other_id = event("RevokeSecurityGroupIngress", {"groupId": NODE_SG, "securityGroupRuleIds": {"items": [
        {"securityGroupRuleId": "sgr-0forged"}]}}, identity=HUMAN, n=4)
    (finding,) = attribute(report(REVOKED), memory(LOST), [other_id], ROLES).findings
    assert finding.attribution is None


def test_a_grant_is_never_taken_for_the_cut():
    grant = event("AuthorizeSecurityGroupIngress", {"groupId": NODE_SG, "ipPermissions": permissions(
        sg_permission("tcp", 0, 65535, ALB_SG))})
    (finding,) = attribute(report(REVOKED), memory(LOST), [grant], ROLES).findings
    assert finding.attribution is None
