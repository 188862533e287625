"""The memory of rules that covered each path: what it learns, what it refuses to learn, its JSON."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from monitor.core import memory
from monitor.core.errors import StateError
from monitor.core.evaluate import evaluate
from monitor.core.memory import Memory, PathKey, PathMemory, RuleTuple, remember
from monitor.core.model import PeerKind, ReadFailure, Rule, Target
from tests.support.pure_world import (
    ALB_SG,
    CLUSTER_SG,
    LB_ARN,
    NODE_SG,
    SSH_RULE,
    TG_ARN,
    V1_RULE,
    load_balancer,
    observe,
    topology,
    with_description,
)

KEY = PathKey(LB_ARN, TG_ARN, "i-0aaa", 30080)
V1 = RuleTuple.of(V1_RULE)


def step(previous: Memory, rules, now: float, **kwargs) -> Memory:
    report, observation = observe(rules, **kwargs)
    return remember(previous, report, observation.rules, now)


def test_a_covered_path_remembers_the_rule_that_covers_it_and_ignores_others():
    mem = step(Memory(), [V1_RULE, SSH_RULE], 100.0)
    assert mem.get(KEY) == PathMemory(covering=(V1,))
    assert V1 == RuleTuple(NODE_SG, "tcp", 0, 65535, "sg", ALB_SG)


def test_a_revoked_rule_is_lost_from_the_first_uncovered_sighting_until_it_is_back():
    healthy = step(Memory(), [V1_RULE, SSH_RULE], 100.0)
    revoked = step(healthy, [SSH_RULE], 115.0)
    assert revoked.get(KEY) == PathMemory(covering=(V1,), uncovered_since=115.0, lost=(V1,))
    still = step(revoked, [SSH_RULE], 130.0)
    assert still.get(KEY).uncovered_since == 115.0  # the outage started at the first sighting
    back = step(still, [V1_RULE, SSH_RULE], 145.0)
    assert back.get(KEY) == PathMemory(covering=(V1,))


def test_the_description_is_not_part_of_a_rules_identity():
    healthy = step(Memory(), [V1_RULE], 100.0)
    relabelled = with_description(V1_RULE, "alb-sg-monitor restored 2025-01-01 for shop", "sgr-0000000000000new1")
    assert step(healthy, [relabelled], 115.0).get(KEY) == PathMemory(covering=(V1,))


def test_an_unknown_path_keeps_what_was_remembered():
    healthy = step(Memory(), [V1_RULE], 100.0)
    # the ENI could not be looked up: its SGs are unknown, so is the path
    topo = topology(targets=(Target("i-0aaa", 30080, None, None),))
    after = step(healthy, [], 115.0, topo=topo)
    assert after.get(KEY) == healthy.get(KEY)


# One target whose ENI no one owns (a pod's ip target draining): its path is unknown and the whole
# report incomplete, while the other target's path was decided on reads that all succeeded.
DRAINING = Target("10.0.3.7", 30080, None, None)
KEY_DRAINING = PathKey(LB_ARN, TG_ARN, "10.0.3.7", 30080)
NO_ENI = ReadFailure("ec2", "DescribeNetworkInterfaces", "NoMatchingInterface", "no ENI owns 10.0.3.7")


def step_draining(previous: Memory, rules, now: float) -> Memory:
    topo = topology(targets=(Target("i-0aaa", 30080, "eni-0aaa", (NODE_SG,), "healthy"), DRAINING))
    _, observation = observe(rules, topo=topo)
    report = evaluate(topo, replace(observation, failures=(NO_ENI,)))
    assert not report.complete
    return remember(previous, report, observation.rules, now)


def test_an_incomplete_report_still_learns_the_paths_it_decided():
    mem = step_draining(Memory(), [V1_RULE, SSH_RULE], 100.0)
    assert mem.get(KEY) == PathMemory(covering=(V1,))
    assert mem.get(KEY_DRAINING) is None  # unknown: nothing learnt about it
    revoked = step_draining(mem, [SSH_RULE], 115.0)
    assert revoked.get(KEY) == PathMemory(covering=(V1,), uncovered_since=115.0, lost=(V1,))


def test_an_incomplete_report_forgets_nothing_and_a_complete_one_forgets_what_is_gone():
    healthy = step(Memory(), [V1_RULE], 100.0)
    other = load_balancer(name="k8s-shop-api-0123456789", arn=LB_ARN.replace("shop-web", "shop-api"))
    # The ALB is missing from a cycle that failed a read: it may just have been unreadable.
    kept = step(healthy, [V1_RULE], 115.0, topo=topology(lbs=(other,)), failed=True)
    assert kept.get(KEY) == healthy.get(KEY)
    assert kept.get(replace(KEY, load_balancer_arn=other.arn)) == PathMemory(covering=(V1,))
    forgotten = step(kept, [V1_RULE], 130.0, topo=topology(lbs=(other,)))
    assert forgotten.get(KEY) is None


def test_a_rule_replaced_by_another_that_covers_the_path_is_not_lost():
    healthy = step(Memory(), [V1_RULE], 100.0)
    v2_rule = Rule(NODE_SG, "tcp", 30000, 32767, PeerKind.SECURITY_GROUP, ALB_SG, rule_id="sgr-00000000000000v2",
                   description="elbv2.k8s.aws/targetGroupBinding=shared")
    after = step(healthy, [v2_rule], 115.0)
    assert after.get(KEY) == PathMemory(covering=(RuleTuple.of(v2_rule),))


def test_traffic_and_health_check_ports_are_remembered_apart():
    health = Rule(NODE_SG, "tcp", 8080, 8080, PeerKind.SECURITY_GROUP, ALB_SG, rule_id="sgr-000000000000hc80")
    traffic = Rule(NODE_SG, "tcp", 30080, 30080, PeerKind.SECURITY_GROUP, ALB_SG, rule_id="sgr-000000000000tr80")
    topo = topology(health_port="8080")
    healthy = step(Memory(), [health, traffic], 100.0, topo=topo)
    after = step(healthy, [traffic], 115.0, topo=topo)
    assert after.get(replace(KEY, port=8080)).lost == (RuleTuple.of(health),)
    assert after.get(KEY) == PathMemory(covering=(RuleTuple.of(traffic),))


def test_a_udp_path_remembers_the_udp_rule_not_a_tcp_rule_on_the_same_port():
    # A UDP service: udp 30080 for traffic, tcp 8080 for the health check, exactly what v2 writes.
    udp = Rule(NODE_SG, "udp", 30080, 30080, PeerKind.SECURITY_GROUP, ALB_SG, rule_id="sgr-0000000000000udp")
    tcp_same_port = Rule(NODE_SG, "tcp", 30080, 30080, PeerKind.SECURITY_GROUP, ALB_SG, rule_id="sgr-00000000000tcp80")
    health = Rule(NODE_SG, "tcp", 8080, 8080, PeerKind.SECURITY_GROUP, ALB_SG, rule_id="sgr-000000000000hc80")
    topo = topology(health_port="8080")
    topo = replace(topo, target_groups=(replace(topo.target_groups[0], protocol="UDP", health_check_protocol="TCP"),))
    healthy = step(Memory(), [udp, tcp_same_port, health], 100.0, topo=topo)
    assert healthy.get(KEY) == PathMemory(covering=(RuleTuple.of(udp),))
    after = step(healthy, [tcp_same_port, health], 115.0, topo=topo)  # the udp rule revoked
    assert after.get(KEY) == PathMemory(covering=(RuleTuple.of(udp),), uncovered_since=115.0,
                                        lost=(RuleTuple.of(udp),))


def test_a_rule_without_an_id_is_matched_by_the_name_evaluate_gives_it():
    anonymous = replace(V1_RULE, rule_id=None)
    assert step(Memory(), [anonymous], 100.0).get(KEY) == PathMemory(covering=(V1,))


def test_paths_that_no_longer_exist_are_forgotten():
    healthy = step(Memory(), [V1_RULE], 100.0)
    other = load_balancer(name="k8s-shop-api-0123456789", arn=LB_ARN.replace("shop-web", "shop-api"))
    assert step(healthy, [V1_RULE], 115.0, topo=topology(lbs=(other,))).get(KEY) is None


def test_a_path_never_seen_healthy_has_nothing_to_restore():
    mem = step(Memory(), [SSH_RULE], 100.0)
    assert mem.get(KEY) == PathMemory(covering=(), uncovered_since=100.0, lost=())


def test_a_remembered_rule_that_still_exists_but_no_longer_admits_the_alb_is_not_lost():
    healthy = step(Memory(), [V1_RULE], 100.0)
    after = step(healthy, [V1_RULE], 115.0, lb_groups=(CLUSTER_SG,))  # the ALB's SG was swapped
    assert after.get(KEY) == PathMemory(covering=(V1,), uncovered_since=115.0, lost=())


def test_memory_survives_a_json_round_trip():
    revoked = step(step(Memory(), [V1_RULE, SSH_RULE], 100.0), [SSH_RULE], 115.0)
    text = json.dumps(memory.to_json(revoked))
    assert memory.from_json(json.loads(text)) == revoked
    assert json.loads(text)["schema"] == "alb-sg-monitor/memory" and json.loads(text)["version"] == 1


GOOD_PATH = {"load_balancer": LB_ARN, "target_group": TG_ARN, "target": "i-0aaa", "port": 30080,
             "covering": [V1.to_json()], "uncovered_since": None, "lost": []}


@pytest.mark.parametrize("document, problem", [
    ([], "not an alb-sg-monitor/memory document"),
    ({"paths": []}, "not an alb-sg-monitor/memory document"),
    ({"schema": "something-else", "version": 1, "paths": []}, "not an alb-sg-monitor/memory document"),
    ({"schema": "alb-sg-monitor/memory", "version": 2, "paths": []}, "version 2 is not supported"),
    ({"schema": "alb-sg-monitor/memory", "version": 1, "paths": {}}, "paths must be a list"),
    ({"schema": "alb-sg-monitor/memory", "version": 1, "paths": [{**GOOD_PATH, "port": "80"}]}, "port must be an integer"),
    ({"schema": "alb-sg-monitor/memory", "version": 1,
      "paths": [{**GOOD_PATH, "covering": [{**V1.to_json(), "peer_kind": "dns"}]}]}, "unknown peer_kind"),
    ({"schema": "alb-sg-monitor/memory", "version": 1,
      "paths": [{**GOOD_PATH, "covering": [{**V1.to_json(), "from_port": "0"}]}]}, "from_port must be an integer"),
])
def test_a_corrupt_or_foreign_memory_document_is_a_clear_error(document, problem):
    with pytest.raises(StateError, match=problem):
        memory.from_json(document)


def test_a_lost_rule_keeps_its_id_in_the_state_and_an_older_document_without_ids_still_reads():
    healthy = step(Memory(), [V1_RULE, SSH_RULE], 100.0)
    revoked = step(healthy, [SSH_RULE], 115.0)
    (lost,) = revoked.get(KEY).lost
    assert V1_RULE.rule_id and lost.rule_id == V1_RULE.rule_id
    again = memory.from_json(json.loads(json.dumps(memory.to_json(revoked))))
    assert again.get(KEY).lost[0].rule_id == V1_RULE.rule_id
    old = memory.to_json(revoked)
    for path in old["paths"]:
        for rule in path["covering"] + path["lost"]:
            rule.pop("rule_id", None)
    before = memory.from_json(old)
    assert before == revoked and before.get(KEY).lost[0].rule_id is None


def test_a_port_left_unknown_on_a_path_uncovered_elsewhere_keeps_its_rules_until_a_complete_report():
    health = Rule(NODE_SG, "tcp", 8080, 8080, PeerKind.CIDR, "10.0.0.0/16", rule_id="sgr-000000000000hc80")
    traffic = Rule(NODE_SG, "tcp", 30080, 30080, PeerKind.SECURITY_GROUP, ALB_SG, rule_id="sgr-000000000000tr80")
    healthy = step(Memory(), [health, traffic], 100.0, topo=topology(health_port="8080"))
    assert healthy.get(replace(KEY, port=8080)) == PathMemory(covering=(RuleTuple.of(health),))
    # The subnets were not read, so the CIDR rule's coverage of 8080 is unknown; 30080 is plainly uncovered.
    blind = topology(lbs=(replace(load_balancer(), subnets_read=False),), health_port="8080")
    after = step(healthy, [health], 115.0, topo=blind, failed=True)
    assert after.get(KEY).lost == (RuleTuple.of(traffic),)
    assert after.get(replace(KEY, port=8080)) == healthy.get(replace(KEY, port=8080))
