"""Target groups and targets one answer empties are believed only when the next read agrees (pure)."""

from __future__ import annotations

from dataclasses import replace

from monitor.core.model import LoadBalancer, Target, TargetGroup, Topology
from monitor.core.vanished import SeenBefore, doubt


def alb(arn: str) -> LoadBalancer:
    return LoadBalancer(arn=arn, name=f"name-{arn}", lb_type="application", vpc_id="vpc-1",
                        security_groups=("sg-1",), subnet_cidrs=())


def tg(arn: str, lb: str, targets: tuple[Target, ...] | None) -> TargetGroup:
    return TargetGroup(arn=arn, name=arn, target_type="instance", protocol="HTTP", port=80, vpc_id="vpc-1",
                       health_check_port="traffic-port", load_balancer_arns=(lb,), targets=targets)


NODE = Target("i-1", 30080, "eni-1", ("sg-node",))
BEFORE = Topology(cluster="c", region="r", load_balancers=(alb("a"), alb("b")), target_groups=(
    tg("tg-a", "a", (NODE,)), tg("tg-b", "b", (NODE,))), security_groups=())


def test_a_target_group_emptied_by_one_answer_is_unknown_then_believed_when_the_next_read_agrees():
    emptied = replace(BEFORE, target_groups=(tg("tg-a", "a", ()), tg("tg-b", "b", (NODE,))))
    first, doubted = doubt(emptied, SeenBefore.of(BEFORE), frozenset())
    assert first.incomplete_lbs == {"a"} and doubted == {"tg-a"}
    assert [(f.operation, f.code, f.scope) for f in first.failures] == [("DescribeTargetHealth", "EmptyAnswer", "tg-a")]
    # The retry reads it empty again: believed (scaled to zero), whether the remembered paths still
    # name it (the incomplete report forgot nothing) or only the doubted topology is left to go by.
    assert doubt(emptied, SeenBefore.of(first, [("a", "tg-a")]), doubted) == (emptied, {"tg-a"})
    assert doubt(emptied, SeenBefore.of(first), doubted) == (emptied, frozenset())


def test_an_alb_left_with_no_target_group_is_unknown_once_and_remembered_paths_count_as_seen():
    bare = replace(BEFORE, target_groups=(tg("tg-b", "b", (NODE,)),))
    # a fresh daemon: no topology before, but its state file remembers a path of a through tg-a
    first, doubted = doubt(bare, SeenBefore.of(None, [("a", "tg-a")]), frozenset())
    assert first.incomplete_lbs == {"a"} and doubted == {"a"}
    assert [f.operation for f in first.failures] == ["DescribeTargetGroups"]


def test_what_was_never_seen_with_targets_is_taken_as_read():
    never = replace(BEFORE, target_groups=(tg("tg-a", "a", ()), tg("tg-b", "b", None)))
    assert doubt(never, SeenBefore.of(None), frozenset()) == (never, frozenset())
    # unread (None) is not emptied: discovery already made that ALB unknown
    assert doubt(never, SeenBefore.of(BEFORE), frozenset())[0].incomplete_lbs == {"a"}
