"""The composition root: builds clients from settings and runs a command. Nothing else wires."""

from __future__ import annotations

import sys

from monitor import aws, render
from monitor.cycle import check_once
from monitor.settings import Settings


def run_command(command: str, settings: Settings) -> int:
    if command == "check":
        return check(settings)
    if command == "demo":
        from monitor.demo.story import run_demo

        return run_demo(settings)
    raise AssertionError(f"unknown command {command}")


def check(settings: Settings) -> int:
    clients = aws.connect(settings.region)
    report = check_once(clients, settings.cluster_name)
    print(render.to_json(report) if settings.output == "json" else render.to_table(report))
    return report.exit_code


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)
