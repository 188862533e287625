"""The composition root: builds clients from settings and runs a command. Nothing else wires."""

from __future__ import annotations

from monitor import aws, render
from monitor.cycle import check_once, preflight_once
from monitor.settings import Settings


def run_command(command: str, settings: Settings) -> int:
    if command == "check":
        return check(settings)
    if command == "preflight":
        return preflight(settings)
    if command == "demo":
        from monitor.demo.story import run_demo

        return run_demo(settings)
    raise AssertionError(f"unknown command {command}")


def kube_source(mode: str):
    """The Kubernetes reader for --kubernetes auto|on|off; None when off or (auto) not configured."""
    if mode == "off":
        return None
    from monitor.kube import client as kube_client
    from monitor.kube.reader import ClusterReader

    api = kube_client.connect(mode)
    return ClusterReader(api) if api is not None else None


def check(settings: Settings) -> int:
    clients = aws.connect(settings.region)
    report = check_once(clients, settings.cluster_name, kube_source(settings.kubernetes))
    print(render.to_json(report) if settings.output == "json" else render.to_table(report))
    return report.exit_code


def preflight(settings: Settings) -> int:
    clients = aws.connect(settings.region)
    report = preflight_once(clients, settings.cluster_name, kube_source(settings.kubernetes))
    print(render.to_json(report) if settings.output == "json" else render.to_table(report, title="preflight"))
    return report.exit_code
