"""Ingestion and usage reads: the only metering code that touches a Session.

`ingest` takes a batch, refuses what it must with a reason per event, stores the rest once
(an event id is a promise: the same id with the same content is a duplicate forever, with
other content a conflict), and moves the running totals in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Engine, bindparam, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from billing.catalog import Catalog
from billing.customers.models import Customer
from billing.customers.periods import Period, period_for
from billing.metering import store
from billing.metering.models import Usage
from billing.metering.validate import EventIn, Rejection, parse_event
from billing.money import EXACT

FUTURE_TOLERANCE = dt.timedelta(minutes=5)
CHUNK = 5000
UsageKey = tuple[str, str, dt.datetime]  # customer, product, period start
T = TypeVar("T")


@dataclass(slots=True)
class IngestResult:
    """What became of each event of a batch, by its index."""

    accepted: int = 0
    duplicates: int = 0
    over_limit: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    outcomes: dict[int, str] = field(default_factory=dict)  # index -> accepted | duplicate

    def accept(self, event: EventIn) -> None:
        self.accepted += 1
        self.outcomes[event.index] = "accepted"

    def duplicate(self, event: EventIn) -> None:
        self.duplicates += 1
        self.outcomes[event.index] = "duplicate"

    def part(self, start: int, stop: int) -> IngestResult:
        """The result of events start..stop-1, re-indexed from 0 (one request of a group)."""
        part = IngestResult()
        for index in range(start, stop):
            outcome = self.outcomes.get(index)
            if outcome == "accepted":
                part.accepted += 1
            elif outcome == "duplicate":
                part.duplicates += 1
        part.rejected = [
            Rejection(r.index - start, r.id, r.error)
            for r in self.rejected
            if start <= r.index < stop
        ]
        return part

    def as_json(self) -> dict[str, Any]:
        """The answer of POST /v1/events (DESIGN.md §4)."""
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "over_limit": self.over_limit,
            "rejected": [
                {"index": r.index, "id": r.id, "error": r.error}
                for r in sorted(self.rejected, key=lambda r: r.index)
            ],
        }


@dataclass(slots=True)
class _Tally:
    quantity: Decimal = Decimal(0)
    events: int = 0
    duplicates: int = 0
    rejected: int = 0


RETRIES = 5
RETRYABLE = {"40P01", "40001"}  # PostgreSQL: deadlock detected, serialization failure


def ingest_batch(*, engine: Engine, catalog: Catalog, raw_events: Sequence[Any]) -> IngestResult:
    """Ingest a batch in a transaction of its own, committed before this returns."""
    for attempt in range(1, RETRIES + 1):
        try:
            with Session(engine, expire_on_commit=False) as session:
                result = ingest(
                    session=session,
                    catalog=catalog,
                    raw_events=raw_events,
                    now=dt.datetime.now(dt.UTC),
                )
                session.commit()
            return result
        except OperationalError as error:
            # NOTE: PostgreSQL may abort a transaction to break a lock cycle; a batch is
            # idempotent, so running it again is safe and the client never sees the abort.
            if getattr(error.orig, "sqlstate", None) not in RETRYABLE or attempt == RETRIES:
                raise
            time.sleep(0.01 * attempt)
    raise AssertionError("unreachable")


def ingest(
    *, session: Session, catalog: Catalog, raw_events: Sequence[Any], now: dt.datetime
) -> IngestResult:
    """Validate, deduplicate and store a batch; update running usage. The caller commits."""
    result = IngestResult()
    parsed: list[EventIn] = []
    seen_times: dict[str, dt.datetime] = {}
    for index, raw in enumerate(raw_events):
        item = parse_event(raw, index, seen_times)
        if isinstance(item, Rejection):
            result.rejected.append(item)
        else:
            parsed.append(item)
    customers = _customers(session, {e.customer for e in parsed})
    tallies: dict[UsageKey, _Tally] = defaultdict(_Tally)
    periods: dict[tuple[str, dt.datetime], Period] = {}

    def key_of(event: EventIn) -> UsageKey:
        customer = customers[event.customer]
        cache_key = (event.customer, event.timestamp)
        period = periods.get(cache_key)
        if period is None:
            period = periods[cache_key] = period_for(customer.billing_anchor_day, event.timestamp)
        return (event.customer, event.product, period.start)

    def reject(event: EventIn, error: str, *, count: bool = False) -> None:
        result.rejected.append(Rejection(event.index, event.id, error))
        if count:
            tallies[key_of(event)].rejected += 1

    latest = now + FUTURE_TOLERANCE
    first_seen: dict[str, EventIn] = {}
    candidates: list[EventIn] = []
    for event in parsed:
        customer = customers.get(event.customer)
        if customer is None:
            reject(event, "unknown_customer")
        elif event.product not in catalog.products:
            reject(event, "unknown_product")
        elif event.timestamp > latest:
            reject(event, "timestamp_in_future")
        elif customer.closed_through is not None and event.timestamp < customer.closed_through:
            reject(event, "period_closed", count=True)
        elif (earlier := first_seen.get(event.id)) is not None:
            if earlier.same_content(event.customer, event.product, event.quantity, event.timestamp):
                result.duplicate(event)
                tallies[key_of(event)].duplicates += 1
            else:
                reject(event, "conflict", count=True)
        else:
            first_seen[event.id] = event
            candidates.append(event)

    fresh = _settle_seen(session, candidates, result, tallies, key_of, reject)
    # NOTE: rows are written in one global order (event ids, then usage keys, both sorted),
    # so concurrent batches with shared ids wait for each other instead of deadlocking.
    fresh.sort(key=_by_id)
    fresh_keys = [key_of(e) for e in fresh]
    inserted = _insert(session, fresh, fresh_keys, now)
    raced = [e for e in fresh if e.id not in inserted]
    if raced:  # stored by a concurrent batch between our read and our insert
        _settle_seen(session, raced, result, tallies, key_of, reject)
    add = EXACT.add  # NOTE: sums of 10^15-sized quantities need more than 28 digits
    for event, key in zip(fresh, fresh_keys, strict=True):
        if event.id in inserted:
            tally = tallies[key]
            tally.quantity = add(tally.quantity, event.quantity)
            tally.events += 1
            result.accept(event)
    _apply_tallies(session, tallies, now)
    return result


def _by_id(event: EventIn) -> str:
    return event.id


def _customers(session: Session, ids: set[str]) -> dict[str, Customer]:
    found: dict[str, Customer] = {}
    for chunk in _chunks(sorted(ids)):
        query = select(Customer).where(Customer.id.in_(chunk))  # type: ignore[attr-defined]
        found.update((c.id, c) for c in session.scalars(query))
    return found


def _settle_seen(
    session: Session,
    events: list[EventIn],
    result: IngestResult,
    tallies: dict[UsageKey, _Tally],
    key_of: Any,
    reject: Any,
) -> list[EventIn]:
    """Mark events whose id is already stored as duplicates or conflicts; return the rest."""
    stored = store.read_stored(session.connection(), [e.id for e in events])
    fresh = []
    for event in events:
        previous = stored.get(event.id)
        if previous is None:
            fresh.append(event)
        elif event.same_content(*previous):
            result.duplicate(event)
            tallies[key_of(event)].duplicates += 1
        else:
            reject(event, "conflict", count=True)
    return fresh


def _insert(
    session: Session, events: list[EventIn], keys: list[UsageKey], now: dt.datetime
) -> set[str]:
    """Insert events, skipping ids stored meanwhile; return the ids actually inserted."""
    rows = [
        (e.id, e.customer, e.product, e.quantity, e.timestamp, key[2])
        for e, key in zip(events, keys, strict=True)
    ]
    return store.insert_events(session.connection(), rows, now)


def _apply_tallies(session: Session, tallies: dict[UsageKey, _Tally], now: dt.datetime) -> None:
    """Add the batch's tallies to the running totals, rows locked in a fixed order."""
    if not tallies:
        return
    table = Usage.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    keys = sorted(tallies)
    blank = [
        {
            "customer_id": c,
            "product": p,
            "period_start": start,
            "quantity": Decimal(0),
            "events": 0,
            "duplicates": 0,
            "rejected": 0,
            "updated_at": now,
        }
        for c, p, start in keys
    ]
    session.execute(insert(table).on_conflict_do_nothing(), blank)
    key_columns = tuple_(table.c.customer_id, table.c.product, table.c.period_start)
    query = select(table).where(key_columns.in_(keys)).order_by(*table.primary_key.columns)
    if dialect == "postgresql":
        query = query.with_for_update()
    current = {(r.customer_id, r.product, r.period_start): r for r in session.execute(query)}
    updates = []
    for key in keys:
        row, tally = current[key], tallies[key]
        updates.append(
            {
                "k_customer": key[0],
                "k_product": key[1],
                "k_start": key[2],
                "quantity": EXACT.add(row.quantity, tally.quantity),
                "events": row.events + tally.events,
                "duplicates": row.duplicates + tally.duplicates,
                "rejected": row.rejected + tally.rejected,
                "updated_at": now,
            }
        )
    statement = (
        update(table)
        .where(table.c.customer_id == bindparam("k_customer"))
        .where(table.c.product == bindparam("k_product"))
        .where(table.c.period_start == bindparam("k_start"))
        .values(
            quantity=bindparam("quantity"),
            events=bindparam("events"),
            duplicates=bindparam("duplicates"),
            rejected=bindparam("rejected"),
            updated_at=bindparam("updated_at"),
        )
    )
    session.connection().execute(statement, updates)


def _chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def usage_for(*, session: Session, customer: Customer, period: Period) -> list[Usage]:
    """Running totals of one customer in one period, a row per product used."""
    table = Usage.__table__  # type: ignore[attr-defined]
    query = (
        select(Usage)
        .where(table.c.customer_id == customer.id)
        .where(table.c.period_start == period.start)
        .order_by(table.c.product)
    )
    return list(session.scalars(query))
