"""The Grafana dashboard: built on SPEC's metrics, laid out on the grid, showing the cutover views.

What Grafana's dashboard linter would say of it (data source, rate windows, units, PromQL) is in
test_dashboard_lint.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.promql_names import SPEC_METRICS, metric_names, unknown_metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_FILE = ROOT / "grafana" / "dashboard.json"
DASHBOARD = json.loads(DASHBOARD_FILE.read_text())


def all_panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


PANELS = list(all_panels(DASHBOARD["panels"]))
QUERY_PANELS = [p for p in PANELS if p["type"] not in ("row", "text")]
TARGETS = [(p, t) for p in QUERY_PANELS for t in p.get("targets", [])]


def test_panel_ids_are_unique():
    ids = [p["id"] for p in PANELS]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


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
