"""The list of limited customer x product pairs, served from memory with an ETag.

An upstream pipeline polls `GET /v1/quota/limited` (every second, say) to drop events it
knows will be refused. Rebuilding the list per request would cost a query each time, so
each process keeps the last answer and rebuilds it when
  - this process changed a limit (ingestion or a cap change calls `changed()`),
  - the oldest listed period has ended (its pairs are no longer limited), or
  - BILLING_QUOTA_CACHE_SECONDS have passed (changes made by other processes).
The ETag is a digest of the body, so an unchanged list answers 304 without a body however
often it is rebuilt.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, select

from billing.db import read_only
from billing.metering.store import usage_table
from billing.money import format_quantity

_generation = 0
_generation_lock = threading.Lock()


def changed() -> None:
    """Signal that a limit moved in this process: the next read rebuilds the list."""
    global _generation
    with _generation_lock:
        _generation += 1


@dataclass(frozen=True, slots=True)
class Snapshot:
    body: bytes
    etag: str
    built_at: float  # float-ok: time.monotonic()
    generation: int
    valid_until: dt.datetime | None  # the earliest end of a listed period


def build(engine: Engine, now: dt.datetime, generation: int) -> Snapshot:
    """Read the limited pairs of current periods and render the answer."""
    table = usage_table()
    query = (
        select(
            table.c.customer_id,
            table.c.product,
            table.c.period_start,
            table.c.period_end,
            table.c.limit_quantity,
            table.c.quantity,
        )
        .where(table.c.limited, table.c.period_end > now)
        .order_by(table.c.customer_id, table.c.product)
    )
    with read_only(engine) as connection:
        rows = list(connection.execute(query))
    items = [
        {
            "customer": r.customer_id,
            "product": r.product,
            "period_start": r.period_start.isoformat(),
            "period_end": r.period_end.isoformat(),
            "limit_quantity": format_quantity(r.limit_quantity),
            "accepted_quantity": format_quantity(r.quantity),
        }
        for r in rows
    ]
    body = json.dumps({"count": len(items), "limited": items}, separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    valid_until = min((r.period_end for r in rows), default=None)
    return Snapshot(body, etag, time.monotonic(), generation, valid_until)


class LimitedList:
    """The per-process cache behind GET /v1/quota/limited."""

    def __init__(self, engine: Engine, max_age_seconds: float) -> None:  # float-ok: seconds
        self._engine = engine
        self._max_age = max_age_seconds
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        changed()

    def _fresh(self, snapshot: Snapshot | None) -> bool:
        if snapshot is None or snapshot.generation != _generation:
            return False
        if time.monotonic() - snapshot.built_at >= self._max_age:
            return False
        return snapshot.valid_until is None or dt.datetime.now(dt.UTC) < snapshot.valid_until

    async def current(self) -> Snapshot:
        snapshot = self._snapshot
        if self._fresh(snapshot):
            assert snapshot is not None
            return snapshot
        async with self._lock:  # one rebuild at a time; the others wait for its result
            snapshot = self._snapshot
            if self._fresh(snapshot):
                assert snapshot is not None
                return snapshot
            generation = _generation
            now = dt.datetime.now(dt.UTC)
            snapshot = await asyncio.to_thread(build, self._engine, now, generation)
            self._snapshot = snapshot
            return snapshot
