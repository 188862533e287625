"""Log lines are JSON unless a person is reading a terminal."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest
import structlog

from monitor import logs


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
    assert [line["event"] for line in lines] == ["check_cycle", "Execution of job skipped"]
    assert lines[0]["load_balancers"] == 3 and lines[0]["level"] == "info" and lines[0]["timestamp"].endswith("Z")
    assert lines[1]["logger"] == "apscheduler.scheduler" and lines[1]["level"] == "warning"


def test_console_format_is_not_json(restore_logging):
    stream = io.StringIO()
    logs.configure("console", stream=stream)
    structlog.get_logger("monitor.test").info("check_cycle", load_balancers=3)
    text = stream.getvalue()
    assert "check_cycle" in text and "load_balancers" in text and not text.lstrip().startswith("{")
