"""Retention of raw events: export those of long-invoiced periods as JSON Lines, then delete
them (docs/operations.md, "Retention: archiving raw events").

Raw events are kept for audit and re-aggregation; what bills is the running totals and the
invoices, which archiving never touches. An event is archived only when its period is
closed (invoiced) and started before the cut-off the caller chose, which must leave every
archived period's late-usage window behind: a re-sent archived event is then refused
`period_closed`, never counted again.

On PostgreSQL the event table is partitioned by month (metering/partitions.py): a month
whose events are all archivable is exported, then its partition is dropped whole, which
leaves no dead rows behind. Other events are exported and deleted a chunk at a time, each
chunk exported, flushed, and only then deleted in its own transaction. A run cut short
exports again on the next run at most one chunk, or the month whose partition it had not
dropped yet (ids are unique: deduplicate by id).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, and_, delete, exists, false, not_, or_, select, tuple_

from billing.customers.models import Customer
from billing.db import one_of, table_of
from billing.metering import partitions
from billing.metering.models import Event, EventKey
from billing.money import format_quantity

CHUNK = 5000
_EVENTS = table_of(Event)
_CUSTOMERS = table_of(Customer)
_EVENT_KEYS = table_of(EventKey)
_KEY = (_EVENTS.c.customer_id, _EVENTS.c.period_start, _EVENTS.c.id)


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
    starts before it and is closed (it starts before its customer's `closed_through`), in
    key order (customer, period start, id)."""
    return (
        select(_EVENTS)
        .join(_CUSTOMERS, _CUSTOMERS.c.id == _EVENTS.c.customer_id)
        .where(_EVENTS.c.period_start < before)
        .where(_CUSTOMERS.c.closed_through.is_not(None))
        .where(_EVENTS.c.period_start < _CUSTOMERS.c.closed_through)
        .order_by(*_KEY)
    )


def _open_in(low: dt.datetime, high: dt.datetime) -> Any:
    """Whether any event of a period starting in [low, high) is of a period not closed."""
    return select(
        exists()
        .where(_EVENTS.c.period_start >= low, _EVENTS.c.period_start < high)
        .where(_CUSTOMERS.c.id == _EVENTS.c.customer_id)
        .where(
            or_(
                _CUSTOMERS.c.closed_through.is_(None),
                _EVENTS.c.period_start >= _CUSTOMERS.c.closed_through,
            )
        )
    )


def _bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    low = dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)
    following = partitions.add_months(month, 1)
    return low, dt.datetime(following.year, following.month, 1, tzinfo=dt.UTC)


def whole_months(connection: Connection, before: dt.datetime) -> list[dt.date]:
    """The partitioned months (PostgreSQL) that start before `before` and whose events are
    all of closed periods: archived by dropping the partition (first days, oldest first)."""
    whole = []
    for month in partitions.months(connection):
        low, high = _bounds(month)
        if high <= before and not connection.execute(_open_in(low, high)).scalar():
            whole.append(month)
    return whole


def archive_events(
    engine: Engine,
    *,
    before: dt.datetime,
    write: Callable[[list[dict[str, Any]]], None],
    delete_after: bool = True,
) -> Archived:
    """Export (with `write`, a chunk of archive lines at a time; it must have made them
    durable when it returns) and delete the raw events of closed periods starting before
    `before`, with their ids in `event_key`. With `delete_after` False nothing is deleted (a
    dry run: `write` sees what would go). The caller checks that `before` leaves the
    late-usage window behind (`latest_cut_off`).

    On PostgreSQL a month partition whose events are all archivable is exported, then
    dropped whole (metering/partitions.py); the other events (a month still holding an
    open period, the default partition, SQLite) are exported and deleted a chunk at a time.
    """
    events = 0
    periods: set[tuple[str, str, dt.datetime]] = set()
    with engine.connect() as connection:
        whole = whole_months(connection, before)
    for month in whole:
        low, high = _bounds(month)
        exported = _export(engine, archivable(before).where(_in(low, high)), write, periods)
        if delete_after:
            with engine.begin() as connection:
                partitions.drop_month(connection, month, exported)
        events += exported
    rest = archivable(before).where(not_(or_(false(), *(_in(*_bounds(m)) for m in whole))))
    events += _export(engine, rest, write, periods, delete_after=delete_after)
    return Archived(events, len(periods))


def _in(low: dt.datetime, high: dt.datetime) -> Any:
    return and_(_EVENTS.c.period_start >= low, _EVENTS.c.period_start < high)


def _export(
    engine: Engine,
    query: Any,
    write: Callable[[list[dict[str, Any]]], None],
    periods: set[tuple[str, str, dt.datetime]],
    *,
    delete_after: bool = False,
) -> int:
    """Write the events of `query` a chunk at a time, each chunk in its own transaction,
    after its key (keyset pagination); with `delete_after`, delete each chunk (and its ids
    in event_key) once written. Returns the events written."""
    events = 0
    last: tuple[Any, ...] | None = None
    while True:
        with engine.begin() as connection:
            page = query if last is None else query.where(tuple_(*_KEY) > tuple_(*last))
            rows = list(connection.execute(page.limit(CHUNK)))
            if not rows:
                break
            write([as_line(row) for row in rows])
            if delete_after:
                keys = [(row.customer_id, row.period_start, row.id) for row in rows]
                connection.execute(delete(_EVENTS).where(tuple_(*_KEY).in_(keys)))
                ids = [row.id for row in rows]
                connection.execute(
                    delete(_EVENT_KEYS).where(one_of(connection, _EVENT_KEYS.c.id, ids))
                )
        events += len(rows)
        periods.update((row.customer_id, row.product, row.period_start) for row in rows)
        last = (rows[-1].customer_id, rows[-1].period_start, rows[-1].id)
    return events


def latest_cut_off(now: dt.datetime, window: dt.timedelta) -> dt.datetime:
    """The latest cut-off an archive may use at `now` (UTC): the first day of a month such
    that every period starting before it (a period lasts at most 31 days) ended, with its
    late-usage `window`, before `now`."""
    limit = now - window - dt.timedelta(days=31)
    return dt.datetime(limit.year, limit.month, 1, tzinfo=dt.UTC)


def kept_months_cut_off(now: dt.datetime, keep_months: int) -> dt.datetime:
    """The cut-off that keeps `keep_months` whole months before the month of `now` (UTC):
    the first day of the month that many months before the current one."""
    if keep_months < 0:
        raise ValueError(f"keep_months: a whole number of months, 0 or more (got {keep_months})")
    month = partitions.add_months(partitions.month_of(now), -keep_months)
    return dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)


class JsonLinesFile:
    """A new JSON Lines archive at `path`, made on the first line written (an archive of
    nothing leaves no file); each chunk is flushed and synced before `write` returns.
    Raises FileExistsError when the file exists: an archive is never appended to."""

    def __init__(self, path: Path):
        self.path = path
        self.lines = 0
        self._handle: IO[str] | None = None
        if path.exists():
            raise FileExistsError(f"{path} exists; an archive is written to a new file")

    def write(self, lines: list[dict[str, Any]]) -> None:
        """Append archive lines (`as_line` shapes), durably."""
        if not lines:
            return
        if self._handle is None:
            self._handle = self.path.open("x", encoding="utf-8")
        for line in lines:
            self._handle.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False))
            self._handle.write("\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.lines += len(lines)

    def close(self) -> None:
        """Close the file, if one was made."""
        if self._handle is not None:
            self._handle.close()


@dataclass(frozen=True, slots=True)
class Retained:
    """What a retention run did: the cut-off it used (UTC), what it archived, and the file
    written (None: nothing to write, or events dropped without export)."""

    before: dt.datetime
    archived: Archived
    path: Path | None

    def __str__(self) -> str:
        done = self.archived
        where = f" to {self.path}" if self.path else (" (dropped)" if done.events else "")
        return (
            f"{done.events} events of {done.periods} customer-product periods starting "
            f"before {self.before:%Y-%m} archived{where}"
        )


def retain(
    engine: Engine,
    *,
    now: dt.datetime,
    keep_months: int,
    window: dt.timedelta,
    directory: Path | None,
) -> Retained:
    """Archive the raw events of closed periods starting before `keep_months` whole months
    before the month of `now` (UTC), or before the latest cut-off the late-usage `window`
    allows if that is earlier: exported to a new file in `directory`
    (events-before-YYYY-MM-<now>.jsonl), or dropped without export when `directory` is
    None. The `partition_events` job calls it under BILLING_EVENTS_KEEP_MONTHS."""
    before = min(kept_months_cut_off(now, keep_months), latest_cut_off(now, window))
    if directory is None:
        return Retained(before, archive_events(engine, before=before, write=_nowhere), None)
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    archive = JsonLinesFile(directory / f"events-before-{before:%Y-%m}-{stamp}.jsonl")
    try:
        archived = archive_events(engine, before=before, write=archive.write)
    finally:
        archive.close()
    return Retained(before, archived, archive.path if archive.lines else None)


def _nowhere(lines: list[dict[str, Any]]) -> None:
    """Retention without export: the lines go nowhere."""
