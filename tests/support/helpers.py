"""Small helpers for tests that drive the real CLI in-process."""

from __future__ import annotations

import json
from typing import Any

from monitor.cli import main


def run_check(capsys, cluster: str, *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["check", "--cluster-name", cluster, "--output", "json", *extra])
    out = capsys.readouterr().out
    return code, json.loads(out)


def lb_by_name(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(lb for lb in report["load_balancers"] if lb["name"] == name)


def codes(report: dict[str, Any]) -> list[str]:
    return [f["code"] for f in report["findings"]]
