"""The ELB's word beside the daemon's verdict, over moto through the proxy (moto always answers
`healthy`; the proxy serves what AWS answers after a cut): a cut confirmed, pending within the
window, disputed past it and critical again when the ELB agrees; a throttled read that changes
nothing; reads that never run inside a check."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor import aws
from monitor.daemon.loop import Daemon
from monitor.surface.metrics import Metrics
from tests.support.awsproxy import AwsProxy
from tests.support.fixtures import tiny_aws_env, tiny_moto, tiny_world  # noqa: F401 (fixtures)
from tests.support.tinyworld import CLUSTER, World

WINDOW = 30 * 2 + 6  # moto's target group: HTTP, AWS's defaults


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def timed_out(payload: bytes) -> bytes:
    return payload.replace(b"<State>healthy</State>",
                           b"<State>unhealthy</State><Reason>Target.Timeout</Reason>")


def daemon_behind(proxy: AwsProxy, monkeypatch, health_sweep: float) -> tuple[Daemon, Clock, Metrics]:
    """A daemon whose AWS requests go through the proxy, on a wall clock the test moves."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    clients = aws.connect(None)
    clients.pacer.configure(None)
    clock, metrics = Clock(), Metrics()
    daemon = Daemon(clients, CLUSTER, metrics, interval=10.0, topology_interval=300.0, wall=clock,
                    health_sweep=health_sweep)
    return daemon, clock, metrics


@pytest.fixture
def watched(tiny_world: World, monkeypatch):
    with AwsProxy(tiny_world.endpoint) as proxy:
        # No sweep: these are the reads a verdict change asks for, at once and past the window.
        daemon, clock, metrics = daemon_behind(proxy, monkeypatch, health_sweep=0)
        yield daemon, proxy, clock, metrics


def cut_findings(daemon: Daemon) -> list[tuple[str, str, str | None]]:
    report = daemon.check().report
    return [(f.code, f.severity.value, f.confirmation) for f in report.findings
            if f.code in ("ACCESS_REVOKED", "VERDICT_DISPUTED", "UNHEALTHY_UNEXPLAINED")]


def samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    body, _ = metrics.exposition()
    return {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(body.decode())
            for s in family.samples if s.name == name}


def test_a_cut_is_read_at_once_and_confirmed_when_the_elb_reports_timeouts(watched, tiny_world):
    daemon, proxy, clock, metrics = watched
    daemon.run_once()
    tiny_world.revoke_node_rule("web")
    proxy.rewrite("DescribeTargetHealth", timed_out)
    woken = []
    daemon.on_health_due = lambda: woken.append(True)
    assert cut_findings(daemon) == [("ACCESS_REVOKED", "critical", "unknown")]
    assert woken  # the verdict change asked for a read at once
    assert daemon.read_health() == 1
    assert cut_findings(daemon) == [("ACCESS_REVOKED", "critical", "confirmed")]
    web = tiny_world.albs["web"]
    assert samples(metrics, "albsg_targets") == {
        (("load_balancer", web.name), ("state", "unhealthy"), ("target_group", "k8s-web-tg")): 1.0}


def test_a_cut_the_elb_keeps_reaching_is_pending_then_disputed_then_critical_again(watched, tiny_world):
    daemon, proxy, clock, metrics = watched
    daemon.run_once()
    tiny_world.revoke_node_rule("web")
    daemon.check()
    clock.now += 5
    assert daemon.read_health() == 1  # the read asked for at once: healthy, within the window
    assert cut_findings(daemon) == [("ACCESS_REVOKED", "critical", "pending")]
    clock.now += 20
    assert daemon.read_health() == 0  # nothing due until the window has passed
    clock.now += WINDOW
    assert daemon.read_health() == 1
    assert cut_findings(daemon) == [("VERDICT_DISPUTED", "warning", None)]
    assert samples(metrics, "albsg_verdict_disputes_total") == {(): 1.0}
    web = tiny_world.albs["web"].name
    assert samples(metrics, "albsg_load_balancer_disputed") == {(("load_balancer", web),): 1.0}
    assert daemon.check().report.exit_code == 0  # a disputed cut does not page
    assert cut_findings(daemon) == [("VERDICT_DISPUTED", "warning", None)]
    assert samples(metrics, "albsg_verdict_disputes_total") == {(): 1.0}  # one episode, counted once

    proxy.rewrite("DescribeTargetHealth", timed_out)
    clock.now += WINDOW + 5  # while a cut stands the ELB is asked again each window
    assert daemon.read_health() == 1
    assert cut_findings(daemon) == [("ACCESS_REVOKED", "critical", "confirmed")]
    assert samples(metrics, "albsg_load_balancer_disputed") == {}


def test_a_throttled_health_read_changes_nothing(watched, tiny_world):
    daemon, proxy, clock, metrics = watched
    daemon.run_once()
    tiny_world.revoke_node_rule("web")
    proxy.fail(["DescribeTargetHealth"])
    daemon.check()
    clock.now += WINDOW + 10
    for _ in range(3):
        daemon.read_health()
        clock.now += WINDOW + 10
    assert cut_findings(daemon) == [("ACCESS_REVOKED", "critical", "unknown")]
    report = daemon.check().report
    assert report.complete  # a health read is no read of the verdict
    assert samples(metrics, "albsg_verdict_disputes_total") == {(): 0.0}
    assert samples(metrics, "albsg_targets") == {}


def test_the_rule_check_never_reads_health_and_the_sweep_reads_every_target_group(tiny_world, monkeypatch):
    with AwsProxy(tiny_world.endpoint) as proxy:
        daemon, clock, _ = daemon_behind(proxy, monkeypatch, health_sweep=60.0)
        daemon.run_once()
        proxy.reset_counts()
        for _ in range(5):
            daemon.check()
        assert proxy.calls("DescribeTargetHealth") == 0
        read = 0
        for _ in range(7):  # one sweep period, a tick every 10 s: each target group read once
            read += daemon.read_health()
            clock.now += 10
        assert read == 2 and proxy.calls("DescribeTargetHealth") == 2
        assert daemon.read_health() == 2  # a period after their first read, both again


def test_no_sweep_reads_only_what_a_verdict_change_asks_for(tiny_world, monkeypatch):
    with AwsProxy(tiny_world.endpoint) as proxy:
        daemon, clock, _ = daemon_behind(proxy, monkeypatch, health_sweep=0)
        daemon.run_once()
        clock.now += 3600
        assert daemon.read_health() == 0
        tiny_world.revoke_node_rule("web")
        daemon.check()
        assert daemon.read_health() == 1


def test_targets_timing_out_while_every_rule_admits_them_are_unexplained_past_the_window(tiny_world, monkeypatch):
    with AwsProxy(tiny_world.endpoint) as proxy:
        daemon, clock, _ = daemon_behind(proxy, monkeypatch, health_sweep=60.0)
        daemon.run_once()
        proxy.rewrite("DescribeTargetHealth", timed_out)  # a host firewall: the rules admit, the ELB times out
        clock.now += 60
        assert daemon.read_health() == 2  # the sweep
        assert cut_findings(daemon) == []  # one read is not enough: the window has not passed
        clock.now += WINDOW + 5
        assert daemon.read_health() == 2  # read again past the window, without waiting for the sweep
        found = [f for f in daemon.check().report.findings if f.code == "UNHEALTHY_UNEXPLAINED"]
        assert len(found) == 2 and all(f.severity.value == "warning" for f in found)
        assert tiny_world.instance_id in found[0].message and "Target.Timeout" in found[0].message
        proxy.heal()
        clock.now += 60
        daemon.read_health()
        assert not [f for f in daemon.check().report.findings if f.code == "UNHEALTHY_UNEXPLAINED"]


def test_a_cut_on_a_port_the_health_checks_do_not_use_stays_critical_while_the_elb_says_healthy(
        watched, tiny_world):
    daemon, proxy, clock, metrics = watched
    elbv2 = tiny_world.client("elbv2")
    web = tiny_world.albs["web"]
    elbv2.modify_target_group(TargetGroupArn=web.target_group_arn, HealthCheckPort="30081")
    daemon.refresh_topology("scheduled")
    ec2 = tiny_world.client("ec2")
    # The node rule is replaced by one admitting the health-check port only: traffic on 30080 is cut.
    tiny_world.revoke_node_rule("web")
    ec2.authorize_security_group_ingress(GroupId=tiny_world.node_sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 30081, "ToPort": 30081, "UserIdGroupPairs": [{"GroupId": web.security_group}]}])
    assert cut_findings(daemon) == [("ACCESS_REVOKED", "critical", "not_exercised")]
    for _ in range(3):
        clock.now += WINDOW + 5
        daemon.read_health()
    assert cut_findings(daemon) == [("ACCESS_REVOKED", "critical", "not_exercised")]
    assert samples(metrics, "albsg_verdict_disputes_total") == {(): 0.0}
