"""What /metrics says for a given last report, as Prometheus would parse it."""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor import __version__
from monitor.core.model import Finding, LoadBalancerResult, Report, Severity
from monitor.surface.metrics import Metrics


def lb(name: str, reachable: bool | None, ingress: str = "") -> LoadBalancerResult:
    return LoadBalancerResult(name=name, arn=f"arn:{name}", adoption="v2", security_groups=("sg-1",),
                              reachable=reachable, paths=(), ingress_namespace="shop" if ingress else "",
                              ingress=ingress)


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.exposition()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


def names(metrics: Metrics) -> set[str]:
    return {name for name, _ in samples(metrics)}


def test_before_any_cycle_only_build_info_and_remediation_state_are_claimed():
    m = Metrics()
    assert value(m, "albsg_build_info", version=__version__) == 1
    assert value(m, "albsg_remediation_enabled") == 0
    assert not names(m) & {"albsg_load_balancer_reachable", "albsg_observation_complete",
                           "albsg_last_success_timestamp_seconds"}
    for result in ("restored", "dry_run", "failed", "suppressed", "cleaned_up", "already_present"):
        assert value(m, "albsg_remediations_total", result=result) == 0


def test_reachability_is_one_zero_or_absent_while_unknown():
    m = Metrics()
    m.publish(Report(cluster="c", region="r", complete=False, findings=(), load_balancers=(
        lb("ok-alb", True, "web"), lb("cut-alb", False, "api"), lb("unknown-alb", None, "admin"))), now=100.0)
    assert value(m, "albsg_load_balancer_reachable", load_balancer="ok-alb", ingress_namespace="shop", ingress="web") == 1
    assert value(m, "albsg_load_balancer_reachable", load_balancer="cut-alb", ingress_namespace="shop", ingress="api") == 0
    assert not any(name == "albsg_load_balancer_reachable" and ("load_balancer", "unknown-alb") in labels
                   for name, labels in samples(m))
    assert value(m, "albsg_observation_complete") == 0
    assert "albsg_last_success_timestamp_seconds" not in names(m)  # no complete cycle yet


def test_a_vanished_load_balancer_vanishes_and_success_time_moves_only_on_complete_cycles():
    m = Metrics()
    m.publish(Report(cluster="c", region="r", complete=True, findings=(),
                     load_balancers=(lb("a", True), lb("b", True))), now=100.0)
    m.publish(Report(cluster="c", region="r", complete=True, findings=(), load_balancers=(lb("a", True),)), now=115.0)
    got = samples(m)
    assert [dict(labels)["load_balancer"] for name, labels in got if name == "albsg_load_balancer_reachable"] == ["a"]
    assert value(m, "albsg_last_success_timestamp_seconds") == 115.0
    assert value(m, "albsg_rule_revocations_total", load_balancer="a") == 0  # present at 0 from the start
    assert value(m, "albsg_rule_revocations_total", load_balancer="b") is None
    m.publish(Report(cluster="c", region="r", complete=False, findings=(), load_balancers=(lb("a", None),)), now=130.0)
    assert value(m, "albsg_last_success_timestamp_seconds") == 115.0


def test_findings_are_counted_by_code_with_known_codes_at_zero():
    revoked = Finding(code="ACCESS_REVOKED", severity=Severity.CRITICAL, message="x", load_balancer="a")
    m = Metrics()
    m.publish(Report(cluster="c", region="r", complete=True, load_balancers=(lb("a", False),),
                     findings=(revoked, revoked, Finding(code="NEW_CODE", severity=Severity.INFO, message="y"))),
              now=1.0)
    assert value(m, "albsg_findings", code="ACCESS_REVOKED", severity="critical") == 2
    assert value(m, "albsg_findings", code="SHARED_LABEL_ON_FOREIGN_SOURCE", severity="critical") == 0
    assert value(m, "albsg_findings", code="EGRESS_BLOCKED", severity="critical") == 0
    assert value(m, "albsg_findings", code="NEW_CODE", severity="info") == 1


def test_counters_histogram_and_api_listener():
    m = Metrics()
    m.count_revocations(["a", "a", "b"])
    m.count_remediation("dry_run")
    m.observe_cycle(0.3)
    m.observe_cycle(42.0)
    m.api_call("ec2", "DescribeSecurityGroupRules")
    m.api_error("ec2", "DescribeSecurityGroupRules", "RequestLimitExceeded")
    assert value(m, "albsg_rule_revocations_total", load_balancer="a") == 2
    assert value(m, "albsg_remediations_total", result="dry_run") == 1
    assert value(m, "albsg_cycle_duration_seconds_count") == 2
    assert value(m, "albsg_cycle_duration_seconds_bucket", le="0.5") == 1
    assert value(m, "albsg_cycle_duration_seconds_bucket", le="60.0") == 2
    assert value(m, "albsg_aws_api_calls_total", service="ec2", operation="DescribeSecurityGroupRules") == 1
    assert value(m, "albsg_aws_api_errors_total", service="ec2", operation="DescribeSecurityGroupRules",
                 code="RequestLimitExceeded") == 1
    with pytest.raises(ValueError):
        m.count_remediation("maybe")


def test_two_instances_do_not_share_state():
    a, b = Metrics(), Metrics()
    a.count_revocations(["x"])
    assert value(b, "albsg_rule_revocations_total", load_balancer="x") is None


def test_openmetrics_is_served_when_asked_for():
    m = Metrics()
    body, content_type = m.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_promtool_accepts_the_exposition_with_every_metric_present():
    m = Metrics()
    m.publish(Report(cluster="c", region="r", complete=True, load_balancers=(lb("a", True, "web"),),
                     findings=()), now=1.0)
    m.count_revocations(["a"])
    m.api_call("elbv2", "DescribeLoadBalancers")
    m.api_error("elbv2", "DescribeLoadBalancers", "Throttling")
    m.observe_cycle(1.0)
    body, _ = m.exposition()
    result = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip() and not result.stderr.strip()


def test_state_persistence_is_a_counter_from_zero_and_a_gauge_only_where_state_is_kept():
    m = Metrics()
    assert value(m, "albsg_state_save_failures_total") == 0
    assert value(m, "albsg_state_persisted") is None  # kept in memory only: nothing to claim
    m.set_state_persisted(True)
    assert value(m, "albsg_state_persisted") == 1
    m.count_state_save_failure()
    assert value(m, "albsg_state_persisted") == 0 and value(m, "albsg_state_save_failures_total") == 1
    body, _ = m.exposition()
    result = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result
