"""The metric names of docs/reference.md, and a small extractor of the metric names a PromQL expression reads.

Shared by the tests of the alert rules, the dashboard and the alerting docs, which may only use
metrics the daemon promises to export.
"""

from __future__ import annotations

import re

# The Metrics table of docs/reference.md (names, types and labels are fixed there).
SPEC_METRICS: dict[str, str] = {
    "albsg_load_balancer_reachable": "gauge",
    "albsg_findings": "gauge",
    "albsg_rule_revocations_total": "counter",
    "albsg_remediations_total": "counter",
    "albsg_observation_complete": "gauge",
    "albsg_last_success_timestamp_seconds": "gauge",
    "albsg_cycle_duration_seconds": "histogram",
    "albsg_aws_api_calls_total": "counter",
    "albsg_aws_api_errors_total": "counter",
    "albsg_remediation_enabled": "gauge",
    "albsg_build_info": "gauge",
    "albsg_paths": "gauge",
    "albsg_targets": "gauge",
    "albsg_verdict_disputes_total": "counter",
}

# Exported beyond that table, documented in docs/reference.md or docs/daemon.md, and read by alert rules.
MORE_METRICS: dict[str, str] = {
    "albsg_load_balancer_disputed": "gauge",
    "albsg_state_persisted": "gauge",
    "albsg_state_save_failures_total": "counter",
    "albsg_cycle_failures_total": "counter",
}

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
             "group_left", "group_right", "atan2", "inf", "nan"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{?\w+(?::\w+)?\}?")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_NUMBER = re.compile(r"(?<![\w:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects; histogram series map to their family name."""
    text = _GRAFANA_VARIABLE.sub("1m", expr)
    text = _STRING.sub('""', text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group(0)
        if word.lower() in _KEYWORDS or re.match(r"\s*\(", text[match.end():]):
            continue  # an operator keyword, or a function or aggregation being called
        names.add(_family(word))
    return names


def _family(name: str) -> str:
    for suffix in _HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and SPEC_METRICS.get(base) == "histogram":
            return base
    return name


def unknown_metrics(expr: str) -> set[str]:
    return metric_names(expr) - set(SPEC_METRICS) - set(MORE_METRICS)
