"""When the daemon re-discovers, and what it keeps when discovery fails (pure rules)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from monitor.core.model import LoadBalancer, Observation, ReadFailure, TargetGroup, Topology
from monitor.core.topology_delta import carry_topology
from monitor.daemon.topology import incomplete_retry_after, lb_changes


def alb(arn: str) -> LoadBalancer:
    return LoadBalancer(arn=arn, name=arn, lb_type="application", vpc_id="vpc-1", security_groups=("sg-1",),
                        subnet_cidrs=())


def tg(arn: str, *lbs: str) -> TargetGroup:
    return TargetGroup(arn=arn, name=arn, target_type="instance", protocol="HTTP", port=80, vpc_id="vpc-1",
                       health_check_port="traffic-port", health_check_protocol="HTTP", load_balancer_arns=lbs,
                       targets=())


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
    topology("a", known=("b",)),  # b is listed but no longer the cluster's (its tags changed)
    topology("a", "b", failures=(THROTTLED_HEALTH,)),  # partial failures are already marked by discovery
])
def test_otherwise_the_fresh_topology_wins(fresh):
    assert carry_topology(topology("a", "b"), fresh) is fresh


def test_an_alb_missing_from_the_listing_is_kept_until_a_read_of_it_confirms_it_gone():
    """One listing that lacks b proves nothing: b stays, unknown, with its target groups (the one it
    shares with a stays attached to both); out of the ALBs known, so the next check has it read
    again alone if it lists it, or by its ARN if it does not."""
    before = replace(topology("a", "b"), target_groups=(tg("tg-a", "a"), tg("tg-b", "b"), tg("tg-ab", "a", "b")))
    fresh = replace(topology("a"), target_groups=(tg("tg-a", "a"), tg("tg-ab", "a")))
    after = carry_topology(before, fresh)
    assert sorted(lb.arn for lb in after.load_balancers) == ["a", "b"]
    assert after.known_lb_arns == {"a"} and after.incomplete_lbs == {"b"}
    assert {t.arn: set(t.load_balancer_arns) for t in after.target_groups} == {
        "tg-a": {"a"}, "tg-ab": {"a", "b"}, "tg-b": {"b"}}
    assert not after.failures


def test_nothing_to_carry_on_the_first_discovery():
    fresh = topology(failures=(THROTTLED_LISTING,))
    assert carry_topology(None, fresh) is fresh


@pytest.mark.parametrize(("observation", "changes"), [
    (Observation(rules=(), read_groups=frozenset(), live_lb_arns=frozenset({"a", "b", "x"})), set()),
    (Observation(rules=(), read_groups=frozenset(), live_lb_arns=frozenset({"a", "b", "x", "new"}),
                 new_lb_arns=frozenset({"new"})), {"new"}),
    (Observation(rules=(), read_groups=frozenset(), live_lb_arns=frozenset({"a", "x"})), {"b"}),
    # another cluster's LB went away: not ours, nothing to re-discover
    (Observation(rules=(), read_groups=frozenset(), live_lb_arns=frozenset({"a", "b"})), set()),
    # the listing failed this cycle: no evidence either way
    (Observation(rules=(), read_groups=frozenset(), live_lb_arns=None), set()),
])
def test_a_check_asks_for_discovery_when_albs_come_or_go(observation, changes):
    assert lb_changes(topology("a", "b", known=("x",)), observation) == changes


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


# -- merging an incremental change (pure) -------------------------------------------------------

from monitor.core.model import SecurityGroup, Target, TargetGroup  # noqa: E402
from monitor.core.topology_delta import Delta, changed_security_groups, merge  # noqa: E402


def tg(arn: str, *lbs: str, sg: str = "sg-node") -> TargetGroup:
    return TargetGroup(arn=arn, name=arn, target_type="instance", protocol="HTTP", port=80, vpc_id="vpc-1",
                       health_check_port="traffic-port", load_balancer_arns=lbs,
                       targets=(Target(target_id="i-1", port=80, eni_id="eni-1", security_groups=(sg,), state="healthy"),))


def world(lbs: tuple[str, ...], tgs: tuple[TargetGroup, ...], known: tuple[str, ...] = (),
          failures: tuple[ReadFailure, ...] = (), incomplete: frozenset[str] = frozenset()) -> Topology:
    return Topology(cluster="c", region="r", load_balancers=tuple(alb(a) for a in lbs), target_groups=tgs,
                    security_groups=(SecurityGroup("sg-1", "alb", "", "vpc-1"),), known_lb_arns=frozenset(lbs + known),
                    failures=failures, incomplete_lbs=incomplete)


def test_a_new_alb_is_added_and_known_and_the_old_failures_still_hold():
    before = world(("a",), (tg("tg-a", "a"),), known=("x",), failures=(THROTTLED_HEALTH,))
    fresh = world(("n",), (tg("tg-n", "n"),), known=("other-cluster",))
    after = merge(before, Delta(fresh, reread=frozenset({"n", "other-cluster"}), carried_failures=before.failures))
    assert [lb.arn for lb in after.load_balancers] == ["a", "n"]
    assert [t.arn for t in after.target_groups] == ["tg-a", "tg-n"]
    assert after.known_lb_arns == {"a", "x", "n", "other-cluster"}
    assert after.failures == (THROTTLED_HEALTH,)


def test_a_gone_alb_takes_its_own_target_groups_and_leaves_shared_ones_to_the_others():
    before = world(("a", "b"), (tg("tg-a", "a"), tg("tg-shared", "a", "b")))
    after = merge(before, Delta(world((), ()), gone=frozenset({"a"})))
    assert [lb.arn for lb in after.load_balancers] == ["b"]
    assert [(t.arn, t.load_balancer_arns) for t in after.target_groups] == [("tg-shared", ("b",))]
    assert "a" not in after.known_lb_arns


def test_a_reread_alb_gets_its_fresh_target_groups_shared_ones_keep_both_albs():
    before = world(("a", "b"), (tg("tg-a-old", "a"), tg("tg-shared", "a", "b")))
    fresh = world(("a",), (tg("tg-shared", "a", sg="sg-new"), tg("tg-a-new", "a")))
    after = merge(before, Delta(fresh, reread=frozenset({"a"})))
    shared = next(t for t in after.target_groups if t.arn == "tg-shared")
    assert set(shared.load_balancer_arns) == {"a", "b"} and shared.targets[0].security_groups == ("sg-new",)
    assert sorted(t.arn for t in after.target_groups) == ["tg-a-new", "tg-shared"]


def test_a_reread_that_failed_is_not_known_so_the_next_check_asks_again_and_its_alb_is_unknown():
    before = world(("a",), (tg("tg-a", "a"),))
    fresh = world(("n",), (), failures=(THROTTLED_HEALTH,), incomplete=frozenset({"n"}))
    after = merge(before, Delta(fresh, reread=frozenset({"n"})))
    assert "n" not in after.known_lb_arns and "n" in after.incomplete_lbs
    assert after.failures == (THROTTLED_HEALTH,)
    listing = Observation(rules=(), read_groups=frozenset(), live_lb_arns=frozenset({"a", "n"}),
                          new_lb_arns=frozenset({"n"}))
    assert lb_changes(after, listing) == {"n"}


def test_an_alb_listed_with_other_security_groups_is_a_change():
    topology = world(("a", "b"), ())
    observation = Observation(rules=(), read_groups=frozenset(), live_lb_arns=frozenset({"a", "b"}),
                              lb_security_groups=(("a", ("sg-1",)), ("b", ("sg-1", "sg-2"))))
    assert changed_security_groups(topology, observation) == {"b"}
