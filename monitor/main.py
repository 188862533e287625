"""The composition root: builds clients from settings and runs a command. Nothing else wires."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import structlog

from monitor import __version__, aws, logs, render, runner
from monitor.cycle import check_once, preflight_once
from monitor.daemon import Daemon
from monitor.metrics import Metrics
from monitor.server import Endpoints, HttpServer
from monitor.settings import Settings


def run_command(command: str, settings: Settings) -> int:
    if settings.demo and command != "demo":
        from monitor.demo import account

        account.start(settings.cluster_name)
    if command == "check":
        return check(settings)
    if command == "preflight":
        return preflight(settings)
    if command == "run":
        return run(settings)
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


def progress_line():
    """Progress on stderr while discovery runs, on a terminal only (one line, redrawn)."""
    if not sys.stderr.isatty():
        return None

    def show(text: str) -> None:
        sys.stderr.write(f"\r\033[K{text}...")
        sys.stderr.flush()

    return show


def _clear_progress() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def check(settings: Settings) -> int:
    clients = aws.connect(settings.region)
    report = check_once(clients, settings.cluster_name, kube_source(settings.kubernetes), progress_line())
    _clear_progress()
    print(render.to_json(report) if settings.output == "json" else render.to_table(report))
    return report.exit_code


def preflight(settings: Settings) -> int:
    clients = aws.connect(settings.region)
    report = preflight_once(clients, settings.cluster_name, kube_source(settings.kubernetes), progress_line())
    _clear_progress()
    print(render.to_json(report) if settings.output == "json" else render.to_table(report, title="preflight"))
    return report.exit_code


@dataclass(frozen=True)
class DaemonParts:
    """The daemon's parts, wired and not yet started (the demo starts them its own way)."""

    clients: aws.AwsClients
    metrics: Metrics
    daemon: Daemon
    server: HttpServer


def assemble_daemon(settings: Settings, clients: aws.AwsClients | None = None) -> DaemonParts:
    """Clients, metrics, daemon and a bound HTTP server. Raises ConfigError (exit 2) on a bad
    region, missing credentials or a --listen address in use, before anything runs."""
    clients = clients or aws.connect(settings.region)
    metrics = Metrics()
    clients.counter.listeners.append(metrics)
    daemon = Daemon(clients, settings.cluster_name, metrics, settings.interval, settings.topology_interval)
    server = HttpServer(settings.listen, Endpoints(metrics=metrics.exposition, health=daemon.health,
                                                   ready=daemon.ready))
    return DaemonParts(clients=clients, metrics=metrics, daemon=daemon, server=server)


def run(settings: Settings) -> int:
    """The daemon, until SIGTERM or SIGINT."""
    logs.configure(settings.log_format)
    parts = assemble_daemon(settings)
    log = structlog.get_logger("monitor.main")
    log.info("daemon_starting", cluster=settings.cluster_name, region=parts.clients.region, mode=settings.mode,
             listen=settings.listen, version=__version__)
    if settings.mode == "enforce":
        # Restoring rules is not wired into the daemon yet: say so rather than pretend.
        log.warning("remediation_unavailable", mode=settings.mode,
                    detail="enforce mode is not wired into the daemon in this version; observing only")
    return runner.run(parts.daemon, parts.server, settings.interval, settings.topology_interval)
