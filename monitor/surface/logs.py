"""Logging setup: structlog events as JSON lines, or a console renderer on a terminal.

The standard library's records (apscheduler, botocore, urllib3, kubernetes, the HTTP server) go
through the same renderer with stable snake_case event names, so one stream holds one format: a
known library message gets its own event and fields, any other one is `library_log` with the
message as a field.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import timedelta
from typing import Any, TextIO

import structlog

_QUIET = {"apscheduler": logging.WARNING, "botocore": logging.WARNING, "urllib3": logging.WARNING,
          "kubernetes": logging.WARNING}
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def wants_console(log_format: str, stream: TextIO) -> bool:
    if log_format == "console":
        return True
    if log_format == "json":
        return False
    return _is_terminal(stream)


def _is_terminal(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def _job_name(job: object) -> str:
    return str(getattr(job, "name", job))


# APScheduler's messages (its format strings, as of 3.x) -> event name and fields from the args.
_KNOWN: dict[str, tuple[str, Any]] = {
    'Run time of job "%s" was missed by %s': (
        "job_run_skipped", lambda job, late: {"job": _job_name(job), "reason": "missed",
                                              "late_seconds": round(late.total_seconds(), 3)
                                              if isinstance(late, timedelta) else str(late)}),
    'Execution of job "%s" skipped: maximum number of running instances reached (%d)': (
        "job_run_skipped", lambda job, most: {"job": _job_name(job), "reason": "still_running",
                                              "max_instances": most}),
    'Job "%s" raised an exception': ("job_failed", lambda job: {"job": _job_name(job)}),
    "Error running job %s": ("job_failed", lambda job: {"job": _job_name(job)}),
    "Error notifying listener": ("scheduler_listener_failed", lambda: {}),
}


def name_library_event(_logger: object, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A standard-library record's event: its known name and fields, else `library_log` with the
    message in `message` (never the message as the event name: it holds times and names)."""
    record = event_dict.get("_record")
    if record is None or event_dict.get("_from_structlog"):
        return event_dict
    template = record.msg if isinstance(record.msg, str) else None
    known = _KNOWN.get(template) if template else None
    args = event_dict.pop("positional_args", None) or ()
    args = args if isinstance(args, tuple) else (args,)
    if known is not None:
        name, fields = known
        try:
            event_dict.update(fields(*args))
            event_dict["event"] = name
            return event_dict
        except (TypeError, ValueError, AttributeError):
            pass
    message = event_dict.get("event")
    if isinstance(message, str) and _SNAKE.match(message) and not args:
        return event_dict  # already an event name (a structlog-style message from a library)
    event_dict["message"] = str(message)
    event_dict["event"] = "library_log"
    return event_dict


def configure(log_format: str = "auto", stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Configure structlog and the standard library's logging; `log_format` is json, console or auto.
    Console output has colours only on a terminal."""
    stream = stream or sys.stdout
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    console = wants_console(log_format, stream)
    renderer = (structlog.dev.ConsoleRenderer(colors=_is_terminal(stream)) if console
                else structlog.processors.JSONRenderer())
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, name_library_event],
        pass_foreign_args=True,  # name_library_event reads a known message's arguments
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *([] if console else [structlog.processors.format_exc_info]),
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(quiet)
