"""Structured logs: one JSON object per line, with the request id of the request being
served (set by `RequestContext`), so a line can be tied to the answer that carried the same
`X-Request-ID`. `BILLING_LOG_FORMAT=auto` (the default) writes plain text lines when stderr
is a terminal and JSON otherwise; `json` or `text` force one.

Nothing secret is logged: request lines carry the path without its query string (sign-in
tokens travel there), never headers or bodies.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.config
import sys
from contextvars import ContextVar
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key != "color_message":
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = REQUEST_ID.get()
        return f"{text} [{request_id}]" if request_id else text


def resolved_format(fmt: str) -> str:
    """`json` or `text`: `auto` is text on a terminal (stderr is a TTY), JSON otherwise."""
    if fmt == "auto":
        return "text" if sys.stderr.isatty() else "json"
    return fmt


def log_config(level: str, fmt: str) -> dict[str, Any]:
    """A logging.config dict for our loggers and uvicorn's (whose access log we replace)."""
    formatter = "billing.observability.logs.JsonFormatter"
    if resolved_format(fmt) == "text":
        formatter = "billing.observability.logs.TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "alembic": {"level": "WARNING"},  # /readyz reads the revision on every probe
            "apscheduler": {"level": "WARNING"},  # its job bookkeeping; ours logs each run
        },
    }


def configure(level: str, fmt: str) -> None:
    logging.config.dictConfig(log_config(level, fmt))
