"""The Grafana dashboard held to what Grafana's dashboard linter checks, each check also shown to catch a broken copy.

No Grafana runs here, so what the linter would say is checked on the JSON: one templated Prometheus
data source used by every panel and query, `$__rate_interval` as the window of every rate, a unit,
a title and a description on every panel, a query on every panel that is not a row or text, and
PromQL the real parser (promtool) accepts. Each check is a function returning the problems it
finds: the shipped dashboard must have none, and a copy broken on purpose must have some.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.deploy.test_dashboard import DASHBOARD, all_panels

# Panels that show no query result.
NO_QUERY_TYPES = {"row", "text"}
# Grafana's unit ids (its value formats) this dashboard has a use for; a misspelt id renders raw numbers.
UNITS = {"none", "short", "percent", "percentunit", "bool", "bool_yes_no",
         "ns", "µs", "ms", "s", "m", "h", "d", "dtdurations", "dtdurationms", "dateTimeAsIso", "dateTimeFromNow",
         "reqps", "ops", "cps", "rps", "wps", "iops", "opm", "rpm", "cpm", "bytes", "decbytes"}
PER_SECOND_UNITS = {"reqps", "ops", "cps", "rps", "wps", "iops"}
TIME_UNITS = {"ns", "µs", "ms", "s", "m", "h", "d", "dtdurations", "dtdurationms"}
RATE_FUNCTIONS = ("rate", "irate", "increase")
# Fixed windows a panel needs (to show exactly what an alert rule evaluates, say): (panel title,
# window) -> why. The panel's description must name the window.
FIXED_WINDOWS: dict[tuple[str, str], str] = {
    ("Disputes in the last 24 h", "24h"): "a count of episodes over one day, whatever time range is shown",
}
# What Grafana puts in for its own variables, as values of the same kind.
BUILTIN_VALUES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")

Check = Callable[[dict], list[str]]


def panels(dashboard: dict) -> list[dict]:
    return list(all_panels(dashboard["panels"]))


def query_panels(dashboard: dict) -> list[dict]:
    return [p for p in panels(dashboard) if p["type"] not in NO_QUERY_TYPES]


def _uid(datasource: dict | str | None) -> str | None:
    # Older dashboards name the data source with a bare string, newer ones with {type, uid}.
    return datasource if isinstance(datasource, str) or datasource is None else datasource.get("uid")


def datasource_problems(dashboard: dict) -> list[str]:
    """One Prometheus data source variable, and every panel, target and query variable using it."""
    variables = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    if len(variables) != 1:
        return [f"{len(variables)} data source variables, want one"]
    (variable,) = variables
    problems = []
    if variable["name"] != "datasource" or variable.get("query") != "prometheus":
        problems.append(f"data source variable {variable['name']!r} of {variable.get('query')!r}")
    if variable.get("label") not in ("Data source", "Prometheus data source"):
        problems.append(f"data source variable labelled {variable.get('label')!r}, want 'Data source'")
    templated = {"$datasource", "${datasource}"}
    for other in dashboard["templating"]["list"]:
        if other["type"] == "query" and _uid(other.get("datasource")) not in templated:
            problems.append(f"variable {other['name']!r} queries {other.get('datasource')!r}")
    for panel in query_panels(dashboard):
        datasource = panel.get("datasource")
        if _uid(datasource) not in templated or isinstance(datasource, dict) and datasource.get("type") != "prometheus":
            problems.append(f"{panel['title']!r} uses {datasource!r}")
        for target in panel.get("targets", []):
            if _uid(target.get("datasource", panel.get("datasource"))) not in templated:
                problems.append(f"{panel['title']!r} {target['refId']} uses {target.get('datasource')!r}")
    return problems


def variable_problems(dashboard: dict) -> list[str]:
    """Job and instance pickers that reload with the time range, and every series selector filtered by both."""
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    problems = []
    for name in ("job", "instance"):
        variable = variables.get(name, {})
        if variable.get("type") != "query" or not (variable.get("multi") and variable.get("includeAll")):
            problems.append(f"no multi-value {name!r} query variable with All")
    problems += [f"variable {v['name']!r} does not reload on a time range change (refresh {v.get('refresh')!r})"
                 for v in variables.values() if v["type"] == "query" and v.get("refresh") != 2]
    for panel in query_panels(dashboard):
        for target in panel.get("targets", []):
            for selector in re.finditer(r"(?<![\w:])(albsg_\w+)\s*(\{[^}]*\})?", target.get("expr", "")):
                matchers = selector.group(2) or ""
                if 'job=~"$job"' not in matchers or 'instance=~"$instance"' not in matchers:
                    problems.append(f"{panel['title']!r}: {selector.group(0)} is not filtered by $job and $instance")
    return problems


def range_windows(expr: str) -> list[tuple[str, str]]:
    """(function, window) for every range selector of an expression; subqueries ([1h:1m]) left out."""
    found = []
    for match in re.finditer(r"\[([^\]:]+)\]", expr):
        depth, i = 0, match.start() - 1
        while i >= 0 and not (expr[i] == "(" and depth == 0):
            depth += {")": 1, "(": -1}.get(expr[i], 0)
            i -= 1
        function = re.search(r"(\w*)\s*$", expr[:max(i, 0)]).group(1) if i >= 0 else ""
        found.append((function, match.group(1).strip()))
    return found


def rate_window_problems(dashboard: dict, fixed_windows: dict[tuple[str, str], str] = FIXED_WINDOWS) -> list[str]:
    """rate/irate/increase over $__rate_interval, or over a fixed window that is listed and explained."""
    problems = []
    for panel in query_panels(dashboard):
        for target in panel.get("targets", []):
            for function, window in range_windows(target.get("expr", "")):
                if function not in RATE_FUNCTIONS or window == "$__rate_interval":
                    continue
                if (panel["title"], window) not in fixed_windows:
                    problems.append(f"{panel['title']!r}: {function}(…[{window}]) instead of $__rate_interval")
                elif window not in panel.get("description", ""):
                    problems.append(f"{panel['title']!r}: its description does not say why [{window}] is fixed")
    return problems


def _unit(panel: dict) -> str | None:
    return panel.get("fieldConfig", {}).get("defaults", {}).get("unit")


def unit_problems(dashboard: dict) -> list[str]:
    """A known unit on every panel that shows a query's numbers, overrides included."""
    problems = []
    for panel in query_panels(dashboard):
        if _unit(panel) not in UNITS:
            problems.append(f"{panel['title']!r} has unit {_unit(panel)!r}")
        for override in panel.get("fieldConfig", {}).get("overrides", []):
            for prop in override.get("properties", []):
                if prop["id"] == "unit" and prop.get("value") not in UNITS:
                    problems.append(f"{panel['title']!r} overrides unit to {prop.get('value')!r}")
    return problems


def unit_meaning_problems(dashboard: dict) -> list[str]:
    """Durations in a time unit, per-second rates in a per-second one (not a bare number)."""
    problems = []
    for panel in query_panels(dashboard):
        exprs = [t.get("expr", "") for t in panel.get("targets", [])]
        if any("histogram_quantile(" in e or "time() -" in e for e in exprs):
            if _unit(panel) not in TIME_UNITS:
                problems.append(f"{panel['title']!r} shows durations in {_unit(panel)!r}")
        elif any(re.search(r"\b(?:i?rate)\s*\(", e) for e in exprs) and _unit(panel) not in PER_SECOND_UNITS:
            problems.append(f"{panel['title']!r} shows a per-second rate in {_unit(panel)!r}")
    return problems


def title_description_problems(dashboard: dict) -> list[str]:
    problems = [f"panel {p['id']} has no title" for p in panels(dashboard) if not p.get("title", "").strip()]
    problems += [f"{p.get('title')!r} has no description" for p in query_panels(dashboard)
                 if not p.get("description", "").strip()]
    return problems


def no_query_problems(dashboard: dict) -> list[str]:
    return [f"{p['title']!r} has no query" for p in query_panels(dashboard)
            if not any(t.get("expr", "").strip() for t in p.get("targets", []))]


def concrete(expr: str, dashboard: dict) -> str:
    """The expression with Grafana's variables replaced by values Prometheus would see."""
    # The dashboard's own variables are used in regex matchers (=~), where ".*" stands for All.
    values = {v["name"]: ".*" for v in dashboard["templating"]["list"] if v["type"] in ("query", "custom")}
    values |= BUILTIN_VALUES

    def value(match: re.Match) -> str:
        name = next(group for group in match.groups() if group)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(value, expr)


def queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) for every target and for the series selector of every label_values() variable."""
    found = [(f"{p['title']} {t['refId']}", t.get("expr", "")) for p in query_panels(dashboard)
             for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            selector = re.fullmatch(r"\s*label_values\((.+),\s*\w+\s*\)\s*", query)
            if selector:
                found.append((f"variable {variable['name']}", selector.group(1)))
    return found


def promql_problems(dashboard: dict) -> list[str]:
    """What promtool says of every query, each wrapped as a recording rule."""
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.fail("promtool is required (Debian package `prometheus`; .ci/run installs it)")
    problems, rules = [], []
    for i, (where, expr) in enumerate(queries(dashboard)):
        text = concrete(expr, dashboard)
        if "$" in text or "[[" in text:
            problems.append(f"{where}: unknown variable in {expr}")
        # Named after the panel, so that promtool's complaint says which query it is.
        name = re.sub(r"\W+", "_", where).strip("_").lower()
        rules.append({"record": f"dashboard:q{i}_{name}", "expr": text})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dashboard-queries.yaml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        problems.append(result.stdout + result.stderr)
    return problems


CHECKS: dict[str, Check] = {
    "datasource": datasource_problems,
    "variables": variable_problems,
    "rate windows": rate_window_problems,
    "units": unit_problems,
    "unit meaning": unit_meaning_problems,
    "titles and descriptions": title_description_problems,
    "queries": no_query_problems,
    "promql": promql_problems,
}


@pytest.mark.parametrize("name", CHECKS)
def test_the_dashboard_passes(name):
    assert CHECKS[name](DASHBOARD) == []


def test_range_windows_finds_the_function_each_window_belongs_to():
    expr = 'histogram_quantile(0.9, sum by (le) (rate(x_bucket{a=~"b"}[$__rate_interval]))) / max_over_time(y[1h:1m])' \
           ' + increase(z[5m]) + avg_over_time(w[10m])'
    assert range_windows(expr) == [("rate", "$__rate_interval"), ("increase", "5m"), ("avg_over_time", "10m")]


def _panel(dashboard: dict, title: str) -> dict:
    return next(p for p in panels(dashboard) if p["title"] == title)


def _edit_expr(title: str, old: str, new: str) -> Callable[[dict], None]:
    def edit(dashboard: dict) -> None:
        target = _panel(dashboard, title)["targets"][0]
        assert old in target["expr"]
        target["expr"] = target["expr"].replace(old, new)
    return edit


def _set(title: str, *path_and_value) -> Callable[[dict], None]:
    *path, key, value = path_and_value

    def edit(dashboard: dict) -> None:
        node = _panel(dashboard, title)
        for step in path:
            node = node[step]
        node[key] = value
    return edit


def _drop_datasource_variable(dashboard: dict) -> None:
    dashboard["templating"]["list"] = [v for v in dashboard["templating"]["list"] if v["type"] != "datasource"]


def _label_datasource_variable(dashboard: dict) -> None:
    next(v for v in dashboard["templating"]["list"] if v["type"] == "datasource")["label"] = "Prometheus"


def _add_text_panel(dashboard: dict) -> None:
    dashboard["panels"].append({"id": 99, "type": "text", "title": "Notes", "options": {"content": "read me"}})


# A copy of the dashboard broken one way -> the check that must notice it.
BROKEN: dict[str, tuple[Check, Callable[[dict], None]]] = {
    "no datasource variable": (datasource_problems, _drop_datasource_variable),
    "datasource variable labelled by its type": (datasource_problems, _label_datasource_variable),
    "panel on a hard-coded uid": (datasource_problems, _set("Cycle duration", "datasource", {
        "type": "prometheus", "uid": "P1809F7CD0C75ACF3"})),
    "target on a data source name": (datasource_problems, lambda d: _panel(d, "Version")["targets"][0].update(
        datasource="Prometheus")),
    "panel on another type of data source": (datasource_problems, _set("Observation", "datasource", {
        "type": "loki", "uid": "${datasource}"})),
    "job picker reloads only on load": (variable_problems, lambda d: d["templating"]["list"][1].update(refresh=1)),
    "no instance picker": (variable_problems, lambda d: d["templating"].update(list=d["templating"]["list"][:2])),
    "selector without $instance": (variable_problems, _edit_expr("Version", ', instance=~"$instance"', "")),
    "selector without matchers": (variable_problems, _edit_expr("Remediation", '{job=~"$job", instance=~"$instance"}',
                                                               "")),
    "rate over a fixed 5m": (rate_window_problems, _edit_expr("AWS calls by operation", "$__rate_interval", "5m")),
    "increase over a fixed 1h": (rate_window_problems, _edit_expr("Rule revocations by ALB", "$__rate_interval", "1h")),
    "no unit": (unit_problems, lambda d: _panel(d, "Since last complete cycle")["fieldConfig"]["defaults"].pop("unit")),
    "unit Grafana does not know": (unit_problems, _set("Cycle duration", "fieldConfig", "defaults", "unit", "seconds")),
    "override to an unknown unit": (unit_problems, lambda d: _panel(d, "ALB reachability now")["fieldConfig"][
        "overrides"].append({"matcher": {"id": "byName", "options": "Value"}, "properties": [{"id": "unit",
                                                                                               "value": "sec"}]})),
    "durations as bare numbers": (unit_meaning_problems, _set("Cycle duration", "fieldConfig", "defaults", "unit",
                                                              "none")),
    "rate as bare numbers": (unit_meaning_problems, _set("AWS errors by operation and code", "fieldConfig", "defaults",
                                                         "unit", "short")),
    "no description": (title_description_problems, lambda d: _panel(d, "Observation").pop("description")),
    "blank title": (title_description_problems, _set("Version", "title", " ")),
    "panel without a query": (no_query_problems, _set("Remediation", "targets", [])),
    "panel with an empty query": (no_query_problems, _set("Remediation", "targets", [{"refId": "A", "expr": " "}])),
    "unbalanced parenthesis": (promql_problems, _edit_expr("Findings by code", ") > 0", " > 0")),
    "variable Grafana does not define": (promql_problems, _edit_expr("Cycle duration", "$__rate_interval", "$window")),
    "broken variable query": (promql_problems, lambda d: d["templating"]["list"][-1]["query"].update(
        query='label_values(albsg_build_info{job=~"$job", instance), instance)')),
}


@pytest.mark.parametrize("name", BROKEN)
def test_each_check_catches_a_broken_copy(name):
    check, breakage = BROKEN[name]
    broken = copy.deepcopy(DASHBOARD)
    breakage(broken)
    assert check(broken) != []


def test_text_panels_need_no_query_or_datasource():
    with_text = copy.deepcopy(DASHBOARD)
    _add_text_panel(with_text)
    for check in (no_query_problems, datasource_problems, unit_problems, title_description_problems):
        assert check(with_text) == []


def test_a_fixed_window_passes_only_when_listed_and_explained():
    title = "AWS calls by operation"
    fixed = copy.deepcopy(DASHBOARD)
    _edit_expr(title, "$__rate_interval", "5m")(fixed)
    listed = {**FIXED_WINDOWS, (title, "5m"): "the window AlbSgExample evaluates"}
    assert rate_window_problems(fixed) != []
    assert rate_window_problems(fixed, listed) == [f"{title!r}: its description does not say why [5m] is fixed"]
    _panel(fixed, title)["description"] += " Over 5m, the window the alert rule evaluates."
    assert rate_window_problems(fixed, listed) == []
