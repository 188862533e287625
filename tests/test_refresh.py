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


@pytest.mark.parametrize(("failed_refreshes", "after"), [
    (1, 15.0),  # the first incomplete discovery: again at the next check
    (2, 30.0),  # still failing: back off
    (3, 60.0),
    (7, 60.0),  # never more than four intervals apart
])
def test_an_incomplete_discovery_is_retried_at_the_next_check_then_backs_off(failed_refreshes, after):
    assert incomplete_retry_after(failed_refreshes, interval=15.0, topology_interval=300.0) == after
    assert incomplete_retry_after(failed_refreshes, interval=15.0, topology_interval=10.0) == 10.0


def test_changes_already_discovered_are_not_changes():
    seen = topology("a", "b", known=("new",))
    observation = Observation(rules=(), read_groups=frozenset(), live_lb_arns=frozenset({"a", "new"}),
                              new_lb_arns=frozenset({"new"}))  # read against a topology without "new"
    assert lb_changes(seen, observation) == {"b"}
