"""Retention of raw events: export those of long-invoiced periods as JSON Lines, then delete
them (docs/operations.md, "Retention: archiving raw events").

Raw events are kept for audit and re-aggregation; what bills is the running totals and the
invoices, which archiving never touches. An event is archived only when its period is
closed (invoiced) and started before the cut-off the caller chose, which must leave every
archived period's late-usage window behind: a re-sent archived event is then refused
`period_closed`, never counted again.

Each chunk is exported, flushed, and only then deleted in its own transaction; a run cut
short exports at most one chunk again on the next run (ids are unique: deduplicate by id).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, select

from billing.customers.models import Customer
from billing.db import one_of, table_of
from billing.metering.models import Event
from billing.money import format_quantity

CHUNK = 5000
_EVENTS = table_of(Event)
_CUSTOMERS = table_of(Customer)


@dataclass(frozen=True, slots=True)
class Archived:
    """What a run archived: events exported and deleted, and the periods they were in
    (customer, product, period start), counted once each."""

    events: int
    periods: int


def _utc(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def as_line(row: Any) -> dict[str, Any]:
    """An event as its archive line: every stored column, text for numbers and times (UTC,
    ISO 8601 with Z), its properties as an object (null when it had none)."""
    return {
        "id": row.id,
        "customer": row.customer_id,
        "product": row.product,
        "quantity": format_quantity(row.quantity),
        "timestamp": _utc(row.timestamp),
        "period_start": _utc(row.period_start),
        "status": row.status,
        "received_at": _utc(row.received_at),
        "properties": json.loads(row.properties) if row.properties else None,
        "over_limit_products": row.over_limit_products,
    }


def archivable(before: dt.datetime) -> Any:
    """The query of events archivable with cut-off `before` (UTC): of a period that
    starts before it and is closed (it starts before its customer's `closed_through`)."""
    return (
        select(_EVENTS)
        .join(_CUSTOMERS, _CUSTOMERS.c.id == _EVENTS.c.customer_id)
        .where(_EVENTS.c.period_start < before)
        .where(_CUSTOMERS.c.closed_through.is_not(None))
        .where(_EVENTS.c.period_start < _CUSTOMERS.c.closed_through)
        .order_by(_EVENTS.c.id)
    )


def archive_events(
    engine: Engine,
    *,
    before: dt.datetime,
    write: Callable[[list[dict[str, Any]]], None],
    delete_after: bool = True,
) -> Archived:
    """Export (with `write`, a chunk of archive lines at a time; it must have made them
    durable when it returns) and delete the raw events of closed periods starting before
    `before`. With `delete_after` False nothing is deleted (a dry run: `write` sees what
    would go). The caller checks that `before` leaves the late-usage window behind
    (`latest_cut_off`)."""
    events = 0
    periods: set[tuple[str, str, dt.datetime]] = set()
    last = ""
    while True:
        with engine.begin() as connection:
            rows = list(
                connection.execute(archivable(before).where(_EVENTS.c.id > last).limit(CHUNK))
            )
            if not rows:
                break
            write([as_line(row) for row in rows])
            if delete_after:
                ids = [row.id for row in rows]
                connection.execute(delete(_EVENTS).where(one_of(connection, _EVENTS.c.id, ids)))
        events += len(rows)
        periods.update((row.customer_id, row.product, row.period_start) for row in rows)
        last = rows[-1].id
    return Archived(events, len(periods))


def latest_cut_off(now: dt.datetime, window: dt.timedelta) -> dt.datetime:
    """The latest cut-off an archive may use at `now` (UTC): the first day of a month such
    that every period starting before it (a period lasts at most 31 days) ended, with its
    late-usage `window`, before `now`."""
    limit = now - window - dt.timedelta(days=31)
    return dt.datetime(limit.year, limit.month, 1, tzinfo=dt.UTC)
