"""Runs the daemon until SIGTERM, SIGINT or SIGHUP: the APScheduler jobs, the HTTP server, a clean stop.

Signal handlers are installed explicitly, because as PID 1 in a container the kernel gives no
default action to SIGTERM: without a handler `docker stop` / pod deletion waits for SIGKILL.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from datetime import datetime, timedelta, timezone

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from monitor.daemon import Daemon
from monitor.server import HttpServer

log = structlog.get_logger("monitor.runner")

# How long a stop waits for a running cycle to end before leaving anyway: well inside the
# 30 s a Kubernetes pod gets between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def build_scheduler(daemon: Daemon, interval: float, topology_interval: float) -> BackgroundScheduler:
    """Two jobs, never two runs of one at once, missed runs coalesced into one. The first check
    discovers the topology itself; the refresh job then runs every topology interval, and at once
    when a check asks for it."""
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=2)},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": max(1, int(interval))},
        timezone=timezone.utc,
    )
    now = datetime.now(timezone.utc)
    scheduler.add_job(daemon.check, "interval", seconds=interval, id="check", name="rule check",
                      next_run_time=now)
    scheduler.add_job(daemon.refresh_topology, "interval", seconds=topology_interval, id="topology",
                      name="topology refresh", next_run_time=now + timedelta(seconds=topology_interval))

    def wake_topology(reason: str) -> None:
        if scheduler.running:
            scheduler.modify_job("topology", next_run_time=datetime.now(timezone.utc))

    daemon.on_refresh_wanted = wake_topology
    return scheduler


def install_stop_handlers(stop: threading.Event, received: list[str]) -> None:
    # The handler only records and sets: logging from a signal handler can re-enter a handler
    # lock the interrupted code holds.
    def handle(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    # SIGHUP too: a closed terminal or a supervisor's reload would otherwise end the process
    # without the stop (no running cycle waited for, no stop event logged).
    for signum in STOP_SIGNALS:
        signal.signal(signum, handle)


def run(daemon: Daemon, server: HttpServer, interval: float, topology_interval: float,
        stop: threading.Event | None = None, handle_signals: bool = True) -> int:
    """Serve and schedule until `stop` is set (by a signal when `handle_signals`). Returns 0."""
    stop = stop or threading.Event()
    received: list[str] = []
    if handle_signals:
        install_stop_handlers(stop, received)
    scheduler = build_scheduler(daemon, interval, topology_interval)
    server.start()
    scheduler.start()
    log.info("daemon_started", port=server.port, interval_seconds=interval,
             topology_interval_seconds=topology_interval)
    try:
        while not stop.wait(1.0):
            pass
        log.info("stop_requested", signal=received[0] if received else None)
    finally:
        scheduler.shutdown(wait=False)
        server.stop()
        idle = daemon.wait_idle(STOP_GRACE_SECONDS)
        log.info("daemon_stopped", cycles=daemon.cycles, cycle_interrupted=not idle)
    if not idle and handle_signals:
        # A cycle stuck in an AWS call would hold the interpreter's exit (worker threads are
        # joined at exit); the state it would produce is not worth a SIGKILL.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
