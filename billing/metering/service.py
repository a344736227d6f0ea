"""Ingestion and usage reads: the only metering code that touches the database.

`ingest` takes a batch, refuses what it must with a reason per event, stores the rest once
(an event id is a promise: the same id with the same content is a duplicate forever, with
other content a conflict), and moves the running totals in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import OperationalError

from billing.alerts.service import fire_due_alerts
from billing.caps.accounts import Account, read_accounts, terms_for
from billing.caps.quota import (
    Admission,
    QuotaState,
    admit,
    admit_latest,
    recorded_terms,
    reprice,
)
from billing.catalog import Catalog
from billing.catalog.models import NONE, OTHER, Product
from billing.customers.models import Customer
from billing.customers.periods import Period, is_closed, period_for
from billing.db import one_of, table_of
from billing.metering import limited as limited_list
from billing.metering import store
from billing.metering.models import Usage
from billing.metering.validate import ParsedEvent, PropertiesSeen, Rejection, parse_event

FUTURE_TOLERANCE = dt.timedelta(minutes=5)
# NOTE: a batch holds a share lock on the customers whose events fall in a period that has
# ended or ends within this long of the batch's `now`, so a period close (which locks the
# customer for update) either finished before the batch read `closed_through` or waits for
# the batch to commit. Periods further ahead are written unlocked, and a batch still running
# when one of them is within half of this of its end is run again (`ingest_batch`). Short:
# a customer's batches share the lock, and a change that locks the customer (a discount, a
# commitment, a void) may wait for a pause between them (PostgreSQL grants a share lock
# ahead of a queued update).
CLOSE_HORIZON = dt.timedelta(minutes=1)
CHUNK = 5000
UsageKey = store.UsageKey


def _held(period_end: dt.datetime, now: dt.datetime) -> bool:
    """Whether a batch at `now` holds the customer's share lock for events of a period
    ending at `period_end` (it has ended, or ends within CLOSE_HORIZON)."""
    return period_end <= now + CLOSE_HORIZON


@dataclass(slots=True)
class IngestResult:
    """What became of each event of a batch, by its index."""

    accepted: int = 0
    duplicates: int = 0
    over_limit_ids: dict[int, str] = field(default_factory=dict)  # index -> event id
    # index -> the products whose cap refused the event (all of its products, or some)
    over_limit_products: dict[int, list[str]] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)
    outcomes: dict[int, str] = field(default_factory=dict)  # index -> accepted | duplicate
    limits_changed: bool = False  # a product became limited (or stopped being) this batch
    # the earliest end of a period whose running totals were written without the customer's
    # share lock (CLOSE_HORIZON); None when there were none
    unlocked_until: dt.datetime | None = None

    @property
    def over_limit(self) -> list[str]:
        """Ids stored as over their period's limit, in batch order."""
        return [self.over_limit_ids[index] for index in sorted(self.over_limit_ids)]

    def accept(self, event: ParsedEvent) -> None:
        self.accepted += 1
        self.outcomes[event.index] = "accepted"

    def duplicate(self, event: ParsedEvent) -> None:
        self.duplicates += 1
        self.outcomes[event.index] = "duplicate"

    def refuse_over_limit(self, event: ParsedEvent, product: str) -> None:
        self.over_limit_ids[event.index] = event.id
        self.over_limit_products.setdefault(event.index, []).append(product)

    def counted_by_none(self, event: ParsedEvent) -> None:
        """An accepted event that every product it counts toward refused at its cap: it is
        over_limit, not accepted."""
        self.accepted -= 1
        self.outcomes.pop(event.index, None)

    def part(self, start: int, stop: int) -> IngestResult:
        """The result of events start..stop-1, re-indexed from 0 (one request of a group)."""
        part = IngestResult()
        for index in range(start, stop):
            outcome = self.outcomes.get(index)
            if outcome == "accepted":
                part.accepted += 1
            elif outcome == "duplicate":
                part.duplicates += 1
        part.over_limit_ids = {
            index - start: event_id
            for index, event_id in self.over_limit_ids.items()
            if start <= index < stop
        }
        part.over_limit_products = {
            index - start: products
            for index, products in self.over_limit_products.items()
            if start <= index < stop
        }
        part.rejected = [
            Rejection(r.index - start, r.id, r.error)
            for r in self.rejected
            if start <= r.index < stop
        ]
        return part

    def as_json(self) -> dict[str, Any]:
        """The answer of POST /v1/events (docs/metering.md)."""
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "over_limit": self.over_limit,
            "over_limit_products": {
                self.over_limit_ids[index]: self.over_limit_products[index]
                for index in sorted(self.over_limit_ids)
            },
            "rejected": [
                {"index": r.index, "id": r.id, "error": r.error}
                for r in sorted(self.rejected, key=lambda r: r.index)
            ],
        }


@dataclass(slots=True)
class _Tally:
    """Counts gathered before the running totals are locked."""

    duplicates: int = 0
    rejected: int = 0


_NO_TALLY = _Tally()


RETRIES = 5
RETRYABLE = {"40P01", "40001"}  # PostgreSQL: deadlock detected, serialization failure


class _PeriodEndNear(Exception):
    """A batch ran until a period it wrote unlocked was about to end: rolled back, run again."""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ingest_batch(
    *,
    engine: Engine,
    catalog: Catalog,
    raw_events: Sequence[Any],
    clock: Callable[[], dt.datetime] = _utc_now,
) -> IngestResult:
    """Ingest a batch in a transaction of its own, committed before this returns.

    `clock` (aware UTC) gives each attempt its `now`, and is read again before the commit:
    an attempt still running within half of CLOSE_HORIZON of the end of a period it wrote
    without the customer's share lock is rolled back and run again with a new `now`, so a
    period close that may start meanwhile never misses events this batch acknowledges.
    Raises the database's error when it is not a retryable one (deadlock, serialization
    failure) or after RETRIES attempts aborted by one, and RuntimeError when RETRIES
    attempts each ran that long."""
    aborted = outrun = 0
    while True:
        try:
            with engine.begin() as connection:
                result = ingest(
                    connection=connection, catalog=catalog, raw_events=raw_events, now=clock()
                )
                until = result.unlocked_until
                if until is not None and clock() + CLOSE_HORIZON / 2 >= until:
                    raise _PeriodEndNear
            if result.limits_changed:
                limited_list.changed()  # committed: GET /v1/quota/limited re-reads
            return result
        except (OperationalError, psycopg.OperationalError) as error:
            # NOTE: PostgreSQL may abort a transaction to break a lock cycle; a batch is
            # idempotent, so running it again is safe and the client never sees the abort.
            # The statements that take the locks run on psycopg's own cursor (store.py), whose
            # errors SQLAlchemy does not wrap: both kinds are caught.
            aborted += 1
            driver_error = getattr(error, "orig", error)
            if getattr(driver_error, "sqlstate", None) not in RETRYABLE or aborted == RETRIES:
                raise
            time.sleep(0.01 * aborted)  # float-ok: seconds
        except _PeriodEndNear:
            # NOTE: the next attempt's `now` is within CLOSE_HORIZON of that period's end, so
            # it takes the share lock: a second attempt settles, unless it too runs longer
            # than CLOSE_HORIZON / 2
            outrun += 1
            if outrun == RETRIES:
                raise RuntimeError(
                    f"{RETRIES} attempts each ran longer than {CLOSE_HORIZON / 2}"
                ) from None


def ingest(
    *, connection: Connection, catalog: Catalog, raw_events: Sequence[Any], now: dt.datetime
) -> IngestResult:
    """Validate, deduplicate and store a batch; update running usage. The caller commits.

    Steps, each one statement whatever the batch size (store.py): read the customers and
    their caps, insert the new events, lock the running totals the batch touches, write
    the totals. Spend caps are decided between the lock and the write, on locked rows.
    """
    result = IngestResult()
    parsed: list[ParsedEvent] = []
    seen_times: dict[str, dt.datetime] = {}
    seen_properties: PropertiesSeen = {}
    for index, raw in enumerate(raw_events):
        item = parse_event(raw, index, seen_times, seen_properties)
        if isinstance(item, Rejection):
            result.rejected.append(item)
        else:
            parsed.append(item)
    customers = read_accounts(connection, {e.customer for e in parsed})
    tallies: dict[UsageKey, _Tally] = defaultdict(_Tally)
    # NOTE: by billing anchor day, the period last found: real timestamps are all
    # distinct, but a batch's events mostly fall in the current period of one of a few
    # anchor days (a cache by exact timestamp never hit, and one by customer misses when
    # each event is another customer's; the lookup cost up to a fifth of the server's time)
    periods: dict[int, Period] = {}

    def period_at(anchor: int, instant: dt.datetime) -> Period:
        period = periods.get(anchor)
        if period is None or not period.start <= instant < period.end:
            period = periods[anchor] = period_for(anchor, instant)
        return period

    def periods_of(event: ParsedEvent) -> Period:
        return period_at(customers[event.customer].anchor_day, event.timestamp)

    # What each event counts toward: (product, multiplier), by batch index.
    selections: dict[int, list[tuple[str, Decimal]]] = {}

    keys_by_index: dict[int, list[UsageKey]] = {}

    def keys_of(event: ParsedEvent) -> list[UsageKey]:
        keys = keys_by_index.get(event.index)
        if keys is None:
            start = periods_of(event).start
            keys = [(event.customer, product, start) for product, _ in selections[event.index]]
            keys_by_index[event.index] = keys
        return keys

    def reject(event: ParsedEvent, error: str, *, count: bool = False) -> None:
        result.rejected.append(Rejection(event.index, event.id, error))
        if count:
            for key in keys_of(event):
                tallies[key].rejected += 1

    latest = now + FUTURE_TOLERANCE
    late = catalog.late_usage
    first_seen: dict[str, ParsedEvent] = {}
    candidates: list[ParsedEvent] = []
    counted: dict[tuple[str, int], list[tuple[str, Decimal]]] = {}  # by name and properties
    for event in parsed:
        customer = customers.get(event.customer)
        # NOTE: events sharing properties share one checked dict (validate.py): selecting
        # once per name and dict is exact and spares a batch thousands of filter checks
        cache_key = (event.product, id(event.properties))
        selected = counted.get(cache_key)
        if selected is None:
            selected = counted[cache_key] = catalog.counted_by(event.product, event.properties)
        selections[event.index] = selected
        if customer is None:
            reject(event, "unknown_customer")
        elif not selected:
            reject(event, "unknown_product")
        elif (needs := _missing_unique(catalog, selected, event)) is not None:
            reject(
                event,
                f"invalid: properties.{needs[1]}: required by {needs[0]}, which counts its "
                "distinct values",
            )
        elif event.timestamp > latest:
            reject(event, "timestamp_in_future")
        elif customer.billing_start is not None and event.timestamp < customer.billing_start:
            starts = customer.billing_start.isoformat().replace("+00:00", "Z")
            reject(event, f"before_billing_start: billing starts at {starts}")
        elif (unpriced := _unpriced(catalog, selected, event.timestamp.date())) is not None:
            reject(event, f"no_price_in_force: {unpriced[0]} is priced from {unpriced[1]}")
        elif is_closed(customer.closed_through, event.timestamp) and not late.accepts(
            periods_of(event).end, now
        ):
            reject(event, "period_closed", count=True)
        elif (earlier := first_seen.get(event.id)) is not None:
            if earlier.same_content(
                event.customer,
                event.product,
                event.quantity,
                event.timestamp,
                event.stored_properties,
            ):
                result.duplicate(event)
                for key in keys_of(event):
                    tallies[key].duplicates += 1
            else:
                reject(event, "conflict", count=True)
        else:
            first_seen[event.id] = event
            candidates.append(event)

    candidates = _recheck_closed(
        connection, catalog, customers, candidates, periods_of, now, reject
    )
    candidate_keys = [keys_of(e) for e in candidates]
    # NOTE: rows are locked and written in one global order (customers, event ids, then
    # usage keys, each sorted), so concurrent batches with shared ids or keys wait for each
    # other instead of deadlocking. The events go in before the running totals are locked:
    # batches touching the same totals (large ones touch most) then store their events side
    # by side, and hold the totals only while admitting and writing them.
    order = sorted(range(len(candidates)), key=lambda i: candidates[i].id)
    rows = [
        (e.id, e.customer, e.product, e.quantity, e.timestamp, start, e.stored_properties)
        for e, start in ((candidates[i], candidate_keys[i][0][2]) for i in order)
    ]
    inserted = store.insert_events(connection, rows, now)
    stored: dict[str, store.Stored] = {}
    if len(inserted) < len(candidates):  # stored before: by an earlier batch or a racing one
        stored = store.read_stored(connection, [e.id for e in candidates if e.id not in inserted])
    # stored now, in batch order, per usage row: the event and its quantity there (times
    # the source's multiplier). NOTE: worked out before the running totals are locked, so
    # that a batch holds them (and makes concurrent batches wait) only while it admits.
    runs: dict[UsageKey, list[tuple[ParsedEvent, Decimal]]] = defaultdict(list)
    counts_once = {
        key for key, product in catalog.products.items() if product.aggregation == "count"
    }
    outcomes = result.outcomes
    for event, keys in zip(candidates, candidate_keys, strict=True):
        if event.id in inserted:
            selected = selections[event.index]
            if len(selected) == 1 and selected[0][1] == 1 and selected[0][0] not in counts_once:
                runs[keys[0]].append((event, event.quantity))  # the common case
            else:
                for key, (product, multiplier) in zip(keys, selected, strict=True):
                    if product in counts_once:
                        quantity = multiplier  # each event counts once (times its multiplier)
                    elif multiplier == 1:
                        quantity = event.quantity
                    else:
                        quantity = event.quantity * multiplier
                    runs[key].append((event, quantity))
            outcomes[event.index] = "accepted"
        elif event.same_content(*stored[event.id]):
            result.duplicate(event)
            for key in keys:
                tallies[key].duplicates += 1
        else:
            reject(event, "conflict", count=True)
    result.accepted += len(inserted)
    every_key = {key for keys in candidate_keys for key in keys}
    running = store.lock_usage(connection, sorted({*tallies, *every_key}), now)
    _read_moved_terms(connection, customers, running)
    over: dict[str, list[str]] = {}  # event id -> products whose cap refused it
    moved: dict[UsageKey, store.UsageRow] = {}
    breakdowns: store.Breakdowns = {}
    names: dict[tuple[str, int], str] = {}  # breakdown keys by product and properties
    for key, row in running.items():
        customer_id, product, start = key
        account = customers[customer_id]
        terms = terms_for(catalog, account, product, start)
        events = runs.get(key, [])
        closed = is_closed(account.closed_through, start)
        # NOTE: a closed period keeps the limit it closed with: late usage is admitted under
        # the terms of its own period, never today's (docs/metering.md, "Late usage").
        quota = row.quota if closed else reprice(row.quota, terms)
        admission = _admit(connection, catalog.products[product], key, quota, events)
        dimensioned = catalog.products[product].dimensions
        for (event, quantity), accepted in zip(events, admission.accepted, strict=True):
            if not accepted:
                result.refuse_over_limit(event, product)
                over.setdefault(event.id, []).append(product)
            elif dimensioned:
                part = breakdowns.setdefault(key, {})
                cached = (product, id(event.properties))
                name = names.get(cached) or names.setdefault(
                    cached, catalog.products[product].breakdown_key(event.properties)
                )
                before = part.get(name, (Decimal(0), 0))
                part[name] = (before[0] + quantity, before[1] + 1)
        tally = tallies.get(key, _NO_TALLY)
        totals = row.totals
        moved[key] = store.UsageRow(
            totals=store.UsageTotals(
                events=totals.events + sum(admission.accepted),
                duplicates=totals.duplicates + tally.duplicates,
                rejected=totals.rejected + tally.rejected,
            ),
            quota=fire_due_alerts(
                connection,
                account=account,
                product=product,
                period_start=start,
                state=admission.state,
                terms=terms,
                now=now,
            ),
            period_end=period_at(account.anchor_day, start).end,
            amended=closed and bool(events),
        )
    if over:
        for event in candidates:
            if event.id in over and len(over[event.id]) == len(selections[event.index]):
                result.counted_by_none(event)
        store.mark_over_limit(
            connection,
            {
                (event.customer, keys[0][2], event.id): over[event.id]
                for event, keys in zip(candidates, candidate_keys, strict=True)
                if event.id in over
            },
        )
    parts = store.BreakdownWrites()
    if breakdowns:
        limits = {
            product: (
                catalog.products[product].max_dimension_values,
                catalog.products[product].breakdown_key(None).replace(NONE, OTHER),
            )
            for _, product, _ in breakdowns
        }
        parts = store.plan_breakdowns(connection, breakdowns, limits)
    store.write_usage(connection, moved, now, parts)
    ends = {row.period_end for row in moved.values()}  # a few distinct ends per batch
    result.unlocked_until = min(
        (end for end in ends if end is not None and not _held(end, now)), default=None
    )
    result.limits_changed = any(
        moved[key].quota.limited != row.quota.limited for key, row in running.items()
    )
    return result


def _read_moved_terms(
    connection: Connection, customers: dict[str, Account], running: dict[UsageKey, store.UsageRow]
) -> None:
    """Read again, into `customers`, the accounts whose caps or discount changed since they
    were read at the start of the batch.

    A cap or discount change locks the running totals of the customer's current period
    and records its terms on them (metering/quota.py, `apply_terms`), so once the batch
    holds them a change either committed first or waits for the batch. A row of an open
    period whose recorded cap and discount differ from the account read earlier was
    repriced by a change committed in between (or is a capped product's first row of a
    period): its account is read again, now that the change is committed, and the batch is
    admitted under the terms in force, never under ones a committed change replaced. Rows
    of closed periods keep the terms they closed with, and are not compared.
    """
    moved = set()
    for (customer_id, product, start), row in running.items():
        account = customers[customer_id]
        if is_closed(account.closed_through, start) or customer_id in moved:
            continue
        recorded = recorded_terms(account.caps.get(product), account.discount_for(start))
        if (row.quota.cap_amount, row.quota.cap_discount) != recorded:
            moved.add(customer_id)
    if moved:
        customers.update(read_accounts(connection, moved))


def _admit(
    connection: Connection,
    product: Product,
    key: UsageKey,
    quota: QuotaState,
    events: list[tuple[ParsedEvent, Decimal]],
) -> Admission:
    """Decide one product's run of events by its aggregation (docs/tier-files.md,
    "Aggregations"), recording what unique_count and latest keep beside the total."""
    if product.aggregation in ("sum", "count"):
        return admit(quota, [quantity for _, quantity in events])
    if product.aggregation == "max":
        return admit(quota, [quantity for _, quantity in events], rule="max")
    if product.aggregation == "latest":
        before = store.latest_taken(connection, key) if events else None
        readings = [(quantity, event.timestamp) for event, quantity in events]
        admission, taken = admit_latest(quota, readings, before)
        if taken is not None and taken != before:
            store.set_latest_taken(connection, key, before, taken)
        return admission
    # unique_count: an event brings 1 when its value is new to the period, else 0
    name = product.unique_property
    assert name is not None  # the catalogue requires it
    values = [(event.properties or {})[name] for event, _ in events]  # checked on the way in
    known = store.known_values(connection, key, values)
    firsts: list[str | None] = []
    for value in values:
        firsts.append(None if value in known else value)
        known.add(value)
    admission = admit(quota, [Decimal(0) if v is None else Decimal(1) for v in firsts])
    counted = [v for v, ok in zip(firsts, admission.accepted, strict=True) if v and ok]
    store.add_values(connection, key, counted)
    return admission


def _missing_unique(
    catalog: Catalog, selected: list[tuple[str, Decimal]], event: ParsedEvent
) -> tuple[str, str] | None:
    """The first unique_count product an event counts toward whose property it lacks, with
    that property; None when there is none."""
    for key, _ in selected:
        name = catalog.products[key].unique_property
        if name is not None and (event.properties is None or name not in event.properties):
            return key, name
    return None


def _unpriced(
    catalog: Catalog, selected: list[tuple[str, Decimal]], day: dt.date
) -> tuple[str, dt.date] | None:
    """The first product an event dated `day` counts toward that has no price yet on that
    day, with the day its price starts; None when every one is priced. An event is counted
    by all of its products or refused: never billed by some of them silently."""
    for product, _ in selected:
        first = catalog.first_price_day(product)
        if day < first:
            return product, first
    return None


def _recheck_closed(
    connection: Connection,
    catalog: Catalog,
    customers: dict[str, Account],
    candidates: list[ParsedEvent],
    period_of: Callable[[ParsedEvent], Period],
    now: dt.datetime,
    reject: Any,
) -> list[ParsedEvent]:
    """Events for periods that have ended, or end within CLOSE_HORIZON of `now`: re-read
    `closed_through` under a share lock, held to the commit.

    A period close locks the customer row for update, so this waits for a close in
    progress and then sees where it got to, and a close starting later waits for this
    batch: a late event is either in the invoice, or refused `period_closed`, or (late
    usage policy `amend`, within its window) stored into its closed period for the next
    invoice to adjust; never stored into an invoiced period unseen. Events of periods
    further from their end (nearly all) skip this; `ingest_batch` covers them.
    """
    ended = sorted({e.customer for e in candidates if _held(period_of(e).end, now)})
    if not ended:
        return candidates
    table = table_of(Customer)
    query = select(table.c.id, table.c.closed_through).where(one_of(connection, table.c.id, ended))
    if connection.dialect.name == "postgresql":
        query = query.order_by(table.c.id).with_for_update(read=True)
    for row in connection.execute(query):
        customers[row.id] = replace(customers[row.id], closed_through=row.closed_through)
    kept = []
    for event in candidates:
        period = period_of(event)
        closed = is_closed(customers[event.customer].closed_through, event.timestamp)
        if closed and not catalog.late_usage.accepts(period.end, now):
            reject(event, "period_closed", count=True)
        else:
            kept.append(event)
    return kept


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductUsage:
    """One product's running totals in a period: the quantity accepted, events accepted,
    duplicates seen and events rejected."""

    product: str
    quantity: Decimal
    events: int
    duplicates: int
    rejected: int


def usage_for(*, connection: Connection, customer_id: str, period: Period) -> list[ProductUsage]:
    """Running totals of one customer in one period, a row per product used."""
    table = table_of(Usage)
    query = (
        select(
            table.c.product, table.c.quantity, table.c.events, table.c.duplicates, table.c.rejected
        )
        .where(table.c.customer_id == customer_id)
        .where(table.c.period_start == period.start)
        .order_by(table.c.product)
    )
    return [
        ProductUsage(
            product=row.product,
            quantity=row.quantity,
            events=row.events,
            duplicates=row.duplicates,
            rejected=row.rejected,
        )
        for row in connection.execute(query)
    ]
