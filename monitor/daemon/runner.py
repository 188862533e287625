"""Runs the daemon until SIGTERM, SIGINT, SIGHUP, SIGQUIT or SIGXCPU: the APScheduler jobs, the HTTP
server, a clean stop.

Signal handlers are installed explicitly, because as PID 1 in a container the kernel gives no
default action to SIGTERM: without a handler `docker stop` / pod deletion waits for SIGKILL. The
other signals whose default action would end the process without a word (SIGUSR1, SIGALRM, ...) are
ignored and logged: a stray `kill -USR1` must not stop enforcement (docs/daemon.md, Signals).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from monitor.daemon.loop import Daemon
from monitor.daemon.ports import Server

log = structlog.get_logger("monitor.runner")

# How long a stop waits for a running cycle to end before leaving anyway: well inside the
# 30 s a Kubernetes pod gets between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 5.0
HEALTH_TICK_SECONDS = 1.0  # how often the health job looks for reads that are due

# SIGHUP too: a closed terminal or a supervisor's reload would otherwise end the process without
# the stop (no running cycle waited for, no stop event logged). SIGQUIT is a terminal's other quit
# key (Ctrl-\); SIGXCPU warns that a CPU-time limit is reached, SIGKILL follows at the hard limit.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGXCPU)
# Signals whose default action ends the process but that nobody sends to ask for a stop: each is
# ignored with a `signal_ignored` line. (SIGPIPE and SIGXFSZ Python already ignores: the write that
# caused one fails with an error instead.)
IGNORED_SIGNALS = tuple(getattr(signal, name) for name in
                        ("SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR")
                        if hasattr(signal, name))


# APScheduler warns once per skipped run of a job that is still running; OverrunLog says it once.
_SKIPPED_RUN_MESSAGES = frozenset({
    'Execution of job "%s" skipped: maximum number of running instances reached (%d)',
    'Run time of job "%s" was missed by %s',
})


def _not_a_skipped_run(record: logging.LogRecord) -> bool:
    return record.msg not in _SKIPPED_RUN_MESSAGES


class OverrunLog:
    """One `cycle_overrun` warning when a loop starts skipping runs (the last one still running at
    the next one's time), one `cycle_overrun_ended` when a run ends within its interval again: an
    overrun episode is two lines, however many runs it skipped.

    A run skipped because the loop was woken early (an AWS event asks for a check at once) while
    a run that is still within its interval goes on is no overrun, and neither is the first
    discovery (`starting`): start-up, said by the daemon itself."""

    def __init__(self, intervals: dict[str, float], starting: Callable[[], bool] = lambda: False,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._intervals = intervals
        self._starting = starting
        self._monotonic = monotonic
        self._skipped: dict[str, int] = {}  # loop -> runs skipped in its current episode
        self._began: dict[str, float] = {}  # loop -> when its running run was submitted
        self._lock = threading.Lock()

    def __call__(self, event: JobEvent) -> None:
        loop = event.job_id
        if loop not in self._intervals:
            return  # the health job runs whenever reads are due: a skipped tick is no overrun
        with self._lock:
            if event.code == EVENT_JOB_SUBMITTED:
                self._began[loop] = self._monotonic()
                return
            if event.code == EVENT_JOB_MAX_INSTANCES and loop not in self._skipped:
                running_for = self._monotonic() - self._began.get(loop, self._monotonic())
                if running_for < self._intervals.get(loop, 0.0) or self._starting():
                    return  # woken early during a run on time, or the first discovery: no overrun
            if event.code in (EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED):
                skipped = self._skipped.get(loop, 0) + 1
                self._skipped[loop] = skipped
                if skipped == 1:
                    log.warning("cycle_overrun", loop=loop, interval_seconds=self._intervals.get(loop))
                return
            if loop not in self._skipped:
                return
            scheduled = getattr(event, "scheduled_run_time", None)
            took = (datetime.now(timezone.utc) - scheduled).total_seconds() if scheduled else 0.0
            if took <= self._intervals.get(loop, 0.0):
                log.info("cycle_overrun_ended", loop=loop, skipped_runs=self._skipped.pop(loop))


def build_scheduler(daemon: Daemon, interval: float, topology_interval: float) -> BackgroundScheduler:
    """Three jobs, never two runs of one at once, missed runs coalesced into one. The first check
    discovers the topology itself; the refresh job then runs every topology interval, and at once
    when a check asks for it. The health job reads the target health that is due, each second and
    at once when a verdict change asks for a read: never inside a check."""
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=3)},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": max(1, int(interval))},
        timezone=timezone.utc,
    )
    now = datetime.now(timezone.utc)
    scheduler.add_job(daemon.check, "interval", seconds=interval, id="check", name="rule check",
                      next_run_time=now)
    scheduler.add_job(daemon.refresh_topology, "interval", seconds=topology_interval, id="topology",
                      name="topology refresh", next_run_time=now + timedelta(seconds=topology_interval))

    scheduler.add_job(daemon.read_health, "interval", seconds=HEALTH_TICK_SECONDS, id="health",
                      name="target health reads", next_run_time=now + timedelta(seconds=HEALTH_TICK_SECONDS))

    def wake_health() -> None:
        if scheduler.running:
            scheduler.modify_job("health", next_run_time=datetime.now(timezone.utc))

    def wake_topology(reason: str) -> None:
        if scheduler.running:
            scheduler.modify_job("topology", next_run_time=datetime.now(timezone.utc))

    def wake_check(reason: str) -> None:
        if scheduler.running:
            scheduler.modify_job("check", next_run_time=datetime.now(timezone.utc))

    daemon.on_refresh_wanted = wake_topology
    daemon.on_check_wanted = wake_check
    daemon.on_health_due = wake_health
    scheduler.add_listener(OverrunLog({"check": interval, "topology": topology_interval},
                                      starting=lambda: daemon.topology is None),
                           EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_EXECUTED
                           | EVENT_JOB_ERROR)
    return scheduler


def install_stop_handlers(stop: threading.Event, received: list[str], ignored: deque[str] | None = None) -> None:
    """STOP_SIGNALS set `stop`; IGNORED_SIGNALS (when `ignored` is given) are queued for the main
    loop to log. The handlers only record and set: logging from a signal handler can re-enter a
    handler lock the interrupted code holds."""
    def handle(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    def note(signum: int, _frame: object) -> None:
        ignored.append(signal.Signals(signum).name)

    for signum in STOP_SIGNALS:
        signal.signal(signum, handle)
    if ignored is not None:
        for signum in IGNORED_SIGNALS:
            signal.signal(signum, note)


def _log_ignored(ignored: deque[str]) -> None:
    while ignored:
        log.warning("signal_ignored", signal=ignored.popleft(),
                    detail="not a stop signal; the daemon goes on (stop it with SIGTERM)")


def run(daemon: Daemon, server: Server, interval: float, topology_interval: float,
        stop: threading.Event | None = None, handle_signals: bool = True) -> int:
    """Serve and schedule until `stop` is set (by a signal when `handle_signals`). Returns 0."""
    stop = stop or threading.Event()
    received: list[str] = []
    ignored: deque[str] = deque()
    if handle_signals:
        install_stop_handlers(stop, received, ignored)
    scheduler = build_scheduler(daemon, interval, topology_interval)
    quieted = [logging.getLogger(name) for name in ("apscheduler.scheduler", "apscheduler.executors.default")]
    for logger in quieted:  # OverrunLog says it once per episode
        logger.addFilter(_not_a_skipped_run)
    server.start()
    scheduler.start()
    for helper in (daemon.feed, daemon.lookups):
        if helper is not None:
            helper.start()
    log.info("daemon_started", port=server.port, interval_seconds=interval,
             topology_interval_seconds=topology_interval, cycle_timeout_seconds=daemon.deadline)
    try:
        while not stop.wait(1.0):
            _log_ignored(ignored)
        _log_ignored(ignored)
        log.info("stop_requested", signal=received[0] if received else None)
    finally:
        scheduler.shutdown(wait=False)
        for helper in (daemon.feed, daemon.lookups):
            if helper is not None:
                helper.stop(timeout=0.5)  # a call in flight (a long poll) is not waited for
        for logger in quieted:
            logger.removeFilter(_not_a_skipped_run)
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
