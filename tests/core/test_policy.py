"""The remediation policy: which lost rules are put back, when, and what holds each one back."""

from __future__ import annotations

from dataclasses import replace

import pytest

from monitor.core import controllers, ownership, policy
from monitor.core.history import CREATED, FAILED, Attempt, History, Quarantine
from monitor.core.memory import Memory, RuleTuple, remember
from monitor.core.model import PeerKind, Rule, Severity, Target
from monitor.core.policy import Decision, WriteResult
from monitor.core.settings import Settings
from tests.support.pure_world import (
    ALB_SG,
    CLUSTER,
    CLUSTER_SG,
    NODE_SG,
    SSH_RULE,
    V1_RULE,
    load_balancer,
    observe,
    topology,
)

V1 = RuleTuple.of(V1_RULE)
ENFORCE = Settings(cluster_name=CLUSTER, mode="enforce")
T0 = 1_700_000_000.0  # healthy
T1 = T0 + 15  # the rule is revoked
AFTER_GRACE = T1 + 61


def revoked_memory(rules=(V1_RULE, SSH_RULE), after=(SSH_RULE,), topo=None) -> Memory:
    healthy = remember(Memory(), observe(rules, topo=topo)[0], tuple(rules), T0)
    return remember(healthy, observe(after, topo=topo)[0], tuple(after), T1)


def decide(mem, now=AFTER_GRACE, settings=ENFORCE, leader=True, history=History(), rules=(SSH_RULE,), **kwargs):
    report, observation = observe(rules, **kwargs)
    return policy.plan(mem, report, observation, settings, now, leader, history)


def restores(plan):
    return [d for d in plan.decisions if d.kind == policy.RESTORE]


def test_after_grace_the_leader_in_enforce_mode_restores_exactly_the_lost_tuple_with_our_marks():
    plan = decide(revoked_memory())
    (decision,) = plan.decisions
    assert (decision.action, decision.reason, decision.rule) == ("restore", "", V1)
    assert decision.load_balancers == ("1a2b3c4d-shop-web-0f1e",) and decision.ingresses == (("shop", "web"),)
    assert decision.description.startswith("alb-sg-monitor restored 2023-11-14 for 1a2b3c4d-shop-web-0f1e")
    assert not controllers.has_shared_label(decision.description)
    assert dict(decision.tags)[ownership.OWNER_TAG] == CLUSTER
    assert dict(decision.tags)[ownership.RESTORED_FOR_TAG] == "1a2b3c4d-shop-web-0f1e"
    assert plan.writes == (decision,) and plan.findings == ()


FAILED_JUST_NOW = History(attempts=(Attempt(V1, AFTER_GRACE - 10, FAILED, "UnauthorizedOperation"),))
FAILED_LONG_AGO = History(attempts=(Attempt(V1, AFTER_GRACE - 61, FAILED, "UnauthorizedOperation"),))
FAILED_TWICE = History(attempts=(Attempt(V1, T1 + 1, FAILED, "UnauthorizedOperation"),
                                 Attempt(V1, AFTER_GRACE - 100, FAILED, "UnauthorizedOperation")))
RULE_LIMIT = History(attempts=(Attempt(V1, AFTER_GRACE - 10, FAILED, "RulesPerSecurityGroupLimitExceeded"),))
OTHER = RuleTuple(CLUSTER_SG, "tcp", 443, 443, "cidr", "10.0.0.0/8")
BUSY_HOUR = History(attempts=tuple(Attempt(OTHER, AFTER_GRACE - 3000 + i, CREATED) for i in range(20)))
BUSY_YESTERDAY = History(attempts=tuple(Attempt(OTHER, AFTER_GRACE - 4000 + i, CREATED) for i in range(20)))
RESTORED_JUST_NOW = History(attempts=(Attempt(V1, AFTER_GRACE - 30, CREATED),))


@pytest.mark.parametrize("name, now, settings, leader, history, observed, action, reason", [
    ("within grace", T1 + 30, ENFORCE, True, History(), {}, "suppressed", "grace"),
    ("grace is a setting", T1 + 30, replace(ENFORCE, grace=20.0), True, History(), {}, "restore", ""),
    ("observe mode is the default", AFTER_GRACE, Settings(cluster_name=CLUSTER), True, History(), {}, "dry_run", ""),
    ("observe mode, even when not leader", AFTER_GRACE, Settings(cluster_name=CLUSTER), False, History(), {},
     "dry_run", ""),
    ("not the leader", AFTER_GRACE, ENFORCE, False, History(), {}, "suppressed", "not_leader"),
    ("incomplete observation", AFTER_GRACE, ENFORCE, True, History(), {"failed": True},
     "suppressed", "incomplete_observation"),
    ("backoff after a failure", AFTER_GRACE, ENFORCE, True, FAILED_JUST_NOW, {}, "suppressed", "backoff"),
    ("backoff over", AFTER_GRACE, ENFORCE, True, FAILED_LONG_AGO, {}, "restore", ""),
    ("backoff doubles", AFTER_GRACE, ENFORCE, True, FAILED_TWICE, {}, "suppressed", "backoff"),
    ("backoff is capped", AFTER_GRACE, replace(ENFORCE, restore_backoff_max=90.0), True, FAILED_TWICE, {},
     "restore", ""),
    ("rule limit", AFTER_GRACE, ENFORCE, True, RULE_LIMIT, {}, "suppressed", "rule_limit"),
    ("hourly cap reached", AFTER_GRACE, ENFORCE, True, BUSY_HOUR, {}, "suppressed", "cap_per_hour"),
    ("hourly cap is a setting", AFTER_GRACE, replace(ENFORCE, max_restores_per_hour=21), True, BUSY_HOUR, {},
     "restore", ""),
    ("hourly cap is rolling", AFTER_GRACE, ENFORCE, True, BUSY_YESTERDAY, {}, "restore", ""),
    ("grace restarts after our restore", AFTER_GRACE, ENFORCE, True, RESTORED_JUST_NOW, {}, "suppressed", "grace"),
    ("the ALB no longer uses the source", AFTER_GRACE, ENFORCE, True, History(), {"lb_groups": (CLUSTER_SG,)},
     "suppressed", "source_detached"),
])
def test_safety_rails(name, now, settings, leader, history, observed, action, reason):
    plan = decide(revoked_memory(), now=now, settings=settings, leader=leader, history=history, **observed)
    (decision,) = restores(plan)
    assert (decision.action, decision.reason) == (action, reason), name
    assert bool(plan.writes) == (action == "restore")


@pytest.mark.parametrize("history, code", [(FAILED_JUST_NOW, "UnauthorizedOperation"),
                                           (RULE_LIMIT, "RulesPerSecurityGroupLimitExceeded")])
def test_a_failed_restore_alerts_with_what_to_do(history, code):
    plan = decide(revoked_memory(), history=history)
    (finding,) = plan.findings
    assert (finding.code, finding.severity, finding.security_group) == ("REMEDIATION_FAILED", Severity.WARNING, NODE_SG)
    assert code in finding.message
    assert ("quota" if "Limit" in code else "ec2:AuthorizeSecurityGroupIngress") in finding.message


def test_no_decision_for_a_path_that_was_never_seen_healthy():
    mem = remember(Memory(), observe([SSH_RULE])[0], (SSH_RULE,), T0)
    assert decide(mem).decisions == ()


def test_at_most_max_restores_per_cycle_writes_oldest_outage_first():
    targets, rules = [], []
    for i in range(7):
        sg = f"sg-0node{i:012d}"
        targets.append(Target(f"i-0{i:04d}", 30080, f"eni-0{i:04d}", (sg,), "healthy"))
        rules.append(Rule(sg, "tcp", 0, 65535, PeerKind.SECURITY_GROUP, ALB_SG, rule_id=f"sgr-0{i:016d}"))
    topo = topology(targets=tuple(targets))
    mem = remember(Memory(), observe(rules, topo=topo)[0], tuple(rules), T0)
    for i, rule in enumerate(rules):  # revoked one after the other
        remaining = rules[i + 1:]
        mem = remember(mem, observe(remaining, topo=topo)[0], tuple(remaining), T1 + i)
    plan = decide(mem, now=AFTER_GRACE + 10, rules=(), topo=topo)
    actions = [(d.rule.group_id, d.action, d.reason) for d in restores(plan)]
    assert actions == [(rule.group_id, "restore", "") for rule in rules[:5]] + [
        (rule.group_id, "suppressed", "cap_per_cycle") for rule in rules[5:]]


def cycle(mem, history, now, present: bool, settings=ENFORCE):
    """One cycle: observe, remember, plan, carry out the writes as AWS would answer them."""
    rules = (V1_RULE, SSH_RULE) if present else (SSH_RULE,)
    report, observation = observe(rules)
    mem = remember(mem, report, rules, now)
    plan = policy.plan(mem, report, observation, settings, now, True, history)
    history = plan.history
    for decision in plan.writes:
        history = policy.record(history, decision, WriteResult("restored", rule_id="sgr-0restored"), now)
    return mem, history, plan


def test_a_rule_revoked_a_third_time_within_the_window_is_quarantined_and_stays_so():
    mem, history, _ = cycle(Memory(), History(), T0, present=True)
    outcomes = []
    now = T0
    for _ in range(3):  # revoked, restored after grace, seen back; three times over
        now += 15
        mem, history, plan = cycle(mem, history, now, present=False)
        now += 61
        mem, history, plan = cycle(mem, history, now, present=False)
        outcomes.append([(d.action, d.reason) for d in restores(plan)])
        if plan.writes:
            now += 15
            mem, history, _ = cycle(mem, history, now, present=True)
    assert outcomes == [[("restore", "")], [("restore", "")], [("suppressed", "quarantined")]]
    (fight,) = plan.findings
    assert (fight.code, fight.severity, fight.security_group) == ("REMEDIATION_FIGHT", Severity.CRITICAL, NODE_SG)
    assert "revoked 3 times within 1h" in fight.message and "restoring it has stopped" in fight.message
    # Sticky: hours later it is still not restored, and the finding stays.
    mem, history, plan = cycle(mem, history, now + 7200, present=False)
    assert [(d.action, d.reason) for d in restores(plan)] == [("suppressed", "quarantined")]
    assert [f.code for f in plan.findings] == ["REMEDIATION_FIGHT"]
    # Someone else put it back: the quarantine is lifted.
    mem, history, plan = cycle(mem, history, now + 7300, present=True)
    assert history.quarantined == () and plan.findings == ()


@pytest.mark.parametrize("threshold, window, restores_ago, quarantined", [
    (3, 3600.0, (600, 300), True),
    (3, 3600.0, (4000, 300), False),  # one of the two restores is outside the window
    (3, 600.0, (700, 300), False),
    (4, 3600.0, (600, 300), False),
    (2, 3600.0, (300,), True),
])
def test_fight_threshold_and_window_are_settings(threshold, window, restores_ago, quarantined):
    history = History(attempts=tuple(Attempt(V1, AFTER_GRACE - ago, CREATED) for ago in restores_ago))
    settings = replace(ENFORCE, fight_threshold=threshold, fight_window=window)
    plan = decide(revoked_memory(), now=AFTER_GRACE, settings=settings, history=history)
    (decision,) = restores(plan)
    assert (decision.reason == "quarantined") is quarantined
    assert bool(plan.history.quarantined) is quarantined


def test_a_quarantine_ends_with_the_paths_that_needed_the_rule():
    quarantined = History(quarantined=(Quarantine(V1, T1, 3),))
    assert decide(revoked_memory(), history=quarantined).history.quarantined == (Quarantine(V1, T1, 3),)
    other = load_balancer(name="k8s-shop-api-0123456789", arn="arn:aws:elasticloadbalancing:other")
    topo = topology(lbs=(other,))  # the ALB was deleted; its paths are forgotten
    mem = remember(revoked_memory(), observe((SSH_RULE,), topo=topo)[0], (SSH_RULE,), AFTER_GRACE)
    assert decide(mem, history=quarantined, topo=topo).history.quarantined == ()


def test_an_incomplete_observation_never_starts_a_quarantine():
    history = History(attempts=(Attempt(V1, AFTER_GRACE - 600, CREATED), Attempt(V1, AFTER_GRACE - 300, CREATED)))
    plan = decide(revoked_memory(), history=history, failed=True)
    assert [(d.action, d.reason) for d in plan.decisions] == [("suppressed", "incomplete_observation")]
    assert plan.history.quarantined == ()


# Clean-up of our own rules.
GONE_SG = "sg-0dead0000000000d1"


def our_rule(source=GONE_SG, cluster=CLUSTER, rule_id="sgr-0000000000000our1") -> Rule:
    return Rule(NODE_SG, "tcp", 0, 65535, PeerKind.SECURITY_GROUP, source, rule_id=rule_id,
                description=ownership.description("1a2b3c4d-old-0f1e", T0),
                tags=ownership.rule_tags(cluster, "1a2b3c4d-old-0f1e", T0))


def cleanups(plan):
    return [(d.rule_id, d.action, d.reason) for d in plan.decisions if d.kind == policy.CLEANUP]


def test_our_rule_whose_source_no_alb_uses_is_revoked_after_the_cleanup_grace():
    rules = (V1_RULE, our_rule())
    mem = remember(Memory(), observe(rules)[0], rules, T0)
    first = decide(mem, now=T0, rules=rules)
    assert cleanups(first) == [("sgr-0000000000000our1", "suppressed", "grace")]
    later = decide(mem, now=T0 + 301, rules=rules, history=first.history)
    assert cleanups(later) == [("sgr-0000000000000our1", "revoke", "")]
    (decision,) = later.writes
    done = policy.record(later.history, decision, WriteResult("cleaned_up", rule_id=decision.rule_id), T0 + 301)
    assert done.orphaned == ()


@pytest.mark.parametrize("name, rule, kwargs, expected", [
    ("observe mode", our_rule(), {"settings": Settings(cluster_name=CLUSTER)}, "dry_run"),
    ("not the leader", our_rule(), {"leader": False}, "suppressed"),
    ("source still on an ALB", our_rule(source=ALB_SG), {}, None),
    ("not ours: no tag", replace(our_rule(), tags=()), {}, None),
    ("not ours: another cluster's", our_rule(cluster="staging-eks"), {}, None),
    ("incomplete observation", our_rule(), {"failed": True}, None),
    ("an ALB not described yet", our_rule(), {"new_lbs": {"arn:aws:elasticloadbalancing:new"}}, None),
])
def test_clean_up_only_our_own_orphaned_rules_and_only_when_sure(name, rule, kwargs, expected):
    rules = (V1_RULE, rule)
    mem = remember(Memory(), observe(rules)[0], rules, T0)
    history = History(orphaned=((rule.rule_id, T0 - 1000),))
    plan = decide(mem, now=T0, rules=rules, history=history, **kwargs)
    assert [a for _, a, _ in cleanups(plan)] == ([expected] if expected else []), name
    if rule.peer == ALB_SG:
        assert plan.history.orphaned == ()  # attached again: the clock stops


def test_a_cidr_rule_of_ours_is_cleaned_up_when_the_alb_it_was_restored_for_is_gone():
    rule = replace(our_rule(), peer_kind=PeerKind.CIDR, peer="10.0.1.0/24")
    kept = replace(rule, rule_id="sgr-0000000000000our2",
                   tags=ownership.rule_tags(CLUSTER, "1a2b3c4d-shop-web-0f1e", T0))
    rules = (V1_RULE, rule, kept)
    mem = remember(Memory(), observe(rules)[0], rules, T0)
    plan = decide(mem, now=T0, rules=rules, history=History(orphaned=((rule.rule_id, T0 - 1000),)))
    assert cleanups(plan) == [("sgr-0000000000000our1", "revoke", "")]


@pytest.mark.parametrize("lb_name", ["1a2b3c4d-shop-web-0f1e", "elbv2.k8s.aws/targetGroupBinding=shared",
                                     "a=b,c=d", "x" * 300, ""])
def test_our_description_never_parses_as_the_v2_label(lb_name):
    text = ownership.description(lb_name, T0)
    assert not controllers.has_shared_label(text)
    assert controllers.description_labels(text) == {}
    assert text.startswith("alb-sg-monitor restored 2023-11-14 for ") and len(text) <= 255


@pytest.mark.parametrize("action, kind, result, label", [
    ("dry_run", "restore", None, "dry_run"),
    ("suppressed", "restore", None, "suppressed"),
    ("restore", "restore", WriteResult("restored"), "restored"),
    ("restore", "restore", WriteResult("duplicate", code="InvalidPermission.Duplicate"), "already_present"),
    ("restore", "restore", WriteResult("failed", code="UnauthorizedOperation"), "failed"),
    ("revoke", "cleanup", WriteResult("cleaned_up"), "cleaned_up"),
    ("revoke", "cleanup", WriteResult("refused", code="NotOurs"), "failed"),
])
def test_every_decision_maps_to_one_remediations_total_result(action, kind, result, label):
    assert policy.result_label(Decision(kind=kind, action=action, rule=V1), result) == label


def test_plan_findings_join_the_report():
    report, _ = observe((SSH_RULE,))
    plan = decide(revoked_memory(), history=RULE_LIMIT)
    joined = policy.with_findings(report, plan)
    assert [f.code for f in joined.findings if f.code.startswith("REMEDIATION")] == ["REMEDIATION_FAILED"]
    assert joined.exit_code == 1




# Which lost rules come back: only the ALB's own SGs as source, and only the fewest that re-cover the path.
BACKEND_SG = "sg-0b4c00000000000b4"  # a controller-owned SG on the ALB besides its own (v2's backend SG)
HEALTH = 30081  # the target group's own health-check port: a path needs 30080 and 30081
ALL_FROM_ALB = RuleTuple(NODE_SG, "tcp", 0, 65535, "sg", ALB_SG)
ALL_FROM_BACKEND = RuleTuple(NODE_SG, "tcp", 30000, 32767, "sg", BACKEND_SG)
ANY_FROM_BACKEND = RuleTuple(NODE_SG, "-1", None, None, "sg", BACKEND_SG)
TRAFFIC_FROM_ALB = RuleTuple(NODE_SG, "tcp", 30080, 30080, "sg", ALB_SG)
HEALTH_FROM_ALB = RuleTuple(NODE_SG, "tcp", HEALTH, HEALTH, "sg", ALB_SG)
WORLD_OPEN = RuleTuple(NODE_SG, "tcp", 30080, 30080, "cidr", "0.0.0.0/0")
WORLD_OPEN_BOTH = RuleTuple(NODE_SG, "tcp", 30080, HEALTH, "cidr", "0.0.0.0/0")
SUBNET = RuleTuple(NODE_SG, "tcp", 30080, HEALTH, "cidr", "10.0.1.0/24")
SUBNET6 = RuleTuple(NODE_SG, "tcp", 30080, HEALTH, "cidr6", "::/0")
PREFIX_LIST = RuleTuple(NODE_SG, "tcp", 30080, HEALTH, "prefix_list", "pl-0a1b2c3d4e5f60718")
HEALTH_FROM_CIDR = RuleTuple(NODE_SG, "tcp", HEALTH, HEALTH, "cidr", "10.0.0.0/8")
GONE_SOURCE = RuleTuple(NODE_SG, "tcp", 0, 65535, "sg", "sg-0dead0000000000d2")


def lost_memory(lost_by_port: dict[int, tuple[RuleTuple, ...]], since: float = T1) -> Memory:
    """The memory after an outage began at `since`: for each port of the path, the rules that covered
    it and are gone (a literal memory: what was learnt, not how)."""
    from monitor.core.memory import PathKey, PathMemory
    from tests.support.pure_world import LB_ARN, TG_ARN

    return Memory(paths=tuple(sorted(
        (PathKey(LB_ARN, TG_ARN, "i-0aaa", port), PathMemory(covering=lost, uncovered_since=since, lost=lost))
        for port, lost in lost_by_port.items())))


def restore_plan(lost_by_port, now=AFTER_GRACE, settings=ENFORCE, groups=(ALB_SG,)):
    topo = topology(lbs=(load_balancer(groups=groups),), health_port=str(HEALTH))
    report, observation = observe((SSH_RULE,), topo=topo)
    assert {p for lb in report.load_balancers for path in lb.paths for p in path.missing_ports} == {30080, HEALTH}
    return policy.plan(lost_memory(lost_by_port), report, observation, settings, now, True, History())


@pytest.mark.parametrize("name, lost, groups, expected", [
    ("the world-open rule and the ALB's rule were removed: only the ALB's comes back",
     {30080: (ALL_FROM_ALB, WORLD_OPEN), HEALTH: (ALL_FROM_ALB,)}, (ALB_SG,),
     [(ALL_FROM_ALB, "restore", "")]),
    ("a path only an address range covered is left to a human",
     {30080: (WORLD_OPEN_BOTH,), HEALTH: (WORLD_OPEN_BOTH,)}, (ALB_SG,),
     [(WORLD_OPEN_BOTH, "suppressed", "cidr_not_restored")]),
    ("a subnet CIDR is never restored either", {30080: (SUBNET,), HEALTH: (SUBNET,)}, (ALB_SG,),
     [(SUBNET, "suppressed", "cidr_not_restored")]),
    ("nor an IPv6 CIDR", {30080: (SUBNET6,), HEALTH: (SUBNET6,)}, (ALB_SG,),
     [(SUBNET6, "suppressed", "cidr_not_restored")]),
    ("nor a prefix list", {30080: (PREFIX_LIST,), HEALTH: (PREFIX_LIST,)}, (ALB_SG,),
     [(PREFIX_LIST, "suppressed", "cidr_not_restored")]),
    ("one SG rule re-covers every port: a second one is not restored",
     {30080: (ALL_FROM_ALB, TRAFFIC_FROM_ALB), HEALTH: (ALL_FROM_ALB,)}, (ALB_SG,),
     [(ALL_FROM_ALB, "restore", "")]),
    ("two SG rules that each cover everything: the narrower one",
     {30080: (ALL_FROM_BACKEND, ANY_FROM_BACKEND), HEALTH: (ALL_FROM_BACKEND, ANY_FROM_BACKEND)},
     (ALB_SG, BACKEND_SG), [(ALL_FROM_BACKEND, "restore", "")]),
    ("one SG rule per port: both are needed",
     {30080: (TRAFFIC_FROM_ALB,), HEALTH: (HEALTH_FROM_ALB,)}, (ALB_SG,),
     [(TRAFFIC_FROM_ALB, "restore", ""), (HEALTH_FROM_ALB, "restore", "")]),
    ("the backend SG the ALB uses is the ALB's own source", {30080: (ALL_FROM_BACKEND,), HEALTH: (ALL_FROM_BACKEND,)},
     (ALB_SG, BACKEND_SG), [(ALL_FROM_BACKEND, "restore", "")]),
    ("an SG rule for one port, only a CIDR for the other: the SG rule back, the CIDR reported",
     {30080: (TRAFFIC_FROM_ALB, WORLD_OPEN), HEALTH: (HEALTH_FROM_CIDR,)}, (ALB_SG,),
     [(TRAFFIC_FROM_ALB, "restore", ""), (HEALTH_FROM_CIDR, "suppressed", "cidr_not_restored")]),
    ("a source the ALB no longer uses is not restored; the CIDR next to it neither",
     {30080: (GONE_SOURCE, WORLD_OPEN_BOTH), HEALTH: (GONE_SOURCE, WORLD_OPEN_BOTH)}, (ALB_SG,),
     [(GONE_SOURCE, "suppressed", "source_detached"), (WORLD_OPEN_BOTH, "suppressed", "cidr_not_restored")]),
    ("a source the ALB no longer uses does not matter when the ALB's own rule covers the path",
     {30080: (GONE_SOURCE, ALL_FROM_ALB), HEALTH: (GONE_SOURCE, ALL_FROM_ALB)}, (ALB_SG,),
     [(ALL_FROM_ALB, "restore", "")]),
])
def test_only_the_fewest_rules_from_the_albs_own_groups_come_back(name, lost, groups, expected):
    plan = restore_plan(lost, groups=groups)
    got = [(d.rule, d.action, d.reason) for d in restores(plan)]
    assert sorted(got, key=lambda x: x[0].sort_key()) == sorted(expected, key=lambda x: x[0].sort_key()), name
    remembered = {t for ts in lost.values() for t in ts}
    for write in plan.writes:  # never wider than what was there: exactly a lost tuple, from an SG
        assert write.rule in remembered and write.rule.peer_kind == "sg"


@pytest.mark.parametrize("name, now, settings, reason", [
    ("within grace it waits like any other decision", T1 + 30, ENFORCE, "grace"),
    ("after grace it is left to a human", AFTER_GRACE, ENFORCE, "cidr_not_restored"),
    ("observe mode says the same: this is never a dry run", AFTER_GRACE, Settings(cluster_name=CLUSTER),
     "cidr_not_restored"),
])
def test_a_cidr_rule_is_never_a_write_in_any_mode(name, now, settings, reason):
    plan = restore_plan({30080: (WORLD_OPEN_BOTH,), HEALTH: (WORLD_OPEN_BOTH,)}, now=now, settings=settings)
    (decision,) = restores(plan)
    assert (decision.action, decision.reason) == ("suppressed", reason), name
    assert decision.load_balancers == ("1a2b3c4d-shop-web-0f1e",) and decision.ingresses == (("shop", "web"),)
    assert decision.paths == 2  # both ports of the path depend on it
    assert plan.writes == () and plan.findings == ()


# Another writer: a rule tagged as ours for this cluster that this monitor did not create.
STARTED = T0  # when this monitor began keeping its history (its first cycle)


def tagged(restored_at: float, cluster=CLUSTER, rule_id="sgr-0000000000000our9", rule=V1_RULE) -> Rule:
    return replace(rule, rule_id=rule_id, description=ownership.description("1a2b3c4d-shop-web-0f1e", restored_at),
                   tags=ownership.rule_tags(cluster, "1a2b3c4d-shop-web-0f1e", restored_at))


OURS_AT = T1 + 75.4  # our restore, as recorded in the history (the tag has whole seconds)
WROTE_IT = History(attempts=(Attempt(V1, OURS_AT, CREATED),))
DUPLICATE_ONLY = History(attempts=(Attempt(V1, OURS_AT, "duplicate"),))


@pytest.mark.parametrize("name, rule, history, kwargs, foreign", [
    ("restored by someone else after we started", tagged(T1 + 75), History(), {}, True),
    ("restored by us: in our history", tagged(OURS_AT), WROTE_IT, {}, False),
    ("we only found it there (duplicate): the other one created it", tagged(OURS_AT), DUPLICATE_ONLY, {}, True),
    ("our attempt was for another time", tagged(OURS_AT + 600), WROTE_IT, {}, True),
    ("restored before we started: we cannot know", tagged(STARTED - 10), History(), {}, False),
    ("older than the history we keep", tagged(AFTER_GRACE + 100), History(), {"now": AFTER_GRACE + 100 + 3700}, False),
    ("within the history we keep", tagged(AFTER_GRACE + 100), History(), {"now": AFTER_GRACE + 100 + 3500}, True),
    ("another cluster's monitor: not ours", tagged(T1 + 75, cluster="staging-eks"), History(), {}, False),
    ("no owner tag", replace(tagged(T1 + 75), tags=()), History(), {}, False),
    ("observe mode never writes, so cannot tell", tagged(T1 + 75), History(),
     {"settings": Settings(cluster_name=CLUSTER)}, False),
    ("a replica that is not the leader does not judge", tagged(T1 + 75), History(), {"leader": False}, False),
])
def test_a_rule_with_our_tag_that_we_did_not_write_is_another_writer(name, rule, history, kwargs, foreign):
    rules = (rule, SSH_RULE)
    report, observation = observe(rules)
    now = kwargs.get("now", AFTER_GRACE + 30)
    plan = policy.plan(Memory(), report, observation, kwargs.get("settings", ENFORCE), now,
                       kwargs.get("leader", True), history, started=STARTED)
    found = [f for f in plan.findings if f.code == "FOREIGN_RESTORE"]
    assert bool(found) is foreign, name
    if foreign:
        (finding,) = found
        assert (finding.severity, finding.security_group, finding.rule) == (Severity.WARNING, NODE_SG, rule.rule_id)
        assert finding.load_balancer == "1a2b3c4d-shop-web-0f1e"
        assert "did not create it" in finding.message and "leader election" in finding.message
        assert policy.with_findings(report, plan).exit_code == 0  # a warning: no page by itself


def test_a_rule_learnt_and_lost_while_another_read_failed_is_restored_once_the_observation_is_complete():
    # A draining ip target no ENI owns keeps every cycle incomplete; the other path is still learnt.
    draining = Target("10.0.3.7", 30080, None, None)
    topo = topology(targets=(Target("i-0aaa", 30080, "eni-0aaa", (NODE_SG,), "healthy"), draining))
    healthy = remember(Memory(), observe((V1_RULE, SSH_RULE), topo=topo, failed=True)[0], (V1_RULE, SSH_RULE), T0)
    mem = remember(healthy, observe((SSH_RULE,), topo=topo, failed=True)[0], (SSH_RULE,), T1)
    waiting = decide(mem, topo=topo, failed=True)
    assert [(d.action, d.reason, d.rule) for d in restores(waiting)] == [
        ("suppressed", "incomplete_observation", V1)]
    assert waiting.writes == ()
    (decision,) = restores(decide(mem))  # the draining target is gone: complete again
    assert (decision.action, decision.reason, decision.rule) == ("restore", "", V1)
