"""Tests of the PromQL metric-name extractor the rule and dashboard tests rely on."""

import pytest

from tests.support.promql_names import metric_names, unknown_metrics

CASES = [
    ("albsg_load_balancer_reachable == 0", {"albsg_load_balancer_reachable"}),
    ('albsg_findings{code="SHARED_LABEL_ON_FOREIGN_SOURCE", severity=~"crit.*"} > 0', {"albsg_findings"}),
    ("increase(albsg_rule_revocations_total[1h]) >= 3", {"albsg_rule_revocations_total"}),
    ("time() - albsg_last_success_timestamp_seconds > 300", {"albsg_last_success_timestamp_seconds"}),
    ("absent(albsg_build_info)", {"albsg_build_info"}),
    ("histogram_quantile(0.99, sum by (le) (rate(albsg_cycle_duration_seconds_bucket[5m])))",
     {"albsg_cycle_duration_seconds"}),
    ("sum(rate(albsg_cycle_duration_seconds_sum[5m])) / sum(rate(albsg_cycle_duration_seconds_count[5m]))",
     {"albsg_cycle_duration_seconds"}),
    ('sum by (service, operation) (rate(albsg_aws_api_calls_total{job=~"$job"}[$__rate_interval]))',
     {"albsg_aws_api_calls_total"}),
    ("max without (version) (albsg_build_info offset 5m) and ignoring (version) albsg_build_info "
     "unless albsg_last_success_timestamp_seconds",
     {"albsg_build_info", "albsg_last_success_timestamp_seconds"}),
    ("count(albsg_load_balancer_reachable == 1) or vector(0)", {"albsg_load_balancer_reachable"}),
    ("sum(albsg_findings) by (code) * on (instance) group_left (version) albsg_build_info",
     {"albsg_findings", "albsg_build_info"}),
    ("1e3 * albsg_remediation_enabled", {"albsg_remediation_enabled"}),
]


@pytest.mark.parametrize("expr, names", CASES)
def test_finds_exactly_the_metrics_an_expression_reads(expr, names):
    assert metric_names(expr) == names


@pytest.mark.parametrize("expr, unknown", [
    ("albsg_load_balancer_reachability == 0", {"albsg_load_balancer_reachability"}),
    ("rate(albsg_aws_api_errors[5m]) > 0", {"albsg_aws_api_errors"}),
    ('up{job="alb-sg-monitor"} == 0', {"up"}),
    ("albsg_rule_revocations_total_bucket", {"albsg_rule_revocations_total_bucket"}),
])
def test_reports_names_that_spec_does_not_define(expr, unknown):
    assert unknown_metrics(expr) == unknown
