"""Structured logs: one JSON object per line, with the request id of the request being
served (set by `RequestContext`), so a line can be tied to the answer that carried the same
`X-Request-ID`. `BILLING_LOG_FORMAT=auto` (the default) writes plain text lines when stderr
is a terminal and JSON otherwise; `json` or `text` force one.

Nothing secret is logged: request lines carry the path without its query string (sign-in
tokens travel there), never headers or bodies. Nor the values of a database error: its
bound parameters are hidden by the engine (`hide_parameters`, billing/db.py), and both
formatters write a database error, wherever it is in a traceback's chain or a message's
arguments, as its class, SQLSTATE, constraint, table and column, the first line of its
message with anything quoted in it blanked, and the statement with its placeholders
(`database_error_text`): PostgreSQL's DETAIL ("Key (id)=(...) already exists") and messages
such as `invalid input syntax for type integer: "..."` carry the values that were sent.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.config
import re
import sys
import traceback
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from sqlalchemy.exc import StatementError

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_DRIVERS = ("psycopg", "psycopg2", "sqlite3", "_sqlite3")
_QUOTED = re.compile(r"([\"']).*\1")  # from the first quote to the last of its kind
_DIAGNOSTICS = ("constraint_name", "table_name", "column_name", "datatype_name")
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def database_error_text(error: BaseException) -> str | None:
    """What a log may say of a database error (None: `error` is not one): never a value."""
    if isinstance(error, StatementError):
        parts = []
        if error.orig is not None:
            parts.append(f"({_qualified(type(error.orig))}) {_driver_text(error.orig)}")
        if error.statement:
            parts.append(f"[SQL: {error.statement}]")
        parts.append("[SQL parameters are not logged]")
        return "\n".join(parts)
    if type(error).__module__.partition(".")[0] in _DRIVERS:
        return _driver_text(error)
    return None


def _qualified(kind: type[BaseException]) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _driver_text(error: BaseException) -> str:
    lines = str(error).splitlines()
    text = _QUOTED.sub('"…"', lines[0]) if lines else ""
    facts = []
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        facts.append(f"SQLSTATE {sqlstate}")
    diag = getattr(error, "diag", None)
    for name in _DIAGNOSTICS:
        value = getattr(diag, name, None) if diag is not None else None
        if isinstance(value, str) and value:
            facts.append(f"{name.removesuffix('_name')} {value}")
    return f"{text} ({', '.join(facts)})" if facts else text


def safe_traceback(exc_info: ExcInfo) -> str:
    """A traceback as `logging` writes it, each database error in its chain (causes,
    contexts, groups) written by `database_error_text`."""
    kind, error, tb = exc_info
    rendered = traceback.TracebackException(kind, error, tb)
    _scrub(rendered, error, set())
    return "".join(rendered.format()).rstrip("\n")


def _scrub(rendered: traceback.TracebackException, error: BaseException, seen: set[int]) -> None:
    if id(error) in seen:
        return
    seen.add(id(error))
    safe = database_error_text(error)
    if safe is not None and hasattr(rendered, "_str"):
        rendered._str = safe  # the message format() writes for this exception
    pairs: list[tuple[Any, Any]] = [
        (rendered.__cause__, error.__cause__),
        (rendered.__context__, error.__context__),
        *zip(rendered.exceptions or (), getattr(error, "exceptions", ()), strict=False),
    ]
    for inner, inner_error in pairs:
        if inner is not None and isinstance(inner_error, BaseException):
            _scrub(inner, inner_error, seen)


def _safe_message(record: logging.LogRecord) -> str:
    """The record's message, with any database error among its arguments written safely."""
    if isinstance(record.args, tuple) and any(
        isinstance(arg, BaseException) and database_error_text(arg) is not None
        for arg in record.args
    ):
        args = tuple(
            database_error_text(arg) or arg if isinstance(arg, BaseException) else arg
            for arg in record.args
        )
        return str(record.msg) % args
    return record.getMessage()


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _safe_message(record),
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

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        return safe_traceback(ei) if ei[1] is not None else super().formatException(ei)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        # NOTE: logging caches a record's formatted traceback (exc_text) for every handler;
        # ours is written afresh, safely, and the cache left as it was.
        cached, record.exc_text = record.exc_text, None
        message, record.msg, record.args = (record.msg, record.args), _safe_message(record), None
        try:
            text = super().format(record)
        finally:
            record.exc_text = cached
            record.msg, record.args = message
        request_id = REQUEST_ID.get()
        return f"{text} [{request_id}]" if request_id else text

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        return safe_traceback(ei) if ei[1] is not None else super().formatException(ei)


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
