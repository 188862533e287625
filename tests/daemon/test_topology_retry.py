"""An incomplete topology is retried by the next check cycle, then less and less often while the
fault lasts (at most every four intervals), so a throttled account is not sent a full discovery every cycle."""

from __future__ import annotations

from monitor import aws
from monitor.daemon.loop import Daemon
from monitor.surface.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_incomplete_topology_retries_at_once_then_backs_off_then_recovers(world, proxy, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clock = Clock()
    daemon = Daemon(aws.connect(None), world.cluster, Metrics(), interval=15.0, topology_interval=300.0,
                    monotonic=clock, wall=clock)
    proxy.fail(["DescribeTargetHealth"])
    refreshed_at = []
    for _ in range(13):
        before = proxy.count(action="DescribeTargetGroups")
        summary = daemon.run_once()
        assert summary.ok and not summary.complete
        if proxy.count(action="DescribeTargetGroups") > before:
            refreshed_at.append(clock.now - 1000.0)
        clock.now += 15.0
    assert refreshed_at == [0.0, 15.0, 45.0, 105.0, 165.0]  # 1, 2, 4 intervals later, then every 4
    proxy.heal()
    clock.now = 1000.0 + 225.0  # the next retry is due
    assert daemon.run_once().complete
    clock.now += 15.0
    before = proxy.count(action="DescribeTargetGroups")
    assert daemon.run_once().complete and proxy.count(action="DescribeTargetGroups") == before
