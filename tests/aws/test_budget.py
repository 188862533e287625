"""The AWS request budget, counted by a proxy in front of moto against a 200-ALB cluster.

A failure here means a change made the monitor more expensive for every user: look at the
per-operation counts in the assertion message before raising a number.
"""

from __future__ import annotations

import math

import pytest

from monitor import aws
from monitor.aws.discover import discover
from monitor.aws.rules import RuleReader
from monitor.demo import world as demo_world
from tests.support.awsproxy import AwsProxy

EXTRA_ALBS = 200


@pytest.fixture(scope="module")
def big_world(moto_endpoint):
    return demo_world.seed(moto_endpoint, cluster="budget-eks", extra_albs=EXTRA_ALBS)


@pytest.fixture
def counted(big_world, aws_env, monkeypatch):
    with AwsProxy(big_world.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        yield proxy, aws.connect("ap-northeast-1")


def test_rule_check_costs_one_listing_and_at_most_one_rules_call_per_200_groups(big_world, counted):
    proxy, clients = counted
    topology = discover(clients, big_world.cluster)
    assert len(topology.load_balancers) == EXTRA_ALBS + 5
    # The targets' SGs (inbound rules) and the ALBs' SGs (outbound rules) share one filter: one
    # DescribeSecurityGroupRules per 200 group ids, or fewer with the account's whole listing when
    # it takes fewer pages (here: moto answers it in one; tests/aws/test_rule_listing.py pages as AWS).
    groups = topology.target_group_ids | {g for lb in topology.load_balancers for g in lb.security_groups}
    proxy.reset_counts()
    reader = RuleReader(clients)
    observation = reader.read(topology)
    assert not observation.failures
    first = dict(proxy.requests)
    proxy.reset_counts()
    reader.read(topology)
    steady = dict(proxy.requests)
    assert math.ceil(len(groups) / 200) == 2
    # The network ACLs of the cluster's VPC: one more request a check, whatever the number of ALBs.
    assert steady == {("elbv2", "DescribeLoadBalancers"): 1,
                      ("ec2", "DescribeSecurityGroupRules"): 1,
                      ("ec2", "DescribeNetworkAcls"): 1}, (steady, len(groups))
    # The first read may look up rule sources once, and reads the rules-per-group quota, once per reader.
    assert first.pop(("service-quotas", "GetServiceQuota")) == 1, first
    assert first.pop(("ec2", "DescribeNetworkAcls")) == 1, first
    assert sum(first.values()) <= 2 + math.ceil(len(groups) / 200), first


def test_discovery_is_batched_and_paginated(big_world, counted):
    proxy, clients = counted
    topology = discover(clients, big_world.cluster)
    lbs_in_region = len(topology.known_lb_arns)
    target_groups = len(topology.target_groups)
    counts = dict(proxy.requests)
    expected_max = {
        ("elbv2", "DescribeLoadBalancers"): math.ceil(lbs_in_region / 400),
        ("elbv2", "DescribeTags"): math.ceil(lbs_in_region / 20),
        ("elbv2", "DescribeTargetGroups"): 1,
        ("elbv2", "DescribeTargetHealth"): target_groups,  # the API takes one target group a call
        ("ec2", "DescribeInstances"): 1,
        ("ec2", "DescribeNetworkInterfaces"): 1,
        ("ec2", "DescribeSecurityGroups"): math.ceil((EXTRA_ALBS + 10) / 200),
        ("ec2", "DescribeSubnets"): 1,
    }
    over = {op: (n, expected_max.get(op, 0)) for op, n in counts.items() if n > expected_max.get(op, 0)}
    assert not over, f"over budget: {over}; all counts: {counts}"
    total = sum(counts.values())
    print(f"\ndiscovery of {len(topology.load_balancers)} ALBs: {total} requests ({counts})")
    # one DescribeTargetHealth per target group, plus a handful of paginated listings
    assert total <= sum(expected_max.values())
    assert total - counts[("elbv2", "DescribeTargetHealth")] <= 10 + math.ceil(lbs_in_region / 20)
