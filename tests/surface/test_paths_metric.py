"""albsg_paths: the paths of the last check by state, every state rendered, at 0 when none."""

from __future__ import annotations

from monitor.core.model import LoadBalancerResult, PathResult, Report
from monitor.surface.metrics import Metrics
from tests.surface.test_metrics import samples, value

STATES = ("covered", "uncovered", "unknown", "not_judged")


def path(target: str, covered: bool | None, judged: bool = True) -> PathResult:
    return PathResult("arn:lb", "arn:tg", target, (8080,), (), covered, judged=judged)


def test_every_state_is_rendered_and_not_judged_paths_are_counted_apart():
    m = Metrics()
    assert not any(name == "albsg_paths" for name, _ in samples(m))  # no cycle yet: nothing claimed
    m.publish(Report(cluster="c", region="r", complete=True, findings=(), load_balancers=()), now=1.0)
    assert {s: value(m, "albsg_paths", state=s) for s in STATES} == dict.fromkeys(STATES, 0)

    lb = LoadBalancerResult("web", "arn:lb", "v2", ("sg-1",), True, (
        path("10.0.1.5", True), path("10.0.1.6", True), path("192.168.50.10", None, judged=False)))
    m.publish(Report(cluster="c", region="r", complete=True, findings=(), load_balancers=(lb,)), now=2.0)
    assert {s: value(m, "albsg_paths", state=s) for s in STATES} == {
        "covered": 2, "uncovered": 0, "unknown": 0, "not_judged": 1}
