"""The scheduled daemon rides out a throttled or failing AWS endpoint and recovers by itself."""

from __future__ import annotations

import contextlib
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.core.settings import Settings
from monitor.daemon import runner
from monitor.surface.main import DaemonParts, assemble_daemon
from tests.support.awsproxy import UNAVAILABLE, AwsProxy
from tests.support.fixtures import tiny_aws_env, tiny_moto, tiny_world  # noqa: F401 (fixtures)
from tests.support.tinyworld import CLUSTER, World, add_alb


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        body = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def reachable(port: int) -> dict[str, float]:
    return {dict(labels)["load_balancer"]: v for (name, labels), v in scrape(port).items()
            if name == "albsg_load_balancer_reachable"}


def wait_for(what: Callable[[], object], timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {what.__doc__ or what}")
        time.sleep(0.1)


@contextlib.contextmanager
def scheduled(world: World, monkeypatch, slow: dict[str, float] | None = None,
              **settings: Any) -> Iterator[tuple[DaemonParts, AwsProxy]]:
    """The daemon scheduled in this process, talking to moto through the fault-injecting proxy
    (answering the actions in `slow` that many seconds late from the start)."""
    with AwsProxy(world.endpoint) as proxy:
        for action, seconds in (slow or {}).items():
            proxy.delay([action], seconds=seconds)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        parts = assemble_daemon(Settings(cluster_name=CLUSTER, interval=0.5, topology_interval=300.0,
                                         listen="127.0.0.1:0", kubernetes="off", **settings))
        stop = threading.Event()
        thread = threading.Thread(target=runner.run, args=(parts.daemon, parts.server, 0.5, 300.0),
                                  kwargs={"stop": stop, "handle_signals": False}, daemon=True)
        thread.start()
        try:
            yield parts, proxy
        finally:
            proxy.heal()
            stop.set()
            thread.join(15)
        assert not thread.is_alive()


@pytest.fixture
def proxied_daemon(tiny_world, monkeypatch):
    with scheduled(tiny_world, monkeypatch) as running:
        yield running


def test_throttling_and_outage_leave_the_daemon_running_and_it_recovers(proxied_daemon, tiny_world: World):
    parts, proxy = proxied_daemon
    port, web = parts.server.port, tiny_world.albs["web"].name
    wait_for(lambda: reachable(port).get(web) == 1)

    proxy.fail(["DescribeSecurityGroupRules"])  # the rule check's read is throttled
    wait_for(lambda: scrape(port).get(("albsg_observation_complete", ())) == 0)
    got = scrape(port)
    assert web not in reachable(port)  # unknown: no sample, not the last known 1
    errors = got[("albsg_aws_api_errors_total", (("code", "RequestLimitExceeded"),
                                                 ("operation", "DescribeSecurityGroupRules"), ("service", "ec2")))]
    assert errors >= 2  # botocore retried it, and every attempt is counted
    assert got[("albsg_findings", (("code", "OBSERVATION_INCOMPLETE"), ("severity", "warning")))] >= 1
    success_during_throttle = got[("albsg_last_success_timestamp_seconds", ())]

    proxy.heal()
    proxy.fail(kind=UNAVAILABLE)  # then every call answers 503
    cycles = parts.daemon.cycles
    wait_for(lambda: parts.daemon.cycles >= cycles + 2)
    assert web not in reachable(port)
    assert scrape(port)[("albsg_aws_api_errors_total", (("code", "ServiceUnavailable"),
                                                        ("operation", "DescribeLoadBalancers"), ("service", "elbv2")))] >= 1

    proxy.heal()
    wait_for(lambda: reachable(port).get(web) == 1)
    got = scrape(port)
    assert got[("albsg_observation_complete", ())] == 1
    assert got[("albsg_last_success_timestamp_seconds", ())] > success_during_throttle
    assert got[("albsg_cycle_failures_total", (("loop", "check"),))] == 0  # failures were data, not crashes
    assert parts.daemon.health()[0]


def test_a_new_alb_appears_without_waiting_for_the_topology_interval(proxied_daemon, tiny_world: World):
    parts, proxy = proxied_daemon
    port = parts.server.port
    wait_for(lambda: len(reachable(port)) == 2)
    admin = add_alb(tiny_world, "shop", "admin")
    wait_for(lambda: reachable(port).get(admin.name) == 1, timeout=10)
    assert scrape(port)[("albsg_topology_refreshes_total", (("reason", "new_load_balancer"),))] == 1
    cycles = parts.daemon.cycles
    wait_for(lambda: parts.daemon.cycles >= cycles + 3)  # later checks do not ask again
    assert scrape(port)[("albsg_topology_refreshes_total", (("reason", "new_load_balancer"),))] == 1
    # the steady state costs three calls a cycle: the load balancers, the rules and the network ACLs
    proxy.reset_counts()
    cycles = parts.daemon.cycles
    wait_for(lambda: parts.daemon.cycles >= cycles + 3)
    per_cycle = proxy.count() / (parts.daemon.cycles - cycles)
    assert per_cycle <= 3.5, proxy.requests


def test_neither_job_ever_runs_twice_at_once_and_missed_runs_coalesce(tiny_world):
    parts = assemble_daemon(Settings(cluster_name=CLUSTER, listen="127.0.0.1:0"))
    parts.server.stop()
    scheduler = runner.build_scheduler(parts.daemon, interval=15.0, topology_interval=300.0)
    scheduler.start(paused=True)  # job defaults are applied when the scheduler starts
    jobs = {job.id: job for job in scheduler.get_jobs()}
    scheduler.shutdown(wait=False)
    assert set(jobs) == {"check", "topology", "health"}
    assert all(job.max_instances == 1 and job.coalesce for job in jobs.values())
    assert jobs["check"].trigger.interval.total_seconds() == 15.0
    assert jobs["topology"].trigger.interval.total_seconds() == 300.0
    # The target-health reads that are due, looked for every second, beside the check, never in it.
    assert jobs["health"].trigger.interval.total_seconds() == runner.HEALTH_TICK_SECONDS == 1.0


def status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_long_first_discovery_keeps_the_daemon_alive_but_not_ready(tiny_world, monkeypatch):
    with scheduled(tiny_world, monkeypatch, slow={"DescribeTargetGroups": 5.0}, cycle_timeout=1.0) as (parts, proxy):
        port, web = parts.server.port, tiny_world.albs["web"].name
        until = time.monotonic() + 3.5  # seven intervals, three deadlines
        while time.monotonic() < until:
            assert (status(port, "/healthz"), status(port, "/readyz")) == (200, 503)
            time.sleep(0.2)
        wait_for(lambda: reachable(port).get(web) == 1)
        assert status(port, "/readyz") == 200
        # the checks that waited for it did not start discoveries of their own, nor count as failed
        assert scrape(port)[("albsg_topology_refreshes_total", (("reason", "start"),))] == 1
        assert check_failures(port) == 0


def check_failures(port: int) -> float:
    """Failed (raised or abandoned) rule checks, whatever the loop label is called."""
    return sum(v for (name, labels), v in scrape(port).items()
               if name == "albsg_cycle_failures_total" and ("check" in dict(labels).values()))


def test_a_slow_aws_makes_the_verdict_unknown_and_the_checks_go_on_on_time(tiny_world, monkeypatch):
    with scheduled(tiny_world, monkeypatch, cycle_timeout=1.5) as (parts, proxy):
        port, web = parts.server.port, tiny_world.albs["web"].name
        wait_for(lambda: reachable(port).get(web) == 1)
        assert scrape(port)[("albsg_observation_complete", ())] == 1
        proxy.delay(["DescribeSecurityGroupRules"], seconds=6.0)  # every answer 6 s late (read timeout: 15 s)

        def unknown() -> bool:
            got = scrape(port)
            return got.get(("albsg_observation_complete", ())) == 0 and not reachable(port)

        wait_for(unknown, timeout=15)
        got = scrape(port)
        assert got[("albsg_findings", (("code", "OBSERVATION_INCOMPLETE"), ("severity", "warning")))] == 1
        abandoned = check_failures(port)
        assert abandoned >= 1
        # Longer than one slow answer: the abandoned checks' late results never show, and new
        # checks keep starting (each abandoned in turn) rather than waiting for the slow one.
        until = time.monotonic() + 8.0
        while time.monotonic() < until:
            assert unknown(), scrape(port)
            time.sleep(0.2)
        assert check_failures(port) >= abandoned + 3
        proxy.heal()
        wait_for(lambda: reachable(port).get(web) == 1)
        assert scrape(port)[("albsg_observation_complete", ())] == 1


def test_an_abandoned_check_never_writes(tiny_world, monkeypatch):
    with scheduled(tiny_world, monkeypatch, cycle_timeout=1.5, mode="enforce", grace=0.5) as (parts, proxy):
        port, web = parts.server.port, tiny_world.albs["web"].name
        wait_for(lambda: reachable(port).get(web) == 1)
        cycles = parts.daemon.cycles
        wait_for(lambda: parts.daemon.cycles >= cycles + 2)  # the rule is remembered as covering
        proxy.delay(["DescribeSecurityGroupRules"], seconds=5.0)
        wait_for(lambda: check_failures(port) >= 1, timeout=15)
        tiny_world.revoke_node_rule("web")  # the slow reads will see it gone, past their deadline
        until = time.monotonic() + 8.0
        while time.monotonic() < until:
            assert proxy.count(action="AuthorizeSecurityGroupIngress") == 0
            time.sleep(0.2)
        proxy.heal()  # in time again: now the restore goes out
        wait_for(lambda: proxy.count(action="AuthorizeSecurityGroupIngress") >= 1)
        wait_for(lambda: reachable(port).get(web) == 1)


def test_a_check_that_raises_is_blind_like_an_abandoned_one(tiny_world, monkeypatch):
    """Checks that fail with an error (here: rules answered without their group id, which the rule
    parser cannot place) must not leave the last good verdict on /metrics while a rule is really gone."""
    with scheduled(tiny_world, monkeypatch) as (parts, proxy):
        port, web, api = parts.server.port, tiny_world.albs["web"].name, tiny_world.albs["api"].name
        wait_for(lambda: reachable(port) == {web: 1, api: 1})
        assert status(port, "/readyz") == 200
        proxy.rewrite("DescribeSecurityGroupRules",
                      lambda body: re.sub(rb"<groupId>[^<]*</groupId>", b"", body))
        tiny_world.revoke_node_rule("web")  # really cut while the checks are failing

        def blind() -> bool:
            got = scrape(port)
            return got.get(("albsg_observation_complete", ())) == 0 and not reachable(port)

        wait_for(blind)
        wait_for(lambda: check_failures(port) >= 2)
        got = scrape(port)
        assert blind(), got
        assert got[("albsg_findings", (("code", "OBSERVATION_INCOMPLETE"), ("severity", "warning")))] == 1
        assert not got.get(("albsg_findings", (("code", "ACCESS_REVOKED"), ("severity", "critical"))))
        assert (status(port, "/healthz"), status(port, "/readyz")) == (200, 503)
        proxy.heal()
        wait_for(lambda: reachable(port) == {web: 0, api: 1})
        assert status(port, "/readyz") == 200 and scrape(port)[("albsg_observation_complete", ())] == 1


def test_a_wake_during_a_run_on_time_and_the_first_discovery_are_no_overrun():
    """cycle_overrun says a check really outlived its interval: not that an AWS event woke the loop
    while a short check ran, nor that the first discovery (start-up) takes long."""
    from apscheduler.events import (
        EVENT_JOB_EXECUTED,
        EVENT_JOB_MAX_INSTANCES,
        EVENT_JOB_SUBMITTED,
        JobEvent,
        JobExecutionEvent,
    )
    from structlog.testing import capture_logs

    now, starting = [100.0], [True]
    log = runner.OverrunLog({"check": 15.0}, starting=lambda: starting[0], monotonic=lambda: now[0])

    def skipped_after(seconds: float) -> None:
        log(JobEvent(EVENT_JOB_SUBMITTED, "check", "default"))
        now[0] += seconds
        log(JobEvent(EVENT_JOB_MAX_INSTANCES, "check", "default"))

    with capture_logs() as logged:
        skipped_after(40.0)  # the first discovery, 40 s in: start-up
        starting[0] = False
        skipped_after(2.0)  # woken by an event 2 s into a check on time
        log(JobExecutionEvent(EVENT_JOB_EXECUTED, "check", "default", datetime.now(timezone.utc)))
        assert [e["event"] for e in logged] == []
        skipped_after(20.0)  # a check past its 15 s interval: an overrun
        log(JobEvent(EVENT_JOB_MAX_INSTANCES, "check", "default"))  # and more runs skipped: one line
    assert [e["event"] for e in logged] == ["cycle_overrun"]
