"""`check` reads the ELB's word on each cut once: confirmed when the ELB reports the targets timing
out, pending while it still passes them, unknown when the read fails (the verdict stands, and the
report stays complete). moto always answers `healthy`: the proxy serves AWS's answer after a cut."""

from __future__ import annotations

from monitor.demo import world as demo_world
from tests.support.helpers import run_check


def _timed_out(payload: bytes) -> bytes:
    return payload.replace(b"<State>healthy</State>",
                           b"<State>unhealthy</State><Reason>Target.Timeout</Reason>")


def _revoked(report: dict) -> dict:
    found, = [f for f in report["findings"] if f["code"] == "ACCESS_REVOKED"]
    return found


def test_check_confirms_a_cut_the_elb_reports_and_reads_only_the_target_groups_behind_cuts(world, proxy, capsys):
    demo_world.revoke(world, "shop_v1")
    proxy.rewrite("DescribeTargetHealth", _timed_out)
    before = proxy.calls("DescribeTargetHealth")
    code, report = run_check(capsys, world.cluster)
    assert code == 1 and _revoked(report)["confirmation"] == "confirmed"
    discovery_reads = len([tg for tg in world.tg])  # discovery reads each target group's targets once
    assert proxy.calls("DescribeTargetHealth") - before <= discovery_reads + 1
    assert all("confirmation" not in f for f in report["findings"] if f["code"] != "ACCESS_REVOKED")


def test_check_says_pending_while_the_elb_still_passes_the_targets(world, proxy, capsys):
    demo_world.revoke(world, "shop_v1")
    code, report = run_check(capsys, world.cluster)
    assert code == 1 and _revoked(report)["confirmation"] == "pending"


def test_a_failed_health_read_leaves_the_cut_critical_and_the_report_complete(world, proxy):
    from monitor import aws
    from monitor.daemon.cycle import read_all, verdict, with_health_once

    demo_world.revoke(world, "shop_v1")
    clients = aws.connect(world.region)
    snapshot = read_all(clients, world.cluster, None)  # discovery reads the target lists first
    report = verdict(snapshot)
    proxy.fail(["DescribeTargetHealth"])  # then the ELB's word cannot be read
    judged = with_health_once(clients, report, snapshot.topology)
    found, = [f for f in judged.findings if f.code == "ACCESS_REVOKED"]
    assert found.confirmation == "unknown" and judged.exit_code == 1
    assert judged.complete and judged.failures == report.failures
    assert proxy.calls("DescribeTargetHealth") >= 1
