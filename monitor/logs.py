"""Logging setup: structlog events as JSON lines, or a console renderer on a terminal.

The library loggers that matter (apscheduler, botocore) go through the same renderer, so one
stream holds one format.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

_QUIET = {"apscheduler": logging.WARNING, "botocore": logging.WARNING, "urllib3": logging.WARNING}


def wants_console(log_format: str, stream: TextIO) -> bool:
    if log_format == "console":
        return True
    if log_format == "json":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def configure(log_format: str = "auto", stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Configure structlog and the standard library's logging; `log_format` is json, console or auto."""
    stream = stream or sys.stdout
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = (structlog.dev.ConsoleRenderer() if wants_console(log_format, stream)
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
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *([] if isinstance(renderer, structlog.dev.ConsoleRenderer) else [structlog.processors.format_exc_info]),
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
