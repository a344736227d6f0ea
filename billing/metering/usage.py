"""A customer's running totals as the close reads them: what each period accepted within its
limit, and what invoices have billed of it so far (docs/invoicing.md, "Late usage")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, bindparam, or_, select, update

from billing.db import one_of, recalled, remember
from billing.metering.store import usage_table

# NOTE: statements built once: a period close runs them for every customer.
_USAGE = usage_table()
_COLUMNS = (
    _USAGE.c.product,
    _USAGE.c.period_start,
    _USAGE.c.quantity,
    _USAGE.c.limit_quantity,
    _USAGE.c.cap_amount,
    _USAGE.c.invoiced_quantity,
    _USAGE.c.capped_quantity,
)
_READ = (
    select(*_COLUMNS)
    .where(_USAGE.c.customer_id == bindparam("customer"))
    .where(_USAGE.c.period_start == bindparam("start"))
    .order_by(_USAGE.c.product)
)
_LOCK = _READ.with_for_update()
# A period's own rows and the late rows of earlier ones, in one statement (the close).
_FOR_CLOSE = (
    select(*_COLUMNS)
    .where(_USAGE.c.customer_id == bindparam("customer"))
    .where(
        or_(
            _USAGE.c.period_start == bindparam("start"),
            and_(_USAGE.c.period_start < bindparam("start"), _USAGE.c.amended),
        )
    )
    .order_by(_USAGE.c.period_start, _USAGE.c.product)
)
_MARK = (
    update(_USAGE)
    .where(_USAGE.c.customer_id == bindparam("customer"))
    .where(_USAGE.c.product == bindparam("row_product"))
    .where(_USAGE.c.period_start == bindparam("row_start"))
    .values(
        invoiced_quantity=bindparam("invoiced"),
        capped_quantity=bindparam("capped"),
        amended=False,
    )
)


@dataclass(frozen=True, slots=True)
class PeriodUsage:
    """One product's running total in one period: every unit `accepted` (over-limit events
    never count; the event that crossed the limit counts in full), the `limit` ingestion
    enforced (None: no limit) and the cap it was last computed from, and what invoices have
    billed (`invoiced`) and shown as capped (`capped`) of it so far."""

    product: str
    period_start: dt.datetime
    accepted: Decimal
    limit: Decimal | None
    cap_amount: Decimal | None
    invoiced: Decimal
    capped: Decimal

    @property
    def unaccounted(self) -> Decimal:
        """Accepted units no invoice line has carried yet (negative: none, it shrank)."""
        return self.accepted - self.invoiced - self.capped


def _record(row: Any) -> PeriodUsage:
    return PeriodUsage(
        product=row.product,
        period_start=row.period_start,
        accepted=row.quantity,
        limit=row.limit_quantity,
        cap_amount=row.cap_amount,
        invoiced=row.invoiced_quantity,
        capped=row.capped_quantity,
    )


def period_usage(
    connection: Connection, customer_id: str, period_start: dt.datetime, *, lock: bool
) -> list[PeriodUsage]:
    """Each product's running total in the period starting at `period_start`, by product key;
    with `lock`, the rows stay locked until the transaction ends (PostgreSQL), so no batch
    moves them while the period closes."""
    query = _LOCK if lock and connection.dialect.name == "postgresql" else _READ
    rows = connection.execute(query, {"customer": customer_id, "start": period_start})
    return [_record(row) for row in rows]


def usage_for_close(
    connection: Connection, customer_id: str, period_start: dt.datetime, *, lock: bool
) -> tuple[list[PeriodUsage], list[PeriodUsage]]:
    """The rows of the period starting at `period_start` (as `period_usage`), and the rows
    of earlier (closed) periods moved since an invoice last billed them, or never billed:
    late usage the period's invoice must adjust for; read (and with `lock`, locked) in one
    statement, its own rows by product, then the late rows by period and product; none when
    `read_for_close` read them ahead in this transaction."""
    ahead = _read_ahead(connection, customer_id, period_start, lock)
    if ahead is not None:
        return ahead
    query = _FOR_CLOSE
    if lock and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    own: list[PeriodUsage] = []
    late: list[PeriodUsage] = []
    for row in connection.execute(query, {"customer": customer_id, "start": period_start}):
        (own if row.period_start == period_start else late).append(_record(row))
    return own, late


_READ_AHEAD = "usage.read_for_close"


def read_for_close(
    connection: Connection,
    starts: Mapping[str, dt.datetime],
    *,
    lock: bool,
    lock_only: Collection[str] = (),
) -> None:
    """Read ahead, in one statement, what `usage_for_close` answers for many customers
    (customer id -> the start of the period it closes): each customer's next
    `usage_for_close` of that period in this transaction then answers from it, once,
    without a statement of its own (the period close reads a chunk of customers at once).
    With `lock` (PostgreSQL) the rows are locked in (customer, period start, product) order,
    the order a customer's own read locks them in; a few rows beyond those answered may be
    locked too (another customer's period start), all of customers the caller has locked.
    Customers in `lock_only` have their rows locked in the same statement (so every
    customer's rows are locked in customer order) but read again by their own close."""
    if not starts:
        return
    latest = max(starts.values())
    query = (
        select(_USAGE.c.customer_id, _USAGE.c.amended, *_COLUMNS)
        .where(one_of(connection, _USAGE.c.customer_id, sorted(starts)))
        .where(
            or_(
                _USAGE.c.period_start.in_(sorted(set(starts.values()))),
                and_(_USAGE.c.period_start < latest, _USAGE.c.amended),
            )
        )
        .order_by(_USAGE.c.customer_id, _USAGE.c.period_start, _USAGE.c.product)
    )
    if lock and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    found: dict[str, tuple[dt.datetime, list[PeriodUsage], list[PeriodUsage]]] = {
        customer: (start, [], []) for customer, start in starts.items()
    }
    for row in connection.execute(query):
        start, own, late = found[row.customer_id]
        if row.period_start == start:
            own.append(_record(row))
        elif row.period_start < start and row.amended:
            late.append(_record(row))
    for customer in lock_only:
        found.pop(customer, None)
    remember(connection, _READ_AHEAD, (lock, found))


def _read_ahead(
    connection: Connection, customer_id: str, period_start: dt.datetime, lock: bool
) -> tuple[list[PeriodUsage], list[PeriodUsage]] | None:
    """What `read_for_close` read for this customer and period in this transaction (taken:
    a second read goes to the database), or None."""
    kept = recalled(connection, _READ_AHEAD)
    if kept is None or (lock and not kept[0]):
        return None
    found = kept[1]
    entry = found.get(customer_id)
    if entry is None or entry[0] != period_start:
        return None
    del found[customer_id]
    return entry[1], entry[2]


def mark_invoiced(
    connection: Connection,
    customer_id: str,
    marks: list[tuple[str, dt.datetime, Decimal, Decimal]],
) -> None:
    """Record what invoices now carry of rows: (product, period start, units billed in all,
    units shown capped in all); the rows are no longer amended."""
    if not marks:
        return
    connection.execute(
        _MARK,
        [
            {
                "customer": customer_id,
                "row_product": product,
                "row_start": start,
                "invoiced": invoiced,
                "capped": capped,
            }
            for product, start, invoiced, capped in marks
        ],
    )
