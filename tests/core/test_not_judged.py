"""A path whose target's address no ENI of the account owns is `not_judged`: never reachable, never a
finding, nothing counted as a revocation, nothing remembered for a restore."""

from __future__ import annotations

from dataclasses import replace

from monitor.core.memory import Memory, PathKey, PathMemory, RuleTuple, remember
from monitor.core.model import Target
from monitor.core.transitions import Coverage, advance
from tests.support.pure_world import LB_ARN, NODE_SG, TG_ARN, V1_RULE, observe, topology

COVERED = Target("i-0aaa", 30080, "eni-0aaa", (NODE_SG,), "healthy")
FAR = Target("192.168.50.10", 30080, None, None, "healthy", address="192.168.50.10", outside=True,
             unjudged="no ENI of the account owns this address")


def lb_of(targets, rules=(V1_RULE,), **kwargs):
    report, observation = observe(list(rules), topo=topology(targets=targets), **kwargs)
    lb, = report.load_balancers
    return report, lb


def test_reachability_is_over_the_judged_paths_only():
    report, lb = lb_of((COVERED, FAR))
    assert [p.state for p in lb.paths] == ["covered", "not_judged"]
    assert lb.reachable is True and report.exit_code == 0 and report.complete

    report, lb = lb_of((FAR,))
    assert [p.state for p in lb.paths] == ["not_judged"] and lb.not_judged
    assert lb.reachable is None and report.exit_code == 0 and report.complete

    report, lb = lb_of((replace(COVERED, security_groups=()), FAR), rules=())  # the judged one cut
    assert lb.reachable is False and [p.state for p in lb.paths] == ["uncovered", "not_judged"]


def test_a_not_judged_path_raises_no_finding_even_where_the_albs_egress_is_shut():
    # No outbound rule on the ALB's group: a judged path to that address would be EGRESS_BLOCKED.
    report, lb = lb_of((FAR,), lb_groups=())
    path, = lb.paths
    assert path.covered is None and path.egress_allowed is None and path.not_judged_reason
    assert [f.code for f in report.findings if f.load_balancer == "1a2b3c4d-shop-web-0f1e"
            and f.code != "UNADOPTED_LOAD_BALANCER"] == []


def test_a_path_not_judged_in_between_is_forgotten_not_counted_as_revoked():
    covered, _ = lb_of((COVERED,))
    far, _ = lb_of((replace(FAR, target_id="i-0aaa"),))  # the same path key, not judged now
    cut, _ = lb_of((COVERED,), rules=())
    coverage, _ = advance(Coverage(), covered)
    coverage, revoked = advance(coverage, far)
    assert revoked == () and coverage.known == {}
    _, revoked = advance(coverage, cut)
    assert revoked == ()  # nothing known to have been covered just before


def test_nothing_is_remembered_for_a_not_judged_path():
    key = PathKey(LB_ARN, TG_ARN, "i-0aaa", 30080)
    cut = Memory(paths=((key, PathMemory(covering=(RuleTuple.of(V1_RULE),), uncovered_since=100.0,
                                         lost=(RuleTuple.of(V1_RULE),))),))
    report, _ = lb_of((replace(FAR, target_id="i-0aaa"),))
    assert report.complete
    assert remember(cut, report, (), 200.0).get(key) is None  # no rule of its is restored later
