"""The alert rules: valid for the real promtool, unit-tested, documented, and built on SPEC's metrics."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.promql_names import SPEC_METRICS, unknown_metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
PROMETHEUS_RULE = ROOT / "deploy" / "kubernetes" / "components" / "monitoring" / "prometheusrule.yaml"
RUNBOOK = ROOT / "docs" / "runbook.md"
UNIT_TESTS = sorted((ROOT / "tests" / "alerts").glob("*.test.yaml"))
RUNBOOK_URL = "https://github.com/alb-sg-monitor/alb-sg-monitor/blob/main/docs/runbook.md#"


def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if not found:
        pytest.fail("promtool is required (Debian package `prometheus`; .ci/run installs it)")
    return found


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120)


def alerts(document: dict) -> list[dict]:
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


ALERTS = alerts(yaml.safe_load(RULES.read_text()))
ALERT_NAMES = [a["alert"] for a in ALERTS]


def github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub generates for the headings of a Markdown file."""
    anchors: set[str] = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"#{1,6}\s+(.*)", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_promtool_accepts_the_rules():
    result = run(promtool(), "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_pass():
    assert UNIT_TESTS, "no promtool unit tests in tests/alerts"
    result = run(promtool(), "test", "rules", *UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


def _unit_test_cases() -> dict[str, dict[str, int]]:
    """alertname -> how many checks expect it firing / silent, over every unit test file."""
    seen: dict[str, dict[str, int]] = {}
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", ()):
                kind = "firing" if check.get("exp_alerts") else "silent"
                seen.setdefault(check["alertname"], {"firing": 0, "silent": 0})[kind] += 1
    return seen


@pytest.mark.parametrize("name", ALERT_NAMES)
def test_every_alert_has_a_firing_and_a_silent_unit_test(name):
    cases = _unit_test_cases().get(name, {"firing": 0, "silent": 0})
    assert cases["firing"] and cases["silent"], f"{name}: {cases}"


def test_unit_tests_only_name_real_alerts():
    assert set(_unit_test_cases()) <= set(ALERT_NAMES)


def _with_reachability_for(tmp_path: Path, duration: str) -> Path:
    """A copy of the rules and the reachability unit tests with another `for` on the page."""
    document = yaml.safe_load(RULES.read_text())
    for rule in alerts(document):
        if rule["alert"] == "AlbSgLoadBalancerUnreachable":
            rule["for"] = duration
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(document))
    tests = yaml.safe_load((ROOT / "tests" / "alerts" / "reachability.test.yaml").read_text())
    tests["rule_files"] = ["alerts.yaml"]
    target = tmp_path / "reachability.test.yaml"
    target.write_text(yaml.safe_dump(tests))
    return target


@pytest.mark.parametrize("duration, failing_case", [
    ("10s", "a 5-second swap seen by one check cycle, scraped every 15s, does not page"),
    ("20s", "the same swap scraped every 30s (one sample of 0 held 30s) does not page"),
    ("90s", "sustained loss pages after 45s, naming the ALB and its Ingress"),
])
def test_reachability_unit_tests_catch_a_wrong_for(tmp_path, duration, failing_case):
    # The blip tests would pass vacuously if the series never made the alert pending; a shorter
    # `for` must make them fail, and a longer one must fail the "pages within a minute" test.
    result = run(promtool(), "test", "rules", _with_reachability_for(tmp_path, duration), cwd=tmp_path)
    assert result.returncode != 0
    assert f"name: {failing_case}" in result.stdout + result.stderr


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_every_alert_has_severity_and_annotations(alert):
    assert alert["labels"]["severity"] in ("critical", "warning")
    annotations = alert["annotations"]
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{alert['alert']} lacks {key}"
    assert annotations["runbook_url"].startswith(RUNBOOK_URL)


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_every_runbook_url_leads_to_a_section_of_the_runbook(alert):
    anchor = alert["annotations"]["runbook_url"].removeprefix(RUNBOOK_URL)
    assert anchor in github_anchors(RUNBOOK.read_text()), f"docs/runbook.md has no section #{anchor}"


def test_runbook_links_inside_the_runbook_resolve():
    text = RUNBOOK.read_text()
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links and links <= github_anchors(text), links - github_anchors(text)


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_alerts_about_an_alb_name_it(alert):
    if "albsg_load_balancer_reachable" in alert["expr"] or "albsg_rule_revocations_total" in alert["expr"]:
        assert "$labels.load_balancer" in alert["annotations"]["summary"]
        assert "$labels.load_balancer" in alert["annotations"]["description"]
    if "albsg_load_balancer_reachable" in alert["expr"]:
        assert "$labels.ingress" in alert["annotations"]["description"]


@pytest.mark.parametrize("alert", ALERTS, ids=ALERT_NAMES)
def test_rules_only_read_metrics_spec_defines(alert):
    assert not unknown_metrics(alert["expr"]), f"{alert['alert']} reads metrics not in docs/reference.md"


def test_the_rules_watch_every_state_a_page_depends_on():
    used = set().union(*(re.findall(r"albsg_\w+", a["expr"]) for a in ALERTS))
    for metric in ("albsg_load_balancer_reachable", "albsg_findings", "albsg_observation_complete",
                   "albsg_last_success_timestamp_seconds", "albsg_aws_api_errors_total",
                   "albsg_remediations_total", "albsg_build_info"):
        assert metric in used and metric in SPEC_METRICS


def _render_module():
    spec = importlib.util.spec_from_file_location("render_prometheusrule", ROOT / "scripts" / "render_prometheusrule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prometheusrule_is_rendered_from_the_plain_rules():
    expected = _render_module().render(RULES.read_text())
    assert PROMETHEUS_RULE.read_text() == expected, "run: python3 scripts/render_prometheusrule.py"


def test_prometheusrule_spec_equals_the_plain_rules(tmp_path):
    manifest = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["metadata"]["name"] == "alb-sg-monitor"
    assert manifest["metadata"]["namespace"] == "alb-sg-monitor"
    assert manifest["spec"] == yaml.safe_load(RULES.read_text())
    # What the operator hands to Prometheus must load in Prometheus too.
    extracted = tmp_path / "spec.yaml"
    extracted.write_text(yaml.safe_dump(manifest["spec"]))
    result = run(promtool(), "check", "rules", extracted)
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_script_check_mode_reports_a_stale_manifest(tmp_path):
    module = _render_module()
    module.TARGET = tmp_path / "prometheusrule.yaml"
    module.TARGET.write_text("stale\n")
    module.SOURCE = RULES
    module.COPIES = {tmp_path / "alerts.yaml": RULES}
    assert module.main(["--check"]) == 1
    assert module.main([]) == 0
    assert module.main(["--check"]) == 0
    assert (tmp_path / "alerts.yaml").read_bytes() == RULES.read_bytes()
    (tmp_path / "alerts.yaml").write_text("groups: []\n")
    assert module.main(["--check"]) == 1, "a stale copy must be reported too"
