"""Create and read customers, and lock one for a change to its billing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, sql
from sqlalchemy.exc import IntegrityError

from billing.customers.models import Customer, CustomerCreate
from billing.customers.periods import Period, period_for
from billing.db import one_of, table_of
from billing.errors import CurrencyMismatch, CustomerExists, InvalidDate, NotFound
from billing.pricing.discounts import percent_in_force

# The earliest billing start accepted: history older than this is a typo, not an import.
EARLIEST_BILLING_START = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerRow:
    """A customer as stored, every column: what the API, the pages and the CLI show
    (`CustomerPublic` and the alert settings are built from it)."""

    id: str
    name: str
    email: str | None
    billing_anchor_day: int
    currency: str | None
    created_at: dt.datetime
    billing_start: dt.datetime | None
    closed_through: dt.datetime | None
    discount_percent: Decimal | None
    discount_reason: str | None
    discount_until: dt.date | None
    alert_thresholds: str
    alert_free_allowance: bool
    alert_webhook_url: str | None
    webhook_secret: str | None


_CUSTOMERS = table_of(Customer)
_ROW = sql.select(*(_CUSTOMERS.c[column.name] for column in fields(CustomerRow)))


def _row(row: Row[*tuple[Any, ...]]) -> CustomerRow:
    return CustomerRow(**row._mapping)


def create_customer(
    *,
    connection: Connection,
    data: CustomerCreate,
    currency: str,
    now: dt.datetime | None = None,
) -> CustomerRow:
    """Create a customer in the catalogue's currency at `now` (default: the clock).

    Billing starts at `data.billing_start` (default: the start of the billing period holding
    `now`, so usage earlier in the month of sign-up is billed): the first billing period is
    the one holding that instant, and usage dated before it is refused (docs/metering.md,
    "Billing start"). Errors: CurrencyMismatch, InvalidDate (field billing_start) for a start
    later than `now` or before 2000-01-01, CustomerExists for a duplicate id.
    """
    now = now or dt.datetime.now(dt.UTC)
    if data.billing_start is None:
        start = period_for(data.billing_anchor_day, now).start
    else:
        start = data.billing_start.astimezone(dt.UTC)
    if start > now:
        raise InvalidDate(
            f"billing_start {start.isoformat()} is later than now ({now.isoformat()}); "
            "billing starts now or in the past",
            field="billing_start",
        )
    if start < EARLIEST_BILLING_START:
        raise InvalidDate(
            f"billing_start {start.isoformat()} is before {EARLIEST_BILLING_START.date()}",
            field="billing_start",
        )
    if data.currency is not None and data.currency != currency:
        raise CurrencyMismatch(
            f"this catalogue prices in {currency}; a customer in {data.currency} cannot be billed",
            field="currency",
        )
    exists = CustomerExists(f"customer {data.id!r} already exists", field="id")
    if connection.execute(sql.select(_CUSTOMERS.c.id).where(_CUSTOMERS.c.id == data.id)).first():
        raise exists
    try:
        # NOTE: a savepoint, so a request that raced us to the id leaves this transaction usable.
        with connection.begin_nested():
            connection.execute(
                sql.insert(_CUSTOMERS).values(
                    id=data.id,
                    name=data.name,
                    email=data.email,
                    billing_anchor_day=data.billing_anchor_day,
                    currency=currency,
                    created_at=now,
                    billing_start=start,
                )
            )
    except IntegrityError:
        raise exists from None
    return get_customer(connection=connection, customer_id=data.id)


def get_customer(*, connection: Connection, customer_id: str) -> CustomerRow:
    """A customer by id, or NotFound."""
    row = connection.execute(_ROW.where(_CUSTOMERS.c.id == customer_id)).first()
    if row is None:
        raise NotFound(f"no customer {customer_id!r}", field="customer")
    return _row(row)


def list_customers(
    *, connection: Connection, limit: int = 100, after: str | None = None
) -> list[CustomerRow]:
    """Customers by id, a page at a time."""
    query = _ROW.order_by(_CUSTOMERS.c.id).limit(limit)
    if after:
        query = query.where(_CUSTOMERS.c.id > after)
    return [_row(row) for row in connection.execute(query)]


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerRecord:
    """What billing a customer's periods needs: the period anchor (day 1-28), when the
    customer was created, how far periods are closed (exclusive instant, UTC), and the
    percentage discount with its last period date."""

    id: str
    anchor_day: int
    created_at: dt.datetime
    billing_start: dt.datetime
    closed_through: dt.datetime | None
    discount_percent: Decimal | None
    discount_until: dt.date | None

    def discount_for(self, period_start: dt.datetime) -> Decimal:
        """The percentage discount in force for the period starting at `period_start`."""
        return percent_in_force(self.discount_percent, self.discount_until, period_start.date())

    def next_period(self, closed_through: dt.datetime | None) -> Period:
        """The first period not closed yet: the one after `closed_through`, else the one its
        billing starts in."""
        return period_for(self.anchor_day, closed_through or self.billing_start)


# NOTE: statements built once: a period close runs them for every customer.
_RECORDS = sql.select(
    _CUSTOMERS.c.id,
    _CUSTOMERS.c.billing_anchor_day,
    _CUSTOMERS.c.created_at,
    _CUSTOMERS.c.billing_start,
    _CUSTOMERS.c.closed_through,
    _CUSTOMERS.c.discount_percent,
    _CUSTOMERS.c.discount_until,
)
_READ = _RECORDS.where(_CUSTOMERS.c.id == bindparam("id"))
# FOR NO KEY UPDATE: serializes closes, commitment changes and late events (FOR SHARE)
# on the customer, but not the FOR KEY SHARE locks that inserting events and usage rows
# take through their foreign keys, so ingestion never waits for (or deadlocks with) a close.
_LOCK = _READ.with_for_update(key_share=True)


def _record(connection: Connection, query: Select[Any], customer_id: str) -> CustomerRecord:
    row = connection.execute(query, {"id": customer_id}).first()
    if row is None:
        raise NotFound(f"no customer {customer_id!r}", field="customer")
    return _as_record(row)


def _as_record(row: Any) -> CustomerRecord:
    return CustomerRecord(
        id=row.id,
        anchor_day=row.billing_anchor_day,
        created_at=row.created_at,
        billing_start=row.billing_start or row.created_at,
        closed_through=row.closed_through,
        discount_percent=row.discount_percent,
        discount_until=row.discount_until,
    )


def lock_customer(connection: Connection, customer_id: str) -> CustomerRecord:
    """The customer, its row locked until the transaction ends (PostgreSQL); NotFound if
    missing. Every change to a customer's billing (a close, a commitment, a credit, a
    discount, a void) takes this lock first, so they never interleave.

    SQLite needs no row lock: every writing transaction there holds the database lock.
    """
    query = _LOCK if connection.dialect.name == "postgresql" else _READ
    return _record(connection, query, customer_id)


def lock_customers(connection: Connection, customer_ids: list[str]) -> dict[str, CustomerRecord]:
    """Those of `customer_ids` that exist, each row locked until the transaction ends (as
    `lock_customer` takes it, PostgreSQL), in one statement. The rows are locked in id
    order, the order the close takes its customers in, so two lockers of overlapping
    customers wait for each other instead of deadlocking."""
    query = _RECORDS.where(one_of(connection, _CUSTOMERS.c.id, customer_ids)).order_by(
        _CUSTOMERS.c.id
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(key_share=True)
    return {row.id: _as_record(row) for row in connection.execute(query)}


def read_customer(connection: Connection, customer_id: str) -> CustomerRecord:
    """The customer, unlocked; NotFound if missing."""
    return _record(connection, _READ, customer_id)
