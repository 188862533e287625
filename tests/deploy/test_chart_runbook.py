"""The chart's PrometheusRule links each alert to its section of the runbook at `runbookBaseUrl`:
the project's docs/runbook.md by default, a copy of one's own when set."""

from __future__ import annotations

import pytest

from tests.deploy.test_helm import CLUSTER
from tests.support.helmchart import CHART, helm, only, template

MONITORING = [*CLUSTER, "--set", "prometheusRule.enabled=true"]


def _links(objects: list[dict]) -> dict[str, str]:
    rule = only(objects, "PrometheusRule")
    return {r["alert"]: r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]
            if "alert" in r}


def test_runbook_base_url_sets_every_alerts_runbook_link():
    base = "https://wiki.example.com/ops/alb-sg-monitor-runbook"
    default = _links(template(*MONITORING))
    custom = _links(template(*MONITORING, "--set", f"runbookBaseUrl={base}"))
    assert default and custom.keys() == default.keys()
    for alert, link in custom.items():
        assert link == f"{base}#{default[alert].split('#', 1)[1]}", alert
        assert link.split("#", 1)[1] == alert.lower()


@pytest.mark.parametrize("url", ["wiki/runbook", "https://wiki.example.com/runbook#section", ""])
def test_runbook_base_url_must_be_an_address_without_a_fragment(url):
    done = helm("lint", str(CHART), *MONITORING, "--set", f"runbookBaseUrl={url}")
    assert done.returncode != 0 and "at '/runbookBaseUrl'" in done.stdout + done.stderr
