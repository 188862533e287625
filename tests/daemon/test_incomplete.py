"""Throttled or failing reads make things unknown (exit 3, `reachable: null`), never ok or missing."""

from __future__ import annotations

import pytest

from monitor.demo import world as demo_world
from tests.support.awsproxy import UNAVAILABLE
from tests.support.helpers import codes, lb_by_name, run_check


def test_throttled_rule_reads_give_exit_3_and_no_false(world, proxy, capsys):
    proxy.fail(["DescribeSecurityGroupRules"])
    code, report = run_check(capsys, world.cluster)
    assert code == 3
    assert report["complete"] is False
    assert {lb["reachable"] for lb in report["load_balancers"]} == {None}
    assert all(p["covered"] is None for lb in report["load_balancers"] for p in lb["paths"])
    incomplete = [f for f in report["findings"] if f["code"] == "OBSERVATION_INCOMPLETE"]
    assert incomplete and "DescribeSecurityGroupRules" in incomplete[0]["message"]
    assert "RequestLimitExceeded" in incomplete[0]["message"]
    # botocore's standard retries were used before giving up, not a retry storm
    assert proxy.count(action="DescribeSecurityGroupRules") == 3


def test_every_describe_throttled_gives_exit_3_and_no_false(world, proxy, capsys):
    proxy.fail()
    code, report = run_check(capsys, world.cluster)
    assert code == 3 and report["complete"] is False
    assert all(lb["reachable"] is not False for lb in report["load_balancers"])
    assert "ACCESS_REVOKED" not in codes(report)


def test_revoked_rule_hidden_by_a_throttle_is_not_reported_missing(world, proxy, capsys):
    demo_world.revoke(world, "shop_v1")
    proxy.fail(["DescribeSecurityGroupRules"], kind=UNAVAILABLE)
    code, report = run_check(capsys, world.cluster)
    assert code == 3
    assert lb_by_name(report, world.lb_name["shop"])["reachable"] is None


def test_one_failed_target_health_read_makes_only_that_alb_unknown(world, proxy, capsys):
    # DescribeTargetHealth is one call per target group; fail them all but check the split.
    proxy.fail(["DescribeTargetHealth"])
    code, report = run_check(capsys, world.cluster)
    assert code == 3
    assert {lb["reachable"] for lb in report["load_balancers"]} == {None}
    proxy.heal()
    code, report = run_check(capsys, world.cluster)
    assert code == 0 and report["complete"] is True


def test_a_critical_finding_among_what_was_read_still_exits_1(world, proxy, capsys):
    demo_world.revoke(world, "shop_v1")
    proxy.fail(["DescribeSubnets"])  # only CIDR coverage depends on it
    code, report = run_check(capsys, world.cluster)
    assert report["complete"] is False
    assert lb_by_name(report, world.lb_name["shop"])["reachable"] is False
    assert code == 1
