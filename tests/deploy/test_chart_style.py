"""The checks `ct lint` (chart-testing) adds to helm lint: yamllint over the chart's Chart.yaml and
values.yaml with chart-testing's default rules, and yamale holding Chart.yaml to the shape of a
chart. The rules and the schema are in tests/deploy/chart-testing/."""

from __future__ import annotations

from pathlib import Path

import pytest
import yamale
from yamllint import linter
from yamllint.config import YamlLintConfig

from tests.support.helmchart import CHART

HERE = Path(__file__).resolve().parent / "chart-testing"
LINT_CONFIG = YamlLintConfig(file=str(HERE / "lintconf.yaml"))
SCHEMA = yamale.make_schema(str(HERE / "chart_schema.yaml"))


def lint_errors(text: str, name: str) -> list[str]:
    """What yamllint reports as errors (exit status 1, which fails `ct lint`); warnings do not fail it."""
    return [f"{name}:{p.line}:{p.column}: {p.message} ({p.rule})" for p in linter.run(text, LINT_CONFIG, name)
            if p.level == "error"]


def chart_errors(text: str) -> list[str]:
    try:
        yamale.validate(SCHEMA, yamale.make_data(content=text))
    except yamale.YamaleError as exc:
        return [error for result in exc.results for error in result.errors]
    return []


@pytest.mark.parametrize("name", ["Chart.yaml", "values.yaml"])
def test_yamllint_passes_the_chart_files(name):
    assert lint_errors((CHART / name).read_text(), name) == []


def test_chart_yaml_has_the_shape_ct_lint_checks():
    assert chart_errors((CHART / "Chart.yaml").read_text()) == []


@pytest.mark.parametrize("change, rule", [
    (lambda t: t.replace("replicaCount: 2", "replicaCount:  2"), "colons"),
    (lambda t: t.replace("replicaCount: 2", "replicaCount: 2   "), "trailing-spaces"),
    (lambda t: t.replace("revisionHistoryLimit: 5", "revisionHistoryLimit: 5\n\n\n\n"), "empty-lines"),
    (lambda t: t.replace("replicaCount: 2", "replicaCount: 2 # two"), "comments"),
    (lambda t: t.replace("replicaCount: 2", "replicaCount: 2\nreplicaCount: 3"), "key-duplicates"),
    (lambda t: t.replace("\n  create: true", "\n   create: true"), "indentation"),
    (lambda t: t.rstrip("\n"), "new-line-at-end-of-file"),
    (lambda t: t.replace("\n", "\r\n"), "new-lines"),
])
def test_yamllint_refuses_what_ct_lint_refuses(change, rule):
    errors = lint_errors(change((CHART / "values.yaml").read_text()), "values.yaml")
    assert any(f"({rule})" in e for e in errors), errors


@pytest.mark.parametrize("change, says", [
    (lambda t: t.replace("name: alb-sg-monitor\n", ""), "name: Required field missing"),
    (lambda t: t.replace("version: 0.1.0", "version: 0.1"), "version:"),
    (lambda t: t.replace("apiVersion: v2", "apiVersion: v1"), "apiVersion:"),
    (lambda t: t.replace("type: application", "type: app"), "type:"),
    (lambda t: t + "maintainer: me\n", "maintainer: Unexpected element"),
    (lambda t: t + "maintainers:\n  - email: me@example.com\n", "maintainers.0.name: Required field missing"),
])
def test_yamale_refuses_a_chart_yaml_ct_lint_refuses(change, says):
    errors = chart_errors(change((CHART / "Chart.yaml").read_text()))
    assert any(says in e for e in errors), errors


def test_a_description_is_required():
    text = (CHART / "Chart.yaml").read_text()
    start = text.index("description:")
    end = text.index("type: application")
    assert "description: Required field missing" in chart_errors(text[:start] + text[end:])
