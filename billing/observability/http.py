"""ASGI middleware around every request: a request id (answered as X-Request-ID and put on
every log line), one structured log line per request, metrics, and body size limits
enforced before the application reads anything. A URL whose path or query holds a NUL
character (`%00`) is refused here too (422 invalid_text): no id or value can hold one, and
PostgreSQL refuses it in any query."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billing.observability.logs import REQUEST_ID
from billing.observability.metrics import HTTP_REQUESTS

logger = logging.getLogger("billing.http")
_GIVEN_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


_UNITS = ((1024**3, "GB"), (1024**2, "MB"), (1024, "KB"))


def human_bytes(size: int) -> str:
    """A size as people read it, in binary units (1 MB = 1,048,576 bytes), to one decimal
    rounded half-up: 5,242,880 -> "5 MB", 1,500,000 -> "1.4 MB", 2,048 -> "2 KB", 1,000 ->
    "1,000 bytes"."""
    for unit, name in _UNITS:
        if size >= unit:
            tenths = (size * 20 + unit) // (unit * 2)
            whole, tenth = divmod(tenths, 10)
            return f"{whole:,}{f'.{tenth}' if tenth else ''} {name}"
    return f"{size:,} bytes"


def over_limit(limit: int) -> str:
    """How a 413 names the limit that was applied: in bytes, and in human units."""
    shown = human_bytes(limit)
    return f"over {limit:,} bytes" + ("" if shown.endswith(" bytes") else f" ({shown})")


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """The largest body a route takes, and how its 413 says so: `code`, and `rule`, what
    follows the limit in the message."""

    size: int
    code: str = "payload_too_large"
    rule: str = "the most a request body may be (BILLING_MAX_BODY_BYTES)"

    def message(self) -> str:
        return f"the body is {over_limit(self.size)}: {self.rule}"


class RequestContext:
    """Request id, access log line, request metrics and body size limits.

    `limits` maps a path to its own `BodyLimit`; every other path gets `default_limit`
    bytes. A body over the limit of its route is refused with 413 before the route sees any
    of it (declared Content-Length), or as soon as the streamed body passes it; the answer
    quotes that limit, in bytes and in human units.
    """

    def __init__(
        self, app: ASGIApp, default_limit: int, limits: dict[str, BodyLimit] | None = None
    ) -> None:
        self.app = app
        self.default_limit = BodyLimit(default_limit)
        self.limits = limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _GIVEN_ID.match(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status_seen: dict[str, int] = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_seen["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            nul = _nul_in_url(scope)
            if nul is not None:
                await _send_error(send_with_id, 422, "invalid_text", *nul)
                return
            limit = self.limits.get(scope["path"], self.default_limit)
            declared = headers.get(b"content-length", b"")
            if declared.isdigit():  # the server holds the body to its declared length
                if int(declared) > limit.size:
                    await self._refuse(send_with_id, limit)
                    return
                await self.app(scope, receive, send_with_id)
                return
            buffered = await _read_within(receive, limit.size)  # streamed: up to the limit
            if buffered is None:
                await self._refuse(send_with_id, limit)
                return
            await self.app(scope, _replay(buffered, receive), send_with_id)
        finally:
            status = status_seen["status"]
            HTTP_REQUESTS.labels(scope["method"], f"{status // 100}xx").inc()
            logger.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],  # never the query string: tokens travel there
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            REQUEST_ID.reset(token)

    @staticmethod
    async def _refuse(send: Any, limit: BodyLimit) -> None:
        body = {"code": limit.code, "message": limit.message(), "field": "body"}
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def _nul_in_url(scope: Scope) -> tuple[str, str] | None:
    """(message, field) for a path or query parameter holding a NUL character; else None."""
    if "\x00" in scope["path"]:
        return "path: contains a NUL character (%00), which no id can hold", "path"
    query = scope.get("query_string", b"")
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            field = name.replace("\x00", "") or "query"
            return f"{field}: contains a NUL character (%00), which no value can hold", field
    return None


async def _send_error(send: Any, status: int, code: str, message: str, field: str) -> None:
    body = json.dumps({"code": code, "message": message, "field": field}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_within(receive: Receive, limit: int) -> list[Message] | None:
    """The request's body messages, or None as soon as they pass `limit` bytes."""
    messages: list[Message] = []
    seen = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        seen += len(message.get("body", b""))
        if seen > limit:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
