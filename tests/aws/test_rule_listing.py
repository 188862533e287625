"""The rule check's listing at more than 200 groups (an SG per ALB, from 200 ALBs on): the account's
whole DescribeSecurityGroupRules listing when it takes fewer pages than the filtered calls, the
filtered calls when it would not, and unknown (never a verdict, never a second try that cycle)
when it fails. Against a moto server of this module's own, so that "the account" is this world;
the proxy pages answers as AWS does (moto answers every rule at once)."""

from __future__ import annotations

import math

import pytest

from bench.benchmark import start_moto, stop
from monitor import aws
from monitor.aws.discover import discover
from monitor.aws.rules import WHOLE_LISTING_RETRY_SECONDS, RuleReader, to_rule
from monitor.demo import world as demo_world
from tests.support.awsproxy import EMPTY, THROTTLE, AwsProxy
from tests.support.stubbed import stubbed

EXTRA_ALBS = 200
RULES = "securityGroupRuleSet"


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def account():
    server, endpoint = start_moto("moto.server")
    try:
        world = demo_world.seed(endpoint, cluster="listing-eks", extra_albs=EXTRA_ALBS)
        rules = len(world.clients()["ec2"].describe_security_group_rules()["SecurityGroupRules"])
        yield world, rules
    finally:
        stop(server)


@pytest.fixture
def counted(account, aws_env, monkeypatch):
    world, rules = account
    with AwsProxy(world.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        clients = aws.connect("ap-northeast-1")
        topology = discover(clients, world.cluster)
        groups = topology.target_group_ids | {g for lb in topology.load_balancers for g in lb.security_groups}
        assert len(groups) > 200  # two filtered calls' worth
        proxy.reset_counts()
        yield proxy, clients, topology, rules


def rule_calls(proxy: AwsProxy) -> int:
    return proxy.requests[("ec2", "DescribeSecurityGroupRules")]


def seen(observation) -> tuple:
    return (sorted(r.rule_id for r in observation.rules), sorted(r.rule_id for r in observation.egress_rules),
            sorted(observation.read_groups))


def test_the_whole_listing_replaces_the_filtered_calls_when_it_takes_fewer_pages(counted):
    proxy, clients, topology, rules = counted
    proxy.paginate("DescribeSecurityGroupRules", RULES, 1000)  # AWS's largest page
    assert math.ceil(rules / 1000) < 2  # this account: one page, where filtering takes two calls
    whole = RuleReader(clients).read(topology)
    assert not whole.failures and rule_calls(proxy) == 1
    # the same rules and groups as the filtered calls read (forced here by a whole listing found dearer)
    filtered_reader = RuleReader(clients)
    filtered_reader._whole_after = float("inf")
    proxy.reset_counts()
    filtered = filtered_reader.read(topology)
    assert rule_calls(proxy) == 2 and seen(whole) == seen(filtered)
    assert whole.rules and whole.egress_rules  # the listing kept inbound and outbound rules of our groups


def test_a_whole_listing_dearer_than_the_filtered_calls_is_dropped_for_an_hour(counted):
    proxy, clients, topology, rules = counted
    proxy.paginate("DescribeSecurityGroupRules", RULES, rules - 1)  # the whole account: two pages
    clock = Clock()
    reader = RuleReader(clients, monotonic=clock)
    first = reader.read(topology)
    # two pages of the whole listing (dropped at the second), then the two filtered calls
    assert not first.failures and rule_calls(proxy) == 4
    proxy.reset_counts()
    clock.now += WHOLE_LISTING_RETRY_SECONDS - 1
    assert seen(reader.read(topology)) == seen(first) and rule_calls(proxy) == 2
    proxy.reset_counts()
    clock.now += 2  # an hour on: the account may have shrunk, so it is tried again
    reader.read(topology)
    assert rule_calls(proxy) == 4


def test_a_failed_whole_listing_leaves_every_group_unknown_and_is_not_retried_that_cycle(counted):
    proxy, clients, topology, _ = counted
    proxy.fail(["DescribeSecurityGroupRules"], kind=THROTTLE, times=1)
    observation = RuleReader(clients).read(topology)
    assert observation.read_groups == frozenset() and observation.rules == ()
    assert [(f.operation, f.code) for f in observation.failures] == [("DescribeSecurityGroupRules", "RequestLimitExceeded")]
    assert rule_calls(proxy) == 1


def test_an_empty_whole_listing_is_doubted_and_the_groups_read_filtered_instead(counted):
    """No rule at all in an account holding the groups asked about: the filtered calls are made, and
    answering nothing too, against DescribeSecurityGroups showing rules, leave the groups unknown,
    never every rule revoked."""
    proxy, clients, topology, _ = counted
    proxy.fail(["DescribeSecurityGroupRules"], kind=EMPTY, service="ec2")
    observation = RuleReader(clients).read(topology)
    assert observation.read_groups == frozenset() and observation.rules == ()
    assert {(f.operation, f.code) for f in observation.failures} == {("DescribeSecurityGroupRules", "EmptyAnswer")}
    assert rule_calls(proxy) == 3  # the whole listing, then two filtered calls of 200 groups


# --- literal answers ---------------------------------------------------------------------------

GROUP = {"GroupId": "sg-0aaaaaaaaaaaaaaa1", "GroupName": "k8s-shop", "VpcId": "vpc-1", "Description": "alb"}
RULE = {"SecurityGroupRuleId": "sgr-1", "GroupId": GROUP["GroupId"], "IsEgress": False, "IpProtocol": "tcp",
        "FromPort": 443, "ToPort": 443, "CidrIpv4": "0.0.0.0/0"}


def test_groups_answered_with_no_rule_while_they_hold_some_are_unread():
    with stubbed() as (clients, stubs):
        stubs["ec2"].add_response("describe_security_group_rules", {"SecurityGroupRules": []})
        stubs["ec2"].add_response("describe_security_groups", {"SecurityGroups": [
            {**GROUP, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                         "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}]})
        failures: list = []
        raw, read = RuleReader(clients)._rules_of([GROUP["GroupId"]], failures)
    assert raw == [] and read == set()  # unknown, not "every rule revoked"
    assert [(f.operation, f.code) for f in failures] == [("DescribeSecurityGroupRules", "EmptyAnswer")]


def test_groups_that_truly_hold_no_rule_are_read_as_such():
    with stubbed() as (clients, stubs):
        stubs["ec2"].add_response("describe_security_group_rules", {"SecurityGroupRules": []})
        stubs["ec2"].add_response("describe_security_groups", {"SecurityGroups": [
            {**GROUP, "IpPermissions": [], "IpPermissionsEgress": []}]})
        failures: list = []
        raw, read = RuleReader(clients)._rules_of([GROUP["GroupId"]], failures)
    assert raw == [] and read == {GROUP["GroupId"]} and not failures


def test_rules_listed_cost_no_confirming_read():
    with stubbed() as (clients, stubs):
        stubs["ec2"].add_response("describe_security_group_rules", {"SecurityGroupRules": [RULE]})
        failures: list = []
        raw, read = RuleReader(clients)._rules_of([GROUP["GroupId"]], failures)
    assert raw == [RULE] and read == {GROUP["GroupId"]} and not failures


def test_a_prefix_list_answered_with_no_entry_is_unknown_and_read_again():
    with stubbed() as (clients, stubs):
        reader = RuleReader(clients)
        stubs["ec2"].add_response("get_managed_prefix_list_entries", {"Entries": []})
        failures: list = []
        assert reader._resolve_prefix_lists([prefix_rule()], failures) == ()
        assert [(f.operation, f.code, f.scope) for f in failures] == [
            ("GetManagedPrefixListEntries", "EmptyAnswer", "pl-0123456789abcdef0")]
        stubs["ec2"].add_response("get_managed_prefix_list_entries", {"Entries": [{"Cidr": "10.0.0.0/24"}]})
        assert reader._resolve_prefix_lists([prefix_rule()], []) == (("pl-0123456789abcdef0", ("10.0.0.0/24",)),)


def prefix_rule():
    return to_rule({**RULE, "CidrIpv4": None, "PrefixListId": "pl-0123456789abcdef0"})
