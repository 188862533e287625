"""The verdict beside the ELB's word: confirmed, pending, not exercised, disputed past the window and
critical again when the ELB agrees, unexplained failures, and a missing read that changes nothing."""

from __future__ import annotations

from dataclasses import replace

from monitor.core import corroborate, health
from monitor.core.health import HealthMemory, HealthRead, TargetHealth
from monitor.core.model import PeerKind, Rule, Severity, Target
from tests.support import pure_world as w

WINDOW = 30 * 2 + 6  # an HTTP target group with AWS's defaults
ONE_PORT = Rule(w.NODE_SG, "tcp", 30080, 30080, PeerKind.SECURITY_GROUP, w.ALB_SG, rule_id="sgr-web")
KEY = (w.TG_ARN, "i-0aaa")


def read(at: float, state: str, reason: str = "", target: str = "i-0aaa") -> HealthRead:
    return HealthRead(w.TG_ARN, at, (TargetHealth(target, 30080, state, reason),))


def cut_report(topo=None):
    report, _ = w.observe([w.SSH_RULE], topo)  # the node rule is gone: the path is cut
    return report


def codes(report) -> list[tuple[str, str, str | None]]:
    shown = corroborate.CUT_CODES | {"VERDICT_DISPUTED", "UNHEALTHY_UNEXPLAINED"}
    return [(f.code, f.severity.value, f.confirmation) for f in report.findings if f.code in shown]


def judged(memory: HealthMemory, topo=None, one_shot: bool = False):
    topo = topo or w.topology()
    return corroborate.corroborate(cut_report(topo), memory, topo.target_groups, one_shot=one_shot)


def test_a_cut_the_elb_reports_timing_out_is_confirmed():
    memory = HealthMemory()
    memory.saw_cuts([KEY], now=100.0)
    memory.saw_read(read(170.0, "unhealthy", "Target.Timeout"), admitted=False)
    assert codes(judged(memory).report) == [("ACCESS_REVOKED", "critical", "confirmed")]


def test_a_cut_the_elb_has_not_yet_marked_is_pending_and_without_a_read_unknown():
    memory = HealthMemory()
    memory.saw_cuts([KEY], now=100.0)
    assert codes(judged(memory).report) == [("ACCESS_REVOKED", "critical", "unknown")]
    memory.saw_read(read(110.0, "healthy"), admitted=False)
    assert codes(judged(memory).report) == [("ACCESS_REVOKED", "critical", "pending")]


def test_a_cut_of_a_traffic_port_the_health_checks_do_not_use_stays_critical_while_the_elb_says_healthy():
    topo = w.topology(health_port="8081")
    report, _ = w.observe([Rule(w.NODE_SG, "tcp", 8081, 8081, PeerKind.SECURITY_GROUP, w.ALB_SG, rule_id="sgr-hc")],
                          topo)
    memory = HealthMemory()
    memory.saw_cuts([KEY], now=100.0)
    memory.saw_read(read(1_000.0, "healthy"), admitted=False)
    out = corroborate.corroborate(report, memory, topo.target_groups)
    assert codes(out.report) == [("ACCESS_REVOKED", "critical", "not_exercised")]
    assert out.disputed == frozenset()


def test_a_cut_the_elb_keeps_reaching_past_the_window_is_disputed_then_critical_again_when_it_agrees():
    memory = HealthMemory()
    memory.saw_cuts([KEY], now=100.0)
    memory.saw_read(read(100.0 + WINDOW - 1, "healthy"), admitted=False)
    assert codes(judged(memory).report) == [("ACCESS_REVOKED", "critical", "pending")]

    memory.saw_read(read(100.0 + WINDOW + 1, "healthy"), admitted=False)
    out = judged(memory)
    assert codes(out.report) == [("VERDICT_DISPUTED", "warning", None)]
    disputed, = [f for f in out.report.findings if f.code == "VERDICT_DISPUTED"]
    assert "ACCESS_REVOKED" in disputed.message and "cannot reach 1 target(s) on port(s) 30080" in disputed.message
    assert out.disputed == {("ACCESS_REVOKED", "1a2b3c4d-shop-web-0f1e", w.NODE_SG)}
    assert out.report.exit_code == 0

    memory.saw_read(read(300.0, "unhealthy", "Target.Timeout"), admitted=False)
    assert codes(judged(memory).report) == [("ACCESS_REVOKED", "critical", "confirmed")]


def test_check_confirms_from_one_read_and_never_disputes():
    memory = HealthMemory()
    memory.saw_read(read(5.0, "healthy"), admitted=False)
    out = judged(memory, one_shot=True)
    assert codes(out.report) == [("ACCESS_REVOKED", "critical", "pending")] and not out.disputed
    memory.saw_read(read(6.0, "unhealthy", "Target.FailedHealthChecks"), admitted=False)
    assert codes(judged(memory, one_shot=True).report) == [("ACCESS_REVOKED", "critical", "confirmed")]


def test_targets_failing_while_every_rule_admits_them_are_unexplained_past_the_window():
    topo = w.topology()
    report, _ = w.observe([w.V1_RULE], topo)
    assert report.load_balancers[0].reachable is True
    memory = HealthMemory()
    memory.saw_read(read(100.0, "unhealthy", "Target.Timeout"), admitted=True)
    assert not [f for f in corroborate.corroborate(report, memory, topo.target_groups).report.findings
                if f.code == "UNHEALTHY_UNEXPLAINED"]
    memory.saw_read(read(100.0 + WINDOW + 5, "unhealthy", "Target.Timeout"), admitted=True)
    found, = [f for f in corroborate.corroborate(report, memory, topo.target_groups).report.findings
              if f.code == "UNHEALTHY_UNEXPLAINED"]
    assert found.severity is Severity.WARNING and "i-0aaa" in found.message and "Target.Timeout" in found.message
    assert found.load_balancer == "1a2b3c4d-shop-web-0f1e"
    # check and preflight, one read each, never explain
    assert not [f for f in corroborate.corroborate(report, memory, topo.target_groups, one_shot=True).report.findings
                if f.code == "UNHEALTHY_UNEXPLAINED"]


def test_a_finding_over_two_targets_is_confirmed_only_when_both_fail_and_disputed_only_when_both_pass():
    topo = w.topology(targets=(Target("i-0aaa", 30080, "eni-a", (w.NODE_SG,), "healthy"),
                               Target("i-0bbb", 30080, "eni-b", (w.NODE_SG,), "healthy")))
    report, _ = w.observe([w.SSH_RULE], topo)
    memory = HealthMemory()
    memory.saw_cuts([KEY, (w.TG_ARN, "i-0bbb")], now=100.0)
    half = HealthRead(w.TG_ARN, 500.0, (TargetHealth("i-0aaa", 30080, "unhealthy", "Target.Timeout"),
                                        TargetHealth("i-0bbb", 30080, "healthy", "")))
    memory.saw_read(half, admitted=False)
    assert codes(corroborate.corroborate(report, memory, topo.target_groups).report) == [
        ("ACCESS_REVOKED", "critical", "pending")]
    memory.saw_read(replace(half, targets=tuple(replace(t, state="healthy", reason="") for t in half.targets)),
                    admitted=False)
    assert codes(corroborate.corroborate(report, memory, topo.target_groups).report) == [
        ("VERDICT_DISPUTED", "warning", None)]


def test_findings_that_are_not_cuts_are_left_as_they_are():
    memory = HealthMemory()
    out = judged(memory)
    assert [f for f in out.report.findings if f.code == "UNADOPTED_LOAD_BALANCER"][0].confirmation is None
    assert health.CONFIRMATIONS == ("confirmed", "pending", "not_exercised", "unknown")


def test_clients_not_admitted_is_never_exercised_by_health_checks_so_never_disputed():
    from monitor.core.model import Finding

    report, _ = w.observe([w.V1_RULE])  # the load balancer's own addresses are admitted
    clients = Finding(code="CLIENTS_NOT_ADMITTED", severity=Severity.CRITICAL, message="clients: admit them",
                      load_balancer="1a2b3c4d-shop-web-0f1e", security_group=w.NODE_SG, paths=(KEY,))
    report = replace(report, findings=(clients, *report.findings))
    memory = HealthMemory()
    memory.saw_cuts([KEY], now=100.0)
    memory.saw_read(read(100.0 + 10 * WINDOW, "healthy"), admitted=False)  # health checks pass, as they would
    out = corroborate.corroborate(report, memory, w.topology().target_groups)
    assert codes(out.report) == [("CLIENTS_NOT_ADMITTED", "critical", "not_exercised")] and not out.disputed


def _acl_cut(ports: tuple[int, int], reply: bool = False, health_port: str = "traffic-port"):
    """The verdict with the path cut by a network ACL entry over `ports` (and its NACL_BLOCKED)."""
    from monitor.core.model import Finding, NaclBlock

    topo = w.topology(health_port=health_port)
    rules = [w.V1_RULE]
    report, _ = w.observe(rules, topo)
    block = NaclBlock("acl-1", "90", False, "subnet-private", "tcp", ports[0], ports[1], "10.0.1.0/24", reply=reply)
    lb = report.load_balancers[0]
    cut_paths = tuple(replace(p, nacl_allowed=False, nacl_blocked=(block,)) for p in lb.paths)
    finding = Finding(code="NACL_BLOCKED", severity=Severity.CRITICAL, message="acl: allow it",
                      load_balancer=lb.name, paths=tuple((p.target_group_arn, p.target) for p in cut_paths))
    report = replace(report, load_balancers=(replace(lb, paths=cut_paths, reachable=False),),
                     findings=(finding, *report.findings))
    return report, topo


def test_a_network_acl_cut_of_the_health_check_port_is_confirmed_and_can_be_disputed():
    report, topo = _acl_cut((30000, 32767))
    memory = HealthMemory()
    memory.saw_cuts([KEY], now=100.0)
    memory.saw_read(read(170.0, "unhealthy", "Target.Timeout"), admitted=False)
    assert codes(corroborate.corroborate(report, memory, topo.target_groups).report) == [
        ("NACL_BLOCKED", "critical", "confirmed")]
    memory.saw_read(read(100.0 + WINDOW + 1, "healthy"), admitted=False)
    assert codes(corroborate.corroborate(report, memory, topo.target_groups).report) == [
        ("VERDICT_DISPUTED", "warning", None)]


def test_a_network_acl_cut_of_the_replies_is_exercised_and_of_another_port_is_not():
    replies, topo = _acl_cut((1024, 65535), reply=True, health_port="8081")
    memory = HealthMemory()
    memory.saw_cuts([KEY], now=100.0)
    memory.saw_read(read(170.0, "unhealthy", "Target.Timeout"), admitted=False)
    assert codes(corroborate.corroborate(replies, memory, topo.target_groups).report) == [
        ("NACL_BLOCKED", "critical", "confirmed")]
    traffic_only, topo = _acl_cut((30080, 30080), health_port="8081")
    assert codes(corroborate.corroborate(traffic_only, memory, topo.target_groups).report) == [
        ("NACL_BLOCKED", "critical", "not_exercised")]


def test_check_reads_only_the_target_groups_whose_health_checks_cross_a_cut():
    crossed, _ = _acl_cut((30000, 32767))
    assert corroborate.exercised_target_groups(crossed) == [w.TG_ARN]
    traffic_only, _ = _acl_cut((30080, 30080), health_port="8081")  # the health checks use 8081: nothing to read
    assert corroborate.exercised_target_groups(traffic_only) == []
