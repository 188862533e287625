"""Target health as the ELB reports it, read over HTTP: moto always answers `healthy`, so the proxy
serves the answer AWS gives after a cut (unhealthy, Target.Timeout), and a throttled read gives no
read at all."""

from __future__ import annotations

from monitor import aws
from monitor.aws.health import read_health


def _timed_out(payload: bytes) -> bytes:
    return payload.replace(b"<State>healthy</State>",
                           b"<State>unhealthy</State><Reason>Target.Timeout</Reason>"
                           b"<Description>Request timed out</Description>")


def test_a_read_says_what_the_elb_says_of_each_target_and_when(world, proxy):
    clients = aws.connect(world.region)
    arn = next(iter(world.tg.values()))
    failures = []
    read = read_health(clients, arn, failures, wall=lambda: 1_000.0)
    assert failures == [] and read is not None and read.at == 1_000.0
    assert read.targets and {t.state for t in read.targets} == {"healthy"}
    assert all(t.target_id.startswith("i-") and t.port > 0 for t in read.targets)

    proxy.rewrite("DescribeTargetHealth", _timed_out)
    cut = read_health(clients, arn, failures, wall=lambda: 1_070.0)
    assert failures == [] and cut is not None
    assert {(t.state, t.reason) for t in cut.targets} == {("unhealthy", "Target.Timeout")}
    assert all(t.network_failure for t in cut.targets)
    assert cut.states() == {"unhealthy": len(read.targets)}


def test_a_throttled_read_is_no_read_and_a_counted_failure(world, proxy):
    clients = aws.connect(world.region)
    arn = next(iter(world.tg.values()))
    proxy.fail(["DescribeTargetHealth"])
    failures = []
    assert read_health(clients, arn, failures, wall=lambda: 5.0) is None
    assert [(f.operation, f.code) for f in failures] == [("DescribeTargetHealth", "Throttling")]


def test_discovery_keeps_each_target_groups_health_check_timing(world, proxy):
    from monitor.core import health

    clients = aws.connect(world.region)
    arn = next(iter(world.tg.values()))
    world.clients()["elbv2"].modify_target_group(TargetGroupArn=arn, HealthCheckIntervalSeconds=10,
                                                 HealthCheckTimeoutSeconds=5, UnhealthyThresholdCount=3)
    topology = aws.discover(clients, world.cluster)
    tg = next(t for t in topology.target_groups if t.arn == arn)
    assert health.timing_of(tg).window == 10 * 3 + 5
