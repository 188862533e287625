#!/usr/bin/env python3
"""Writes deploy/kubernetes/components/monitoring/prometheusrule.yaml from the plain rules in deploy/prometheus/alerts.yaml.

The plain file is the source: Prometheus loads it with `rule_files`, promtool tests it, and the
prometheus-operator gets the same groups as the `.spec` of a PrometheusRule. The rules are copied
as text, indented under `spec:`, so the comments that justify each threshold travel with them.

    python3 scripts/render_prometheusrule.py          # rewrite the PrometheusRule
    python3 scripts/render_prometheusrule.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "deploy" / "prometheus" / "alerts.yaml"
TARGET = ROOT / "deploy" / "kubernetes" / "components" / "monitoring" / "prometheusrule.yaml"

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
spec:
"""


def render(rules_text: str) -> str:
    """The PrometheusRule manifest for a plain rules file (its leading comment block dropped)."""
    lines = rules_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = ["  " + line if line.strip() else "" for line in lines[start:]]
    return HEADER + "\n".join(body) + "\n"


def main(argv: list[str]) -> int:
    wanted = render(SOURCE.read_text())
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != wanted:
            print(f"{TARGET} is out of date: run python3 scripts/render_prometheusrule.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
