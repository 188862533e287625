"""When the daemon re-discovers, and what it keeps when discovery fails (pure rules)."""

from __future__ import annotations

import pytest

from monitor.daemon import carry_topology, incomplete_retry_after, lb_changes, refresh_reason
from monitor.model import LoadBalancer, Observation, ReadFailure, Topology


def alb(arn: str) -> LoadBalancer:
    return LoadBalancer(arn=arn, name=arn, lb_type="application", vpc_id="vpc-1", security_groups=("sg-1",),
                        subnet_cidrs=())


def topology(*arns: str, known: tuple[str, ...] = (), failures: tuple[ReadFailure, ...] = ()) -> Topology:
    return Topology(cluster="c", region="r", load_balancers=tuple(alb(a) for a in arns), target_groups=(),
                    security_groups=(), known_lb_arns=frozenset(arns + known), failures=failures)


THROTTLED_LISTING = ReadFailure("elbv2", "DescribeLoadBalancers", "Throttling", "Rate exceeded")
THROTTLED_HEALTH = ReadFailure("elbv2", "DescribeTargetHealth", "Throttling", "Rate exceeded")


def test_a_failed_listing_keeps_the_known_albs_as_unknown():
    before = topology("a", "b")
    after = carry_topology(before, topology(failures=(THROTTLED_LISTING,)))
    assert [lb.arn for lb in after.load_balancers] == ["a", "b"]
    assert after.incomplete_lbs == {"a", "b"}
    assert after.failures == (THROTTLED_LISTING,)


@pytest.mark.parametrize("fresh", [
    topology("a"),  # b was deleted: believe it
    topology("a", failures=(THROTTLED_HEALTH,)),  # partial failures are already marked by discovery
])
def test_otherwise_the_fresh_topology_wins(fresh):
    assert carry_topology(topology("a", "b"), fresh) is fresh


def test_nothing_to_carry_on_the_first_discovery():
    fresh = topology(failures=(THROTTLED_LISTING,))
    assert carry_topology(None, fresh) is fresh


@pytest.mark.parametrize(("observation", "reason"), [
    (Observation(rules=(), read_groups=frozenset(), live_lb_arns=frozenset({"a", "b", "x"})), None),
    (Observation(rules=(), read_groups=frozenset(), live_lb_arns=frozenset({"a", "b", "x", "new"}),
                 new_lb_arns=frozenset({"new"})), "new_load_balancer"),
    (Observation(rules=(), read_groups=frozenset(), live_lb_arns=frozenset({"a", "x"})), "load_balancer_gone"),
    # another cluster's LB went away: not ours, nothing to re-discover
    (Observation(rules=(), read_groups=frozenset(), live_lb_arns=frozenset({"a", "b"})), None),
    # the listing failed this cycle: no evidence either way
    (Observation(rules=(), read_groups=frozenset(), live_lb_arns=None), None),
])
def test_a_check_asks_for_discovery_when_albs_come_or_go(observation, reason):
    assert refresh_reason(topology("a", "b", known=("x",)), observation) == reason


TIMED_OUT_HEALTH = ReadFailure("elbv2", "DescribeTargetHealth", "ReadTimeoutError",
                               'Read timeout on endpoint URL: "https://elasticloadbalancing.eu-west-1.amazonaws.com/"')
NO_CONNECTION = ReadFailure("ec2", "DescribeNetworkInterfaces", "EndpointConnectionError",
                            'Could not connect to the endpoint URL: "https://ec2.eu-west-1.amazonaws.com/"')


@pytest.mark.parametrize(("failures", "after"), [
    ((TIMED_OUT_HEALTH,), 15.0),  # AWS did not answer in time: at the next check
    ((THROTTLED_HEALTH, NO_CONNECTION), 15.0),
    ((THROTTLED_HEALTH,), 60.0),  # throttled: leave it room, four intervals
])
def test_a_timed_out_discovery_is_retried_at_the_next_check(failures, after):
    assert incomplete_retry_after(failures, interval=15.0, topology_interval=300.0) == after
    assert incomplete_retry_after(failures, interval=15.0, topology_interval=10.0) == 10.0


def test_changes_already_discovered_are_not_changes():
    seen = topology("a", "b", known=("new",))
    observation = Observation(rules=(), read_groups=frozenset(), live_lb_arns=frozenset({"a", "new"}),
                              new_lb_arns=frozenset({"new"}))  # read against a topology without "new"
    assert lb_changes(seen, observation) == {"b"}
