"""POST /v1/events: batched, idempotent ingestion. The answer is sent after the commit."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from billing.api import exact_json
from billing.api.deps import IngestKey
from billing.api.schemas import ErrorOut, EventBatchIn
from billing.errors import (
    EmptyBatch,
    InvalidJson,
    InvalidType,
    PayloadTooLarge,
    UnknownField,
    UnsupportedMediaType,
)
from billing.metering import service as metering_service
from billing.metering.public import IngestPublic
from billing.metering.writer import IngestWriter
from billing.observability.http import BodyLimit, human_bytes
from billing.observability.metrics import record_ingest


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema with its `$defs` written in place: OpenAPI tools (ReDoc, Swagger UI)
    resolve refs against the whole document, where `#/$defs/...` means nothing."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


router = APIRouter(prefix="/v1", tags=["metering"])
MAX_EVENTS = 10_000
MAX_BYTES = 5 * 1024 * 1024
GROUP_BELOW = 1_000  # smaller requests share transactions (group commit, metering/writer.py)
LIMITS = f"at most {MAX_EVENTS:,} events and {human_bytes(MAX_BYTES)} per request"
# Applied by the request middleware (billing/app.py) before this route reads anything.
BODY_LIMIT = BodyLimit(MAX_BYTES, code="too_large", rule=LIMITS)


@router.post(
    "/events",
    response_model=IngestPublic,
    responses={code: {"model": ErrorOut} for code in (401, 403, 413, 415, 422)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inlined(EventBatchIn.model_json_schema())}},
        }
    },
)
async def ingest_events(request: Request, _: IngestKey) -> JSONResponse:
    """Ingest a batch: each event accepted, a duplicate, over its cap, or rejected with a reason."""
    events = _events(await _body(request))
    started = time.perf_counter()
    if len(events) >= GROUP_BELOW:
        # Large batches are their own transaction: on PostgreSQL several run in parallel.
        engine, catalog = request.app.state.engine, request.app.state.catalog
        result = await run_in_threadpool(
            metering_service.ingest_batch, engine=engine, catalog=catalog, raw_events=events
        )
        answer = result.as_json()
    else:
        writer: IngestWriter = request.app.state.ingest_writer
        answer = await asyncio.wrap_future(writer.submit(events))
    record_ingest(answer, time.perf_counter() - started)
    return JSONResponse(answer)


async def _body(request: Request) -> bytes:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaType(
            f"send events as application/json, not {media or 'no content type'}",
            field="content-type",
        )
    # NOTE: the middleware refuses a larger body first; held here too, with its words, for
    # an app composed without it.
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BYTES:
        raise PayloadTooLarge(BODY_LIMIT.message(), field="body")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BYTES:
            raise PayloadTooLarge(BODY_LIMIT.message(), field="body")
        chunks.append(chunk)
    return b"".join(chunks)


def _events(body: bytes) -> list[Any]:
    try:
        document = exact_json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as error:
        raise InvalidJson(f"the body is not valid JSON: {error}", field="body") from None
    if not isinstance(document, dict):
        raise InvalidType('the body must be a JSON object {"events": [...]}', field="body")
    unknown = sorted(set(document) - {"events"})
    if unknown:
        raise UnknownField(f"unknown field {unknown[0]!r}", field=unknown[0])
    events = document.get("events")
    if not isinstance(events, list):
        raise InvalidType("events must be a list of events", field="events")
    if not events:
        raise EmptyBatch("the batch is empty: send at least one event", field="events")
    if len(events) > MAX_EVENTS:
        raise PayloadTooLarge(f"the batch has {len(events):,} events; {LIMITS}", field="events")
    return events
