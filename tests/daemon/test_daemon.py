"""The daemon's cycles against moto over HTTP: what a user sees on /metrics and in the summary."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import urllib.error
import urllib.request
from dataclasses import replace

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from monitor import aws
from monitor.core.settings import Settings
from monitor.daemon.loop import Daemon
from monitor.daemon.topology import READ_IN_CHECK
from monitor.surface import logs
from monitor.surface.main import DaemonParts, assemble_daemon
from monitor.surface.metrics import Metrics
from monitor.surface.server import Endpoints, HttpServer
from tests.support.fixtures import tiny_aws_env, tiny_moto, tiny_world  # noqa: F401 (fixtures)
from tests.support.tinyworld import CLUSTER, World, add_alb


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts(tiny_world: World):
    built = assemble_daemon(Settings(cluster_name=CLUSTER, interval=15.0, listen="127.0.0.1:0"))
    built.server.start()
    yield built
    built.server.stop()


def get(parts: DaemonParts, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{parts.server.port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(parts: DaemonParts) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body = get(parts, "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def reachable(parts: DaemonParts) -> dict[str, float]:
    return {dict(labels)["load_balancer"]: v for (name, labels), v in scrape(parts).items()
            if name == "albsg_load_balancer_reachable"}


def metric(parts: DaemonParts, name: str, **labels: str) -> float | None:
    return scrape(parts).get((name, tuple(sorted(labels.items()))))


def test_a_healthy_cluster_on_metrics(parts, tiny_world):
    seen = []
    parts.daemon.on_cycle.append(seen.append)
    summary = parts.daemon.run_once()
    assert seen == [summary]
    assert summary.ok and summary.complete and summary.count(True) == 2
    web, api = tiny_world.albs["web"], tiny_world.albs["api"]
    got = scrape(parts)
    assert got[("albsg_load_balancer_reachable",
                (("ingress", "web"), ("ingress_namespace", "shop"), ("load_balancer", web.name)))] == 1
    assert reachable(parts) == {web.name: 1, api.name: 1}
    assert got[("albsg_observation_complete", ())] == 1
    assert got[("albsg_findings", (("code", "ACCESS_REVOKED"), ("severity", "critical")))] == 0
    assert got[("albsg_aws_api_calls_total", (("operation", "DescribeSecurityGroupRules"), ("service", "ec2")))] >= 1
    assert got[("albsg_cycle_duration_seconds_count", ())] == 1
    assert got[("albsg_last_success_timestamp_seconds", ())] > 1.7e9


def test_a_revoked_rule_is_counted_once_and_cuts_only_its_alb(parts, tiny_world):
    web, api = tiny_world.albs["web"], tiny_world.albs["api"]
    parts.daemon.run_once()
    assert metric(parts, "albsg_rule_revocations_total", load_balancer=web.name) == 0
    tiny_world.revoke_node_rule("web")
    summary = parts.daemon.run_once()
    assert [(r.load_balancer, r.target) for r in summary.revocations] == [(web.name, tiny_world.instance_id)]
    assert reachable(parts) == {web.name: 0, api.name: 1}
    assert metric(parts, "albsg_findings", code="ACCESS_REVOKED", severity="critical") == 1
    assert metric(parts, "albsg_rule_revocations_total", load_balancer=web.name) == 1
    parts.daemon.run_once()  # still revoked: not a new revocation
    assert metric(parts, "albsg_rule_revocations_total", load_balancer=web.name) == 1
    tiny_world.restore_node_rule("web")
    parts.daemon.run_once()
    assert reachable(parts)[web.name] == 1
    tiny_world.revoke_node_rule("web")
    parts.daemon.run_once()
    assert metric(parts, "albsg_rule_revocations_total", load_balancer=web.name) == 2
    assert metric(parts, "albsg_rule_revocations_total", load_balancer=api.name) == 0


def test_a_deleted_alb_vanishes_from_metrics_and_triggers_a_refresh(parts, tiny_world):
    web, api = tiny_world.albs["web"], tiny_world.albs["api"]
    parts.daemon.run_once()
    tiny_world.delete_alb("api")
    summary = parts.daemon.run_once()
    assert reachable(parts) == {web.name: 1}  # api unknown until a read by ARN confirms it gone
    assert summary.refresh_wanted == "load_balancer_gone" and not summary.complete
    parts.daemon.run_once()
    assert [lb.name for lb in parts.daemon.topology.load_balancers] == [web.name]
    assert metric(parts, "albsg_topology_refreshes_total", reason="load_balancer_gone") == 1
    assert metric(parts, "albsg_rule_revocations_total", load_balancer=api.name) is None
    assert reachable(parts) == {web.name: 1} and metric(parts, "albsg_observation_complete") == 1


def test_a_new_alb_is_judged_by_the_check_that_lists_it(parts, tiny_world):
    parts.daemon.run_once()
    tiny_world.albs["admin"] = add_alb(tiny_world, "shop", "admin")
    summary = parts.daemon.run_once()
    assert summary.refresh_wanted is None  # read by the check itself, before its rules
    assert {lb.name: lb.reachable for lb in summary.report.load_balancers}[tiny_world.albs["admin"].name] is True
    assert tiny_world.albs["admin"].name in reachable(parts)
    assert metric(parts, "albsg_topology_refreshes_total", reason="new_load_balancer") == 1


def test_new_albs_past_what_a_check_reads_ask_for_one_refresh_however_many_checks_see_them(parts, tiny_world):
    """More new ALBs than a check reads itself are left to the refresh job; checks that run before
    it lands see them too and do not ask again."""
    asked: list[str] = []
    checks: list[str] = []
    parts.daemon.on_refresh_wanted = asked.append
    parts.daemon.run_once()
    parts.daemon.on_check_wanted = checks.append
    new = [add_alb(tiny_world, "shop", f"new{i}") for i in range(READ_IN_CHECK + 1)]
    first = parts.daemon.check()
    assert not {a.name for a in new} & {lb.name for lb in first.report.load_balancers}
    parts.daemon.check()  # the refresh has not run yet
    assert asked == ["new_load_balancer"]
    assert checks == []
    parts.daemon.refresh_topology()
    assert checks == ["topology_updated"]  # a check at once against what the update read
    parts.daemon.check()
    parts.daemon.check()
    assert asked == ["new_load_balancer"]
    assert metric(parts, "albsg_topology_refreshes_total", reason="new_load_balancer") == 1
    assert {a.name for a in new} <= set(reachable(parts))
    tiny_world.client("elbv2").delete_load_balancer(LoadBalancerArn=new[0].arn)  # a later change asks again
    parts.daemon.check()
    parts.daemon.check()
    assert asked == ["new_load_balancer", "load_balancer_gone"]


def test_probes_follow_the_check_loop(tiny_world):
    clock = FakeClock()
    clients = aws.connect(None)
    metrics = Metrics()
    daemon = Daemon(clients, CLUSTER, metrics, interval=10.0, topology_interval=300.0, monotonic=clock)
    server = HttpServer("127.0.0.1:0", Endpoints(metrics.exposition, daemon.health, daemon.ready))
    server.start()
    probe = DaemonParts(clients, metrics, daemon, server)
    try:
        assert get(probe, "/readyz")[0] == 503
        assert get(probe, "/healthz")[0] == 200  # just started
        daemon.run_once()
        assert get(probe, "/readyz")[0] == 200
        clock.now += 29.0
        assert get(probe, "/healthz")[0] == 200
        clock.now += 2.0  # more than three intervals since the loop last ran
        status, body = get(probe, "/healthz")
        assert status == 503 and "30s" in body
        daemon.run_once()
        assert get(probe, "/healthz")[0] == 200
        assert get(probe, "/nothing")[0] == 404
    finally:
        server.stop()


def test_promtool_accepts_the_real_exposition(parts, tiny_world):
    parts.daemon.run_once()
    tiny_world.revoke_node_rule("web")
    parts.daemon.run_once()
    status, body = get(parts, "/metrics")
    result = subprocess.run(["promtool", "check", "metrics"], input=body.encode(), capture_output=True, timeout=30)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result
    assert "albsg_rule_revocations_total" in body
    # RSS to hold against the pod's memory limit, from the same registry.
    assert re.search(r"^process_resident_memory_bytes \d", body, re.M), body
    assert "python_info{" in body


def test_no_metric_carries_a_label_prometheus_would_rename(parts):
    """A metric label named like a target label (job, instance) comes out as exported_job."""
    parts.daemon.run_once()
    _, body = get(parts, "/metrics")
    labels = {name for family in text_string_to_metric_families(body)
              for sample in family.samples for name in sample.labels}
    assert not labels & {"job", "instance"}, labels
    assert 'albsg_cycle_failures_total{loop="check"} 0.0' in body


def test_a_cycle_that_raises_is_counted_and_the_next_one_runs(tiny_world):
    broken = replace(aws.connect(None), ec2=object())  # a client that cannot make any EC2 call
    metrics = Metrics()
    daemon = Daemon(broken, CLUSTER, metrics, interval=10.0, topology_interval=300.0)
    first, second = daemon.check(), daemon.check()
    assert first.error and second.error and not first.ok
    assert daemon.cycles == 2 and daemon.health()[0] and not daemon.ready()[0]
    body = metrics.exposition()[0].decode()
    assert 'albsg_cycle_failures_total{loop="check"} 2.0' in body
    assert 'albsg_cycle_failures_total{loop="topology"} 2.0' in body
    assert "albsg_load_balancer_reachable{" not in body


def test_each_cycle_logs_one_json_summary_event(tiny_world):
    stream = io.StringIO()
    logs.configure("json", stream=stream)
    try:
        daemon = Daemon(aws.connect(None), CLUSTER, Metrics(), interval=10.0, topology_interval=300.0)
        daemon.run_once()
        tiny_world.revoke_node_rule("web")
        daemon.run_once()
    finally:
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    cycles = [e for e in events if e["event"] == "check_cycle"]
    assert len(cycles) == 2
    assert 0 < cycles[1]["cpu_seconds"] < 60
    assert cycles[1] | {"duration_seconds": 0, "timestamp": "", "cpu_seconds": 0} == {
        "event": "check_cycle", "level": "info", "logger": "monitor.daemon", "timestamp": "",
        "complete": True, "load_balancers": 2, "reachable": 1, "unreachable": 1, "unknown": 0, "not_judged": 0,
        "findings": 1,
        "critical": 1, "failed_reads": 0, "revocations": 1, "writes": 0, "duration_seconds": 0, "api_calls": 3, "listed": True, "read_again": 0,
        "judged": 1, "cpu_seconds": 0}  # the lost rule admitted web's group: web alone is judged again
    revoked = [e for e in events if e["event"] == "path_revoked"]
    assert [(e["load_balancer"], e["target"]) for e in revoked] == [(tiny_world.albs["web"].name, tiny_world.instance_id)]
    assert [e["reason"] for e in events if e["event"] == "topology_refreshed"] == ["start"]


def test_a_check_past_its_deadline_sends_no_further_write(tiny_world):
    """The deadline passes while the first restore is on its way: the second is not sent."""
    sent = []
    clients = aws.connect(None)
    clients.ec2.meta.events.register("before-send.ec2.AuthorizeSecurityGroupIngress", lambda **_: sent.append(1))
    clock = FakeClock()

    def monotonic() -> float:  # time runs out with the first write
        return clock.now + (100.0 if sent else 0.0)

    settings = Settings(cluster_name=CLUSTER, mode="enforce", grace=1.0, kubernetes="off", listen="127.0.0.1:0",
                        cycle_timeout=10.0)
    built = assemble_daemon(settings, clients, kube=None, wall=clock, monotonic=monotonic)
    built.server.stop()
    daemon = built.daemon
    assert daemon.run_once().ok
    tiny_world.revoke_node_rule("web")
    tiny_world.revoke_node_rule("api")
    clock.now += 15.0
    daemon.run_once()  # both paths lost: grace starts
    clock.now += 15.0
    summary = daemon.run_once()
    assert summary.abandoned and not summary.ok
    assert wait_until(lambda: built.metrics.remediations.labels("suppressed")._value.get() >= 1)
    assert len(sent) == 1
    body = built.metrics.exposition()[0].decode()
    assert "albsg_load_balancer_reachable{" not in body and "albsg_observation_complete 0.0" in body


def wait_until(what, timeout: float = 20.0) -> bool:
    import time
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_checks_request_count_leaves_out_a_discovery_running_beside_it(tiny_world, monkeypatch):
    import threading

    from tests.support.awsproxy import AwsProxy

    with AwsProxy(tiny_world.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        clients = aws.connect(None)
        clients.pacer.configure(None)
        daemon = Daemon(clients, CLUSTER, Metrics(), interval=10.0, topology_interval=300.0)
        daemon.run_once()
        proxy.delay(["DescribeSecurityGroupRules"], seconds=3.0)  # the check waits while discovery runs
        proxy.reset_counts()
        refresh = threading.Thread(target=daemon.refresh_topology, args=("scheduled",))
        refresh.start()
        summary = daemon.check()
        proxy.heal()
        refresh.join(30)
        assert summary.ok and proxy.count() > 4  # the discovery sent its requests meanwhile
        assert summary.api_calls == 3  # the load balancers, the rules and the network ACLs


def test_the_first_discovery_is_not_the_first_checks_duration(tiny_world, monkeypatch):
    from tests.support.awsproxy import AwsProxy

    with AwsProxy(tiny_world.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        clients = aws.connect(None)
        metrics = Metrics()
        daemon = Daemon(clients, CLUSTER, metrics, interval=10.0, topology_interval=300.0)
        proxy.delay(["DescribeTargetHealth"], seconds=3.0)  # two target groups: a 6 s discovery
        summary = daemon.check()  # no topology yet: the check runs the first discovery
        assert summary.ok and summary.api_calls == 3
        assert summary.duration_seconds < 3.0
        assert metrics.cycle_duration.collect()[0].samples[-1].value < 3.0  # the histogram's sum


@pytest.mark.parametrize(("interval", "woken"), [(0.001, ["overrun"]), (60.0, [])])
def test_a_check_that_outlasts_the_interval_has_the_next_one_start_at_once(tiny_world, interval, woken):
    """The scheduler skips the run due while a check runs, and would wait for the one after: a
    check longer than the interval asks for the next at once instead (a new ALB or a cut is then
    seen one check later, not one check and an interval later)."""
    daemon = Daemon(aws.connect(None), CLUSTER, Metrics(), interval=interval, topology_interval=300.0)
    daemon.run_once()
    asked: list[str] = []
    daemon.on_check_wanted = asked.append
    summary = daemon.check()
    assert summary.ok and asked == woken
