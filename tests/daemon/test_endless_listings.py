"""A listing that never ends (its next token going round A, B, A, B ..., or a new token every page
for ever) ends as a failed read after a few pages, so what depends on it is unknown; and a check
abandoned at its deadline stops paging at its next page instead of paging on in the background.
Against moto through the test proxy, which serves the endless listings."""

from __future__ import annotations

import time

import pytest

from monitor import aws
from monitor.aws import calls
from monitor.daemon.loop import Daemon
from monitor.surface.metrics import Metrics
from tests.daemon.test_daemon import wait_until
from tests.support.fixtures import tiny_aws_env, tiny_moto, tiny_world  # noqa: F401 (fixtures)
from tests.support.helpers import run_check
from tests.support.tinyworld import CLUSTER, World

# Endless answers the proxy gives before it ends the listing after all: code that would page for
# ever then fails these tests (too many requests) instead of hanging them.
ENOUGH = 40


@pytest.mark.parametrize("action, listings", [
    ("DescribeSecurityGroupRules", 1),  # the rule check's filtered listing
    ("DescribeLoadBalancers", 2),  # discovery's, then the rule check's
    ("DescribeNetworkInterfaces", 1),  # discovery: the targets' ENIs
])
def test_check_ends_a_listing_whose_token_goes_round_as_a_failed_read(world, proxy, capsys, monkeypatch,
                                                                      action, listings):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    _, baseline = run_check(capsys, world.cluster)
    before = {lb["name"]: lb["reachable"] for lb in baseline["load_balancers"]}
    assert baseline["complete"] and all(before.values())
    proxy.reset_counts()
    proxy.endless(action, tokens=2, answers=ENOUGH)  # next tokens A, B, A, B ...
    code, report = run_check(capsys, world.cluster)
    # pages 1 (A), 2 (B), 3 (A again: the listing ends there), for each listing of it
    assert proxy.calls(action) <= 3 * listings
    assert code == 3 and report["complete"] is False
    assert not [f for f in report["findings"] if f["severity"] == "critical"]
    failed = [f["message"] for f in report["findings"] if f["code"] == "OBSERVATION_INCOMPLETE"]
    assert any(action in m and "PaginationLoop" in m and "would never end" in m for m in failed), failed
    after = {lb["name"]: lb["reachable"] for lb in report["load_balancers"]}
    assert all(after.get(name) in (True, None) for name in before)  # as before, or unknown: never cut
    if action != "DescribeNetworkInterfaces":  # every ALB's verdict rests on these
        assert all(reachable is None for reachable in after.values())
    else:  # the ALBs with IP targets: their targets' ENIs were not read
        assert None in after.values()


@pytest.fixture
def daemon(tiny_world: World, monkeypatch):
    from tests.support.awsproxy import AwsProxy

    with AwsProxy(tiny_world.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        clients = aws.connect(None)
        clients.pacer.configure(None)
        daemon = Daemon(clients, CLUSTER, Metrics(), interval=10.0, topology_interval=300.0, cycle_timeout=1.5)
        first = daemon.run_once()
        assert first.ok and first.complete and first.count(True) == 2
        proxy.reset_counts()
        yield daemon, proxy


def test_the_daemons_load_balancer_listing_going_round_is_a_failed_read(daemon):
    daemon, proxy = daemon
    proxy.endless("DescribeLoadBalancers", tokens=2, answers=ENOUGH)
    summary = daemon.check()
    assert not summary.abandoned and proxy.calls("DescribeLoadBalancers") <= 3
    assert not summary.complete and summary.count(False) == 0
    assert [(f.operation, f.code) for f in summary.report.failures] == [("DescribeLoadBalancers", "PaginationLoop")]
    proxy.heal()
    assert daemon.check().complete  # the next cycle reads it again


def test_a_listing_past_the_page_cap_is_a_failed_read(daemon, monkeypatch):
    daemon, proxy = daemon
    monkeypatch.setattr(calls, "MAX_PAGES", 5, raising=False)  # 1,000 pages would take a while here
    proxy.endless("DescribeSecurityGroupRules", tokens=None, answers=ENOUGH)  # a new token every page
    summary = daemon.check()
    assert proxy.calls("DescribeSecurityGroupRules") == 6  # the sixth page is one too many
    assert not summary.complete and summary.count(True) == summary.count(False) == 0
    assert [(f.operation, f.code) for f in summary.report.failures] == [
        ("DescribeSecurityGroupRules", "PaginationPageLimit")]


def test_an_abandoned_check_stops_paging(daemon):
    daemon, proxy = daemon
    rules = "DescribeSecurityGroupRules"
    # A slow listing with a new token every page: no loop to catch, and far more pages than a deadline.
    proxy.endless(rules, tokens=None, answers=5000)
    proxy.delay([rules], seconds=0.1)
    summary = daemon.check()
    assert summary.abandoned and not summary.ok
    assert proxy.calls(rules) >= 2  # it was paging when its deadline came

    def stopped() -> bool:
        """the abandoned check's thread has ended, and with it its requests"""
        return not any(thread.is_alive() for thread in daemon._abandoned)

    assert wait_until(stopped, timeout=20.0), f"still paging: {proxy.calls(rules)} requests"
    sent = proxy.calls(rules)
    time.sleep(0.5)
    assert proxy.calls(rules) == sent
    proxy.heal()
    again = daemon.check()
    assert again.ok and again.complete and again.count(True) == 2
