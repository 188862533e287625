"""Restoring and cleaning up rules against moto over HTTP, in the demo's mid-migration world.

Every write is checked against a full before/after diff of every security group rule in the VPC,
seen through both EC2 views (DescribeSecurityGroupRules and DescribeSecurityGroups).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from monitor import aws
from monitor.aws.writes import authorize, revoke_own
from monitor.core import controllers, ownership, policy
from monitor.core.evaluate import evaluate
from monitor.core.history import History
from monitor.core.memory import Memory, RuleTuple, remember
from monitor.core.model import Report
from monitor.core.policy import Decision
from monitor.core.settings import Settings
from monitor.core.state_doc import State
from monitor.daemon.state import FileStateStore
from monitor.demo import world as demo_world
from tests.support.awsproxy import ERROR, MALFORMED

T0 = 1_700_000_000.0


class Monitor:
    """The enforce building blocks wired by hand, one cycle at a time, as the daemon will."""

    def __init__(self, world: demo_world.World, **settings: Any) -> None:
        self.world = world
        self.clients = aws.connect(world.region)
        self.settings = Settings(cluster_name=world.cluster, mode="enforce", **settings)
        self.memory, self.history = Memory(), History()
        self.topology = aws.discover(self.clients, world.cluster)
        self.reader = aws.RuleReader(self.clients)

    def cycle(self, now: float, rediscover: bool = False) -> tuple[Report, policy.Plan, list]:
        if rediscover:
            self.topology = aws.discover(self.clients, self.world.cluster)
        observation = self.reader.read(self.topology)
        report = evaluate(self.topology, observation)
        self.memory = remember(self.memory, report, observation.rules, now)
        plan = policy.plan(self.memory, report, observation, self.settings, now, True, self.history)
        self.history = plan.history
        results = []
        for decision in plan.writes:
            if decision.kind == policy.RESTORE:
                result = authorize(self.clients, decision)
            else:
                result = revoke_own(self.clients, decision, self.world.cluster)
            self.history = policy.record(self.history, decision, result, now)
            results.append((decision, result))
        return report, plan, results


def snapshot(world: demo_world.World) -> dict[str, tuple]:
    """Every rule of every SG in the world's VPC: id -> (tuple, both views' descriptions, tags)."""
    ec2 = world.clients()["ec2"]
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [world.vpc_id]}])["SecurityGroups"]
    sg_view: dict[tuple, str] = {}
    for group in groups:
        for perm in group["IpPermissions"]:
            ports = (perm["IpProtocol"], perm.get("FromPort"), perm.get("ToPort"))
            for pair in perm.get("UserIdGroupPairs", []):
                sg_view[(group["GroupId"], *ports, pair["GroupId"])] = pair.get("Description", "")
            for cidr in perm.get("IpRanges", []):
                sg_view[(group["GroupId"], *ports, cidr["CidrIp"])] = cidr.get("Description", "")
    rules = ec2.get_paginator("describe_security_group_rules").paginate(
        Filters=[{"Name": "group-id", "Values": [g["GroupId"] for g in groups]}]).build_full_result()
    out = {}
    for rule in rules["SecurityGroupRules"]:
        peer = rule.get("ReferencedGroupInfo", {}).get("GroupId") or rule.get("CidrIpv4")
        key = (rule["GroupId"], rule["IpProtocol"], rule.get("FromPort"), rule.get("ToPort"), peer)
        out[rule["SecurityGroupRuleId"]] = (rule["IsEgress"], *key, rule.get("Description", ""),
                                            "" if rule["IsEgress"] else sg_view.get(key),
                                            tuple(sorted((t["Key"], t["Value"]) for t in rule.get("Tags", []))))
    return out


def reachable(report: Report, world: demo_world.World, key: str) -> bool | None:
    return next(lb.reachable for lb in report.load_balancers if lb.name == world.lb_name[key])


def revoke_and_restore(world: demo_world.World) -> tuple[Monitor, dict, tuple]:
    monitor = Monitor(world)
    monitor.cycle(T0)
    before = snapshot(world)
    demo_world.revoke(world, "shop_v1")
    report, plan, results = monitor.cycle(T0 + 15)
    assert reachable(report, world, "shop") is False and results == []
    report, plan, results = monitor.cycle(T0 + 80)
    return monitor, before, (plan, results)


def test_a_revoked_v1_rule_is_restored_exactly_and_nothing_else_changes(world):
    monitor, before, (plan, results) = revoke_and_restore(world)
    ((decision, result),) = results
    assert result.outcome == "restored" and result.rule_id
    after = snapshot(world)
    removed, added = set(before) - set(after), set(after) - set(before)
    assert removed == {world.rule["shop_v1"]} and added == {result.rule_id}
    assert {k: v for k, v in before.items() if k not in removed} == {k: v for k, v in after.items() if k not in added}
    old, new = before[world.rule["shop_v1"]], after[result.rule_id]
    assert new[:6] == old[:6] == (False, world.sg["cluster"], "tcp", 0, 65535, world.sg["shop_alb"])
    description = new[7]  # moto shows an authorize-time description only in DescribeSecurityGroups
    assert description.startswith(f"alb-sg-monitor restored 2023-11-14 for {world.lb_name['shop']}")
    assert not controllers.has_shared_label(description)
    tags = dict(new[8])
    assert tags[ownership.OWNER_TAG] == world.cluster and tags[ownership.RESTORED_FOR_TAG] == world.lb_name["shop"]
    report, plan, results = monitor.cycle(T0 + 95)
    assert reachable(report, world, "shop") is True and results == []
    assert not [f for f in report.findings if f.code == "ACCESS_REVOKED"]


def test_authorizing_a_rule_that_is_already_there_is_success_and_adds_nothing(world):
    monitor, _, (plan, results) = revoke_and_restore(world)
    ((decision, _),) = results
    before = snapshot(world)
    # moto reports a duplicate only for an identical description; AWS ignores the description.
    again = authorize(monitor.clients, decision)
    assert (again.outcome, again.ok, again.code) == ("duplicate", True, "InvalidPermission.Duplicate")
    assert snapshot(world) == before


def test_a_simulated_v2_garbage_collection_never_removes_our_restored_rule(world):
    monitor, _, (plan, results) = revoke_and_restore(world)
    ((decision, result),) = results
    ec2 = world.clients()["ec2"]
    # Fixture: make moto's rule view show the description given at authorize time, as AWS does.
    demo_world._set_description(ec2, world.sg["cluster"], result.rule_id, decision.description)
    labelled = {world.rule[k] for k in ("payments_v1", "payments_v2", "backend_nodes")}
    # v2's GC: with no binding wanting them, every labelled rule on the cluster's SGs is revoked.
    for rule_id, rule in snapshot(world).items():
        if not rule[0] and controllers.has_shared_label(rule[6]):
            ec2.revoke_security_group_ingress(GroupId=rule[1], SecurityGroupRuleIds=[rule_id])
    after = snapshot(world)
    assert labelled.isdisjoint(after)  # the GC did run
    assert after[result.rule_id][6] == decision.description  # ours survived, with our description
    report, _, _ = monitor.cycle(T0 + 95)
    assert reachable(report, world, "shop") is True


def test_revoke_own_refuses_rules_that_are_not_ours(world):
    monitor = Monitor(world)
    ec2 = world.clients()["ec2"]
    other = ec2.authorize_security_group_ingress(
        GroupId=world.sg["cluster"],
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 9000, "ToPort": 9000, "IpRanges": [{"CidrIp": "10.9.0.0/16"}]}],
        TagSpecifications=[{"ResourceType": "security-group-rule",
                            "Tags": [{"Key": ownership.OWNER_TAG, "Value": "staging-eks"}]}],
    )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    before = snapshot(world)
    cases = {
        world.rule["marketing_user"]: RuleTuple(world.sg["cluster"], "tcp", 0, 65535, "sg", world.sg["marketing_alb"]),
        other: RuleTuple(world.sg["cluster"], "tcp", 9000, 9000, "cidr", "10.9.0.0/16"),
    }
    for rule_id, rule in cases.items():
        decision = Decision(kind=policy.CLEANUP, action=policy.REVOKE, rule=rule, rule_id=rule_id)
        result = revoke_own(monitor.clients, decision, world.cluster)
        assert (result.outcome, result.code, result.ok) == ("refused", "NotOurs", False)
    assert snapshot(world) == before


def test_after_its_alb_is_deleted_the_monitor_removes_its_own_rule_and_nothing_else(world):
    monitor, _, (plan, results) = revoke_and_restore(world)
    ((_, restored),) = results
    elbv2 = world.clients()["elbv2"]
    elbv2.delete_load_balancer(LoadBalancerArn=world.lb["shop"])
    before = snapshot(world)
    report, plan, results = monitor.cycle(T0 + 100, rediscover=True)
    assert [(d.kind, d.action, d.reason) for d in plan.decisions] == [("cleanup", "suppressed", "grace")]
    report, plan, results = monitor.cycle(T0 + 401)
    ((decision, result),) = results
    assert (decision.rule_id, result.outcome) == (restored.rule_id, "cleaned_up")
    after = snapshot(world)
    assert set(before) - set(after) == {restored.rule_id} and set(after) <= set(before)
    # v2 can now delete the ALB's SG without DependencyViolation.
    world.clients()["ec2"].delete_security_group(GroupId=world.sg["shop_alb"])
    gone = revoke_own(monitor.clients, decision, world.cluster)
    assert gone.outcome == "gone" and gone.ok


def test_the_rule_limit_fails_without_writing_and_the_policy_backs_off_and_alerts(world):
    monitor = Monitor(world)
    monitor.cycle(T0)
    demo_world.revoke(world, "shop_v1")
    ec2 = world.clients()["ec2"]
    for i in range(60):  # fill the node SG to moto's per-group limit
        try:
            ec2.authorize_security_group_ingress(GroupId=world.sg["cluster"], IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 1000 + i, "ToPort": 1000 + i, "IpRanges": [{"CidrIp": "10.99.0.0/16"}]}])
        except ec2.exceptions.ClientError:
            break
    monitor.cycle(T0 + 15)
    before = snapshot(world)
    _, plan, results = monitor.cycle(T0 + 80)
    ((_, result),) = results
    assert (result.outcome, result.code) == ("failed", "RulesPerSecurityGroupLimitExceeded")
    assert snapshot(world) == before
    report, plan, results = monitor.cycle(T0 + 95)
    assert results == [] and [(d.action, d.reason) for d in plan.decisions] == [("suppressed", "rule_limit")]
    assert [f.code for f in plan.findings] == ["REMEDIATION_FAILED"]
    # Both say the quota in use (moto answers GetServiceQuota with AWS's default, 60).
    assert "has reached its rules-per-group quota of 60;" in plan.findings[0].message
    (near,) = [f for f in report.findings if f.code == "RULE_QUOTA_NEAR"]
    assert near.security_group == world.sg["cluster"] and "at its rules-per-group quota of 60:" in near.message


@pytest.fixture
def proxied(world, proxy):
    return world, proxy


def test_a_permission_error_is_one_request_and_a_failed_result(proxied):
    world, proxy = proxied
    monitor, before, _ = revoke_and_restore_with(proxied, "UnauthorizedOperation", status=403)
    assert proxy.calls("AuthorizeSecurityGroupIngress") == 1
    assert snapshot(world) == before


def test_throttling_is_retried_by_botocore_and_the_restore_succeeds(proxied):
    world, proxy = proxied
    monitor, _, results = revoke_and_restore_with(proxied, "RequestLimitExceeded", status=503)
    ((_, result),) = results
    assert result.outcome == "restored"
    assert proxy.calls("AuthorizeSecurityGroupIngress") == 2


def revoke_and_restore_with(proxied, code: str, status: int):
    world, proxy = proxied
    monitor = Monitor(world)
    monitor.cycle(T0)
    demo_world.revoke(world, "shop_v1")
    monitor.cycle(T0 + 15)
    before = snapshot(world)
    proxy.fail("AuthorizeSecurityGroupIngress", kind=ERROR, code=code, status=status, times=1)
    _, plan, results = monitor.cycle(T0 + 80)
    if code == "UnauthorizedOperation":
        ((_, result),) = results
        assert (result.outcome, result.code) == ("failed", "UnauthorizedOperation")
        assert [f.code for f in plan.findings] == []  # the alert comes with the next plan
        _, plan, results = monitor.cycle(T0 + 95)
        assert [(d.action, d.reason) for d in plan.decisions] == [("suppressed", "backoff")]
        assert "ec2:AuthorizeSecurityGroupIngress" in plan.findings[0].message
    return monitor, before, results


def test_authorize_refuses_a_decision_without_our_marks(world):
    monitor = Monitor(world)
    bare = Decision(kind=policy.RESTORE, action=policy.RESTORE,
                    rule=RuleTuple(world.sg["cluster"], "tcp", 1, 1, "cidr", "10.0.0.0/8"))
    with pytest.raises(ValueError):
        authorize(monitor.clients, bare)
    with pytest.raises(ValueError):
        authorize(monitor.clients, replace(bare, action=policy.DRY_RUN, description="x",
                                           tags=((ownership.OWNER_TAG, world.cluster),)))


def test_a_restart_mid_outage_still_restores_from_the_state_file(world, tmp_path):
    store = FileStateStore(str(tmp_path / "state.json"), world.cluster)
    first = Monitor(world)
    first.cycle(T0)
    demo_world.revoke(world, "shop_v1")
    first.cycle(T0 + 15)
    store.save(State(world.cluster, first.memory, first.history))
    del first  # the pod restarts during the outage
    second = Monitor(world)
    state = store.load()
    second.memory, second.history = state.memory, state.history
    report, plan, results = second.cycle(T0 + 80)
    ((decision, result),) = results
    assert result.outcome == "restored"
    assert decision.rule == RuleTuple(world.sg["cluster"], "tcp", 0, 65535, "sg", world.sg["shop_alb"])
    report, _, _ = second.cycle(T0 + 95)
    assert reachable(report, world, "shop") is True


def test_an_answer_cut_short_fails_the_write_or_its_read_and_raises_nothing(proxied, monkeypatch):
    """A restore whose answer cannot be parsed is failed (the next read says whether the rule is
    there); a clean-up whose read of the rule cannot be parsed revokes nothing."""
    world, proxy = proxied
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monitor = Monitor(world)
    decision = Decision(kind=policy.RESTORE, action=policy.RESTORE,
                        rule=RuleTuple(world.sg["cluster"], "tcp", 31999, 31999, "cidr", "10.9.0.0/16"),
                        description=ownership.description("shop", T0),
                        tags=ownership.rule_tags(world.cluster, "shop", T0))
    proxy.fail("AuthorizeSecurityGroupIngress", kind=MALFORMED)
    result = authorize(monitor.clients, decision)
    assert (result.outcome, result.code) == ("failed", "ResponseParserError")
    proxy.heal()
    rule_id = next(r["SecurityGroupRuleId"] for r in world.clients()["ec2"].describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [world.sg["cluster"]]}])["SecurityGroupRules"]
        if r.get("CidrIpv4") == "10.9.0.0/16")
    proxy.fail("DescribeSecurityGroupRules", kind=MALFORMED)
    cleanup = Decision(kind=policy.CLEANUP, action=policy.REVOKE, rule=decision.rule, rule_id=rule_id)
    result = revoke_own(monitor.clients, cleanup, world.cluster)
    assert (result.outcome, result.code) == ("failed", "ResponseParserError")
    assert proxy.calls("RevokeSecurityGroupIngress") == 0
