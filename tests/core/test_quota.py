"""RULE_QUOTA_NEAR: what counts against a security group's rules-per-group quota, and when it is near."""

from __future__ import annotations

from dataclasses import replace

import pytest

from monitor.core import policy, quota
from monitor.core.evaluate import evaluate
from monitor.core.history import FAILED, Attempt, History
from monitor.core.model import Observation, PeerKind, Rule, RuleQuota, Severity
from tests.core.test_policy import AFTER_GRACE, ENFORCE, V1, revoked_memory
from tests.support.pure_world import SSH_RULE, observe, topology

NODE, ALB = "sg-node", "sg-alb"


def cidr(n: int, group: str = NODE, egress: bool = False) -> Rule:
    return Rule(group, "tcp", 1000 + n, 1000 + n, PeerKind.CIDR, f"10.{n // 250}.{n % 250}.0/24", egress=egress)


def cidr6(n: int, group: str = NODE, egress: bool = False) -> Rule:
    return Rule(group, "tcp", 1000 + n, 1000 + n, PeerKind.CIDR6, f"2001:db8:{n:x}::/48", egress=egress)


def from_group(n: int, group: str = NODE) -> Rule:
    return Rule(group, "tcp", 1000 + n, 1000 + n, PeerKind.SECURITY_GROUP, f"sg-{n:017x}")


def from_list(n: int, group: str = NODE) -> Rule:
    return Rule(group, "tcp", 1000 + n, 1000 + n, PeerKind.PREFIX_LIST, f"pl-{n:017x}")


def many(make, count: int, **kwargs) -> tuple[Rule, ...]:
    return tuple(make(n, **kwargs) for n in range(count))


@pytest.mark.parametrize("rules, expected", [
    ((), {}),
    (many(cidr, 3), {(NODE, "inbound", "IPv4"): 3}),
    (many(cidr6, 2), {(NODE, "inbound", "IPv6"): 2}),
    # A rule referencing a group (or a prefix list) counts once against each family's quota.
    (many(from_group, 2), {(NODE, "inbound", "IPv4"): 2, (NODE, "inbound", "IPv6"): 2}),
    (many(from_list, 1), {(NODE, "inbound", "IPv4"): 1, (NODE, "inbound", "IPv6"): 1}),
    ((*many(cidr, 2), *many(cidr6, 1)), {(NODE, "inbound", "IPv4"): 2, (NODE, "inbound", "IPv6"): 1}),
    # Inbound and outbound are separate quotas, and so are groups.
    ((*many(cidr, 2), *many(cidr, 3, egress=True)), {(NODE, "inbound", "IPv4"): 2, (NODE, "outbound", "IPv4"): 3}),
    ((*many(cidr, 1), *many(cidr, 1, group=ALB)), {(NODE, "inbound", "IPv4"): 1, (ALB, "inbound", "IPv4"): 1}),
])
def test_counting(rules, expected):
    assert dict(quota.counts(rules)) == expected


def observation(rules=(), egress=(), read=frozenset({NODE, ALB}), rule_quota=RuleQuota(60, read=True)) -> Observation:
    return Observation(rules=tuple(rules), read_groups=read, egress_rules=tuple(egress), rule_quota=rule_quota)


@pytest.mark.parametrize("rules, near", [
    (many(cidr, 54), False),
    (many(cidr, 55), True),  # five from the quota: within five
    (many(cidr, 56), True),
    (many(cidr, 60), True),
    (many(cidr6, 54), False),
    (many(cidr6, 56), True),
    # 30 IPv4 and 30 IPv6 rules: 60 rules, but 30 against each quota.
    ((*many(cidr, 30), *many(cidr6, 30)), False),
    # 28 referencing groups + 28 IPv4: 56 against IPv4, 28 against IPv6.
    ((*many(from_group, 28), *[cidr(n) for n in range(100, 128)]), True),
])
def test_near_the_quota_is_five_rules_or_fewer_from_it(rules, near):
    assert bool(quota.near_quota(observation(rules))) is near


def test_the_finding_names_group_direction_family_count_and_quota():
    (finding,) = quota.near_quota(observation(many(cidr6, 57)))
    assert (finding.code, finding.severity, finding.security_group) == ("RULE_QUOTA_NEAR", Severity.WARNING, NODE)
    assert f"{NODE} holds 57 inbound IPv6 rules" in finding.message and "quota of 60:" in finding.message
    assert "RulesPerSecurityGroupLimitExceeded" in finding.message and "not readable" not in finding.message


def test_a_quota_read_is_used_and_one_not_read_is_said():
    assert not quota.near_quota(observation(many(cidr, 56), rule_quota=RuleQuota(100, read=True)))
    (raised,) = quota.near_quota(observation(many(cidr, 96), rule_quota=RuleQuota(100, read=True)))
    assert "quota of 100:" in raised.message
    for unread in (RuleQuota(60, read=False), None):
        (finding,) = quota.near_quota(observation(many(cidr, 56), rule_quota=unread))
        assert "quota not readable, assumed 60" in finding.message


def test_egress_counts_on_the_load_balancer_group_and_names_its_load_balancer():
    (finding,) = quota.near_quota(observation(egress=many(cidr, 58, group=ALB, egress=True)), {ALB: "k8s-shop"})
    assert (finding.security_group, finding.load_balancer) == (ALB, "k8s-shop")
    assert "58 outbound IPv4 rules" in finding.message


def test_a_group_whose_rules_were_not_read_completely_gets_no_finding():
    assert not quota.near_quota(observation(many(cidr, 59), read=frozenset({ALB})))


def test_evaluate_reports_it_as_a_warning_that_does_not_change_the_exit_code():
    report, obs = observe(())
    node = next(g for tg in topology().target_groups for t in tg.targets for g in t.security_groups)
    rules = (*obs.rules, *many(cidr, 57, group=node))
    full = evaluate(topology(), replace(obs, rules=rules, rule_quota=RuleQuota(60, read=True)))
    assert [f.security_group for f in full.findings if f.code == "RULE_QUOTA_NEAR"] == [node]
    assert full.complete


@pytest.mark.parametrize("rule_quota, said", [
    (RuleQuota(120, read=True), "quota of 120;"),
    (RuleQuota(60, read=False), "quota of 60 (quota not readable, assumed 60);"),
    (None, "quota of 60 (quota not readable, assumed 60);"),
])
def test_a_restore_failed_on_the_rule_limit_names_the_quota(rule_quota, said):
    report, obs = observe((SSH_RULE,))
    history = History(attempts=(Attempt(V1, AFTER_GRACE - 10, FAILED, policy.RULE_LIMIT_CODE),))
    plan = policy.plan(revoked_memory(), report, replace(obs, rule_quota=rule_quota), ENFORCE, AFTER_GRACE, True,
                       history)
    (failed,) = [f for f in plan.findings if f.code == "REMEDIATION_FAILED"]
    assert said in failed.message, failed.message
