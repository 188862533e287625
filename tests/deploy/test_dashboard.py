"""The Grafana dashboard: valid, portable between Prometheus data sources, and built on SPEC's metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.promql_names import SPEC_METRICS, metric_names, unknown_metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_FILE = ROOT / "grafana" / "dashboard.json"
DASHBOARD = json.loads(DASHBOARD_FILE.read_text())
DATASOURCE = "${datasource}"


def all_panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


PANELS = list(all_panels(DASHBOARD["panels"]))
QUERY_PANELS = [p for p in PANELS if p["type"] != "row"]
TARGETS = [(p, t) for p in QUERY_PANELS for t in p.get("targets", [])]


def test_panel_ids_are_unique():
    ids = [p["id"] for p in PANELS]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_datasource_is_a_variable_of_type_prometheus():
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == DATASOURCE


@pytest.mark.parametrize("panel", QUERY_PANELS, ids=lambda p: p["title"])
def test_every_query_goes_to_the_chosen_datasource(panel):
    assert panel["targets"], f"panel {panel['title']!r} has no query"
    assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE}
    for target in panel["targets"]:
        assert target["datasource"]["uid"] == DATASOURCE


@pytest.mark.parametrize("panel, target", TARGETS, ids=lambda x: x.get("title", x.get("refId")))
def test_queries_only_read_metrics_spec_defines(panel, target):
    assert metric_names(target["expr"]), f"{panel['title']}: reads no metric"
    assert not unknown_metrics(target["expr"]), f"{panel['title']}: {target['expr']}"


def test_every_spec_metric_is_on_the_dashboard():
    used = set().union(*(metric_names(t["expr"]) for _, t in TARGETS))
    assert set(SPEC_METRICS) - used == set()


def test_ref_ids_are_unique_within_a_panel():
    for panel in QUERY_PANELS:
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_every_query_parses_in_prometheus(tmp_path):
    # Grafana's variables replaced by values of the same kind, then every query checked by the
    # real PromQL parser as a recording rule.
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.fail("promtool is required (Debian package `prometheus`; .ci/run installs it)")
    substitutions = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h",
                     "$job": ".*", "$instance": ".*"}
    rules = []
    for panel, target in TARGETS:
        expr = target["expr"]
        for variable, value in substitutions.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unknown variable in {target['expr']}"
        rules.append({"record": f"dashboard:panel_{panel['id']}:{target['refId']}", "expr": expr})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_panels_do_not_overlap_and_fit_the_grid():
    taken: dict[tuple[int, int], str] = {}
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


def _panels_reading(metric: str, *types: str) -> list[dict]:
    return [p for p in QUERY_PANELS if p["type"] in types
            and any(metric in metric_names(t["expr"]) for t in p["targets"])]


def test_reachability_is_shown_per_alb_and_ingress():
    timelines = _panels_reading("albsg_load_balancer_reachable", "state-timeline")
    assert any(all(f"{{{{{label}}}}}" in t["legendFormat"] for label in ("load_balancer", "ingress"))
               for p in timelines for t in p["targets"])
    tables = _panels_reading("albsg_load_balancer_reachable", "table")
    assert tables and all(t.get("format") == "table" and t.get("instant") for p in tables for t in p["targets"])
    # 0 and 1 read as words, not numbers, in both.
    for panel in timelines + tables:
        texts = json.dumps(panel["fieldConfig"]["defaults"]["mappings"])
        assert "UNREACHABLE" in texts and "reachable" in texts


def test_the_cutover_views_are_there():
    def queries(metric: str) -> list[str]:
        return [t["expr"] for p, t in TARGETS if metric in metric_names(t["expr"])]

    assert any(re.search(r"by \(code", e) for e in queries("albsg_findings"))
    assert any("increase(" in e and "load_balancer" in e for e in queries("albsg_rule_revocations_total"))
    assert any("by (result)" in e for e in queries("albsg_remediations_total"))
    assert any("operation" in e for e in queries("albsg_aws_api_calls_total"))
    assert any("operation" in e and "code" in e for e in queries("albsg_aws_api_errors_total"))
    quantiles = {m.group(1) for e in queries("albsg_cycle_duration_seconds")
                 for m in [re.search(r"histogram_quantile\(([\d.]+),", e)] if m}
    assert {"0.5", "0.9", "0.99"} <= quantiles
    assert queries("albsg_observation_complete")
