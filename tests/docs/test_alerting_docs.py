"""The configuration examples of docs/alerting.md load in the real Prometheus tools and route as described."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.promql_names import unknown_metrics

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "alerting.md"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
RUNBOOK_URL = "https://github.com/alb-sg-monitor/alb-sg-monitor/blob/main/docs/runbook.md#"


def example(kind: str) -> str:
    blocks = re.findall(rf"<!-- tested: {kind} -->\n```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, f"docs/alerting.md should have one `{kind}` example"
    return blocks[0]


def tool(name: str, package: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if not found:
        pytest.fail(f"{name} is required (Debian package `{package}`; .ci/run installs it)")
    return found


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)


def test_prometheus_example_loads_the_shipped_rules(tmp_path):
    config = yaml.safe_load(example("prometheus-config"))
    assert config["scrape_configs"][0]["scrape_interval"] == "15s"  # what the rules' timings assume
    (tmp_path / "alb-sg-monitor.yaml").write_text(RULES.read_text())
    config["rule_files"] = [str(tmp_path / "alb-sg-monitor.yaml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = run(tool("promtool", "prometheus"), "check", "config", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_per_job_rule_example_is_valid(tmp_path):
    text = example("rules")
    path = tmp_path / "per-job.yaml"
    path.write_text(text)
    result = run(tool("promtool", "prometheus"), "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    for group in yaml.safe_load(text)["groups"]:
        for rule in group["rules"]:
            assert rule["annotations"]["runbook_url"].startswith(RUNBOOK_URL)
            assert unknown_metrics(rule["expr"]) == {"up"}  # Prometheus's own, per scrape target


@pytest.fixture()
def alertmanager_config(tmp_path) -> Path:
    path = tmp_path / "alertmanager.yml"
    path.write_text(example("alertmanager-config"))
    return path


def test_alertmanager_example_is_valid(alertmanager_config):
    result = run(tool("amtool", "prometheus-alertmanager"), "check-config", alertmanager_config)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("labels, receiver", [
    (["severity=critical", "alertname=AlbSgLoadBalancerUnreachable", "load_balancer=k8s-shop-web-0a1b2c3d4e"], "pager"),
    (["severity=critical", "alertname=AlbSgMonitorAbsent"], "pager"),
    (["severity=warning", "alertname=AlbSgAwsApiErrors"], "chat"),
])
def test_alertmanager_example_pages_critical_and_chats_warnings(alertmanager_config, labels, receiver):
    result = run(tool("amtool", "prometheus-alertmanager"), "config", "routes", "test",
                 f"--config.file={alertmanager_config}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def test_every_shipped_severity_has_a_route(alertmanager_config):
    severities = {rule["labels"]["severity"] for group in yaml.safe_load(RULES.read_text())["groups"]
                  for rule in group["rules"]}
    routes = yaml.safe_load(alertmanager_config.read_text())["route"]["routes"]
    routed = {m.split("=", 1)[1].strip('"') for r in routes for m in r["matchers"] if m.startswith("severity=")}
    assert severities <= routed
