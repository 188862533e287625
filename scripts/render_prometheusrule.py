#!/usr/bin/env python3
"""Writes deploy/kubernetes/components/monitoring/prometheusrule.yaml from the plain rules in deploy/prometheus/alerts.yaml.

The plain file is the source: Prometheus loads it with `rule_files`, promtool tests it, and the
prometheus-operator gets the same groups as the `.spec` of a PrometheusRule. The rules are copied
as text, indented under `spec:`, so the comments that justify each threshold travel with them.
It also copies the rules and grafana/dashboard.json to where the Helm chart and the kustomize
component read them (neither Helm nor kustomize reads a file outside its own directory).

    python3 scripts/render_prometheusrule.py          # rewrite the PrometheusRule and the copies
    python3 scripts/render_prometheusrule.py --check  # exit 1 if any is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "deploy" / "prometheus" / "alerts.yaml"
TARGET = ROOT / "deploy" / "kubernetes" / "components" / "monitoring" / "prometheusrule.yaml"
DASHBOARD = ROOT / "grafana" / "dashboard.json"
CHART_FILES = ROOT / "deploy" / "helm" / "alb-sg-monitor" / "files"
# copy -> its source, byte for byte.
COPIES = {
    CHART_FILES / "alerts.yaml": SOURCE,
    CHART_FILES / "dashboard.json": DASHBOARD,
    TARGET.parent / "dashboard.json": DASHBOARD,
}

HEADER = """\
# Generated from deploy/prometheus/alerts.yaml by scripts/render_prometheusrule.py: edit that
# file and rerun the script. The prometheus-operator only loads PrometheusRules its Prometheus
# selects (spec.ruleSelector); kube-prometheus-stack, for one, wants a `release: <helm release>`
# label here. See docs/alerting.md. Part of the kustomize component components/monitoring.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: alb-sg-monitor
  # Set here: the base's namespace transformer does not reach resources a component adds.
  namespace: alb-sg-monitor
  labels:
    app.kubernetes.io/name: alb-sg-monitor
    app.kubernetes.io/component: alerting
    # What kube-prometheus-stack's default ruleSelector matches when its release is named
    # kube-prometheus-stack, like the ServiceMonitor's: set it to your Prometheus's ruleSelector.
    release: kube-prometheus-stack
spec:
"""


def render(rules_text: str) -> str:
    """The PrometheusRule manifest for a plain rules file (its leading comment block dropped)."""
    lines = rules_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = ["  " + line if line.strip() else "" for line in lines[start:]]
    return HEADER + "\n".join(body) + "\n"


def wanted() -> dict[Path, bytes]:
    """Every generated file and the content it must have."""
    files = {TARGET: render(SOURCE.read_text()).encode()}
    files.update({copy: source.read_bytes() for copy, source in COPIES.items()})
    return files


def main(argv: list[str]) -> int:
    files = wanted()
    if "--check" in argv:
        stale = [path for path, content in files.items() if not path.exists() or path.read_bytes() != content]
        for path in stale:
            print(f"{path} is out of date: run python3 scripts/render_prometheusrule.py", file=sys.stderr)
        return 1 if stale else 0
    for path, content in files.items():
        path.write_bytes(content)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
