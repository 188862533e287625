"""Revocations are covered → uncovered transitions of one path between reports."""

from __future__ import annotations

import pytest

from monitor.core.model import LoadBalancerResult, PathResult, Report
from monitor.core.transitions import Coverage, advance


def report(*states: tuple[str, str, bool | None]) -> Report:
    """(load balancer, target, covered) per path; every path on one target group."""
    by_lb: dict[str, list[PathResult]] = {}
    for lb, target, covered in states:
        by_lb.setdefault(lb, []).append(PathResult(
            load_balancer_arn=f"arn:{lb}", target_group_arn=f"arn:tg-{lb}", target=target, ports=(30080,),
            security_groups=("sg-node",), covered=covered, missing_ports=(30080,) if covered is False else ()))
    lbs = tuple(LoadBalancerResult(name=lb, arn=f"arn:{lb}", adoption="v2", security_groups=("sg-alb",),
                                   reachable=None, paths=tuple(paths)) for lb, paths in by_lb.items())
    return Report(cluster="c", region="r", complete=True, load_balancers=lbs, findings=())


def revocations_along(*reports: Report) -> list[list[tuple[str, str]]]:
    coverage, seen = Coverage(), []
    for r in reports:
        coverage, revoked = advance(coverage, r)
        seen.append([(x.load_balancer, x.target) for x in revoked])
    return seen


@pytest.mark.parametrize(("history", "expected"), [
    # covered then uncovered: one revocation, counted once however long it stays uncovered
    ([True, False, False], [[], [("web", "i-1")], []]),
    # never covered since we started watching: nothing was revoked under our eyes
    ([False, False], [[], []]),
    # unknown in between keeps the last known state
    ([True, None, False], [[], [], [("web", "i-1")]]),
    ([True, None, True], [[], [], []]),
    # restored and revoked again: two revocations
    ([True, False, True, False], [[], [("web", "i-1")], [], [("web", "i-1")]]),
    # first seen unknown, then uncovered: no known covered state, no revocation
    ([None, False], [[], []]),
])
def test_revocations_follow_the_path_history(history, expected):
    assert revocations_along(*(report(("web", "i-1", c)) for c in history)) == expected


def test_a_path_that_disappears_is_forgotten_not_revoked():
    seen = revocations_along(report(("web", "i-1", True), ("api", "i-1", True)),
                             report(("web", "i-1", True)),  # api deleted
                             report(("web", "i-1", True), ("api", "i-1", False)))  # a new api, uncovered
    assert seen == [[], [], []]


def test_revocations_are_per_path_and_name_their_load_balancer():
    seen = revocations_along(report(("web", "i-1", True), ("web", "i-2", True), ("api", "i-1", True)),
                             report(("web", "i-1", False), ("web", "i-2", False), ("api", "i-1", True)))
    assert seen[1] == [("web", "i-1"), ("web", "i-2")]


def test_the_metric_counts_each_alb_once_a_cycle_however_many_paths_it_lost():
    from monitor.core.transitions import revoked_load_balancers

    before = report(("web", "i-1", True), ("web", "i-2", True), ("web", "i-3", True), ("api", "i-1", True))
    after = report(("web", "i-1", False), ("web", "i-2", False), ("web", "i-3", False), ("api", "i-1", True))
    coverage, _ = advance(Coverage(), before)
    _, revoked = advance(coverage, after)
    assert len(revoked) == 3
    assert revoked_load_balancers(revoked) == ("web",)


def test_egress_cut_after_being_allowed_is_a_revocation():
    def one(egress):
        path = PathResult(load_balancer_arn="arn:web", target_group_arn="arn:tg", target="i-1", ports=(30080,),
                          security_groups=("sg-node",), covered=True, egress_allowed=egress)
        lb = LoadBalancerResult(name="web", arn="arn:web", adoption="v2", security_groups=("sg-alb",),
                                reachable=egress, paths=(path,))
        return Report(cluster="c", region="r", complete=True, load_balancers=(lb,), findings=())
    assert revocations_along(one(True), one(None), one(False), one(False)) == [[], [], [("web", "i-1")], []]


def test_a_network_acl_cut_is_a_revocation_of_the_ports_it_stops():
    from monitor.core.model import NaclBlock

    def one(blocks):
        path = PathResult(load_balancer_arn="arn:web", target_group_arn="arn:tg", target="i-1", ports=(30080, 30081),
                          security_groups=("sg-node",), covered=True, nacl_allowed=not blocks, nacl_blocked=blocks)
        lb = LoadBalancerResult(name="web", arn="arn:web", adoption="v2", security_groups=("sg-alb",),
                                reachable=not blocks, paths=(path,))
        return Report(cluster="c", region="r", complete=True, load_balancers=(lb,), findings=())
    request = NaclBlock("acl-1", "90", False, "subnet-1", "tcp", 30081, 30081, "10.0.2.0/24")
    reply = NaclBlock("acl-1", "80", True, "subnet-1", "tcp", 1024, 65535, "10.0.2.0/24", reply=True)
    coverage, _ = advance(Coverage(), one(()))
    _, (revoked,) = advance(coverage, one((request,)))
    assert revoked.missing_ports == (30081,)
    _, (revoked,) = advance(coverage, one((reply,)))
    assert revoked.missing_ports == (30080, 30081)  # no reply comes back on any of them
