"""Log lines are JSON unless a person is reading a terminal."""

from __future__ import annotations

import io
import json
import logging
import os
from datetime import timedelta

import pytest
import structlog

from monitor.surface import logs


@pytest.fixture
def restore_logging():
    yield
    logging.getLogger().handlers.clear()
    structlog.reset_defaults()


def test_auto_means_console_on_a_terminal_and_json_elsewhere():
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        assert logs.wants_console("auto", terminal)
        assert not logs.wants_console("json", terminal)
    os.close(leader)
    assert not logs.wants_console("auto", io.StringIO())
    assert logs.wants_console("console", io.StringIO())


def test_events_and_library_logs_are_json_lines_with_context_as_fields(restore_logging):
    stream = io.StringIO()
    logs.configure("json", stream=stream)
    structlog.get_logger("monitor.test").info("check_cycle", load_balancers=3, complete=True)
    logging.getLogger("apscheduler.scheduler").warning("Execution of job skipped")
    logging.getLogger("apscheduler.scheduler").info("too chatty to show")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["check_cycle", "library_log"]
    assert lines[0]["load_balancers"] == 3 and lines[0]["level"] == "info" and lines[0]["timestamp"].endswith("Z")
    assert lines[1]["logger"] == "apscheduler.scheduler" and lines[1]["level"] == "warning"
    assert lines[1]["message"] == "Execution of job skipped"


class Job:
    name = "rule check"

    def __str__(self) -> str:  # what APScheduler prints: the trigger and the next run time
        return "rule check (trigger: interval[0:00:15], next run at: 2026-01-01 00:00:15 UTC)"


def test_library_messages_get_stable_event_names_and_fields(restore_logging):
    stream = io.StringIO()
    logs.configure("json", stream=stream)
    executor = logging.getLogger("apscheduler.executors.default")
    executor.warning('Run time of job "%s" was missed by %s', Job(), timedelta(seconds=2, milliseconds=500))
    executor.error("Error running job %s", "check", exc_info=(ValueError, ValueError("boom"), None))
    logging.getLogger("urllib3.connectionpool").warning("Connection pool is full, discarding connection: %s", "ec2")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["event"], line["logger"]) for line in lines] == [
        ("job_run_skipped", "apscheduler.executors.default"), ("job_failed", "apscheduler.executors.default"),
        ("library_log", "urllib3.connectionpool")]
    assert lines[0] | {"timestamp": ""} == {"event": "job_run_skipped", "job": "rule check", "reason": "missed",
                                            "late_seconds": 2.5, "level": "warning", "timestamp": "",
                                            "logger": "apscheduler.executors.default"}
    assert "ValueError: boom" in lines[1]["exception"]
    assert lines[2]["message"] == "Connection pool is full, discarding connection: ec2"


def test_console_format_has_no_colours_off_a_terminal(restore_logging):
    stream = io.StringIO()
    logs.configure("console", stream=stream)
    structlog.get_logger("monitor.test").warning("check_cycle", load_balancers=3)
    assert "check_cycle" in stream.getvalue() and "\x1b[" not in stream.getvalue()


def test_console_format_is_not_json(restore_logging):
    stream = io.StringIO()
    logs.configure("console", stream=stream)
    structlog.get_logger("monitor.test").info("check_cycle", load_balancers=3)
    text = stream.getvalue()
    assert "check_cycle" in text and "load_balancers" in text and not text.lstrip().startswith("{")
