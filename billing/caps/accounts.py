"""What ingestion and the quota views need to know about a customer, read in one query:
its period anchor, discount, alert settings and spend caps; and the quota terms they make."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from billing.caps.quota import QuotaTerms
from billing.catalog import Catalog
from billing.db import pg_binary, stored_utc
from billing.pricing.discounts import percent_in_force

CHUNK = 5000


# NOTE: not frozen, as a value all the same (never changed once built): a frozen __init__
# costs three to four times more, and a batch builds thousands of these
@dataclass(slots=True, kw_only=True)
class Account:
    """A customer as ingestion and quotas see it; `caps` maps product -> cap amount."""

    id: str
    anchor_day: int
    closed_through: dt.datetime | None
    billing_start: dt.datetime | None
    discount_percent: Decimal | None
    discount_until: dt.date | None
    thresholds: tuple[Decimal, ...]
    free_allowance_alert: bool
    webhook_url: str | None
    caps: Mapping[str, Decimal] = field(default_factory=dict)

    def discount_for(self, period_start: dt.datetime) -> Decimal:
        """The percentage discount in force for the period starting at `period_start`."""
        return percent_in_force(self.discount_percent, self.discount_until, period_start.date())


def parse_thresholds(text: str) -> tuple[Decimal, ...]:
    """'50,80,100' as stored on the customer."""
    return tuple(Decimal(part) for part in text.split(",") if part) if text else ()


def read_accounts(connection: Connection, ids: set[str]) -> dict[str, Account]:
    """The customers among `ids` with their spend caps (one statement per 5,000 ids)."""
    rows: dict[str, Sequence[Any]] = {}
    caps: dict[str, dict[str, Decimal]] = {}
    ordered = sorted(ids)
    postgres = connection.dialect.name == "postgresql"
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        if postgres:
            # NOTE: the driver's own rows, not SQLAlchemy's: building and processing the
            # select took more time than PostgreSQL took to run it (docs/benchmarks.md)
            read: Sequence[Sequence[Any]] = pg_binary(connection, _READ_PG, (chunk,))
        else:
            # NOTE: the driver's rows too (a batch of 100 spent a seventh of its time building
            # and processing the select), typed here as the columns' types would type them
            marks = ",".join("?" * len(chunk))
            read = [
                _typed_sqlite(row)
                for row in connection.exec_driver_sql(_READ_SQLITE + f"({marks})", tuple(chunk))
            ]
        for row in read:
            customer_id, product, amount = row[0], row[9], row[10]
            rows.setdefault(customer_id, row)
            products = caps.setdefault(customer_id, {})
            if product is not None:
                products[product] = amount
    thresholds: dict[str, tuple[Decimal, ...]] = {}
    found: dict[str, Account] = {}
    for customer_id, row in rows.items():
        _, anchor, closed, start_at, percent, until, text, free, webhook = row[:9]
        if text not in thresholds:
            thresholds[text] = parse_thresholds(text)
        found[customer_id] = Account(
            id=customer_id,
            anchor_day=anchor,
            closed_through=stored_utc(closed),
            billing_start=stored_utc(start_at),
            discount_percent=percent,
            discount_until=until,
            thresholds=thresholds[text],
            free_allowance_alert=bool(free),
            webhook_url=webhook,
            caps=caps[customer_id],
        )
    return found


# the columns of read_accounts' select, in its order, as one statement for psycopg
_READ_PG = (
    "SELECT c.id, c.billing_anchor_day, c.closed_through, c.billing_start, "
    "c.discount_percent, c.discount_until, c.alert_thresholds, c.alert_free_allowance, "
    "c.alert_webhook_url, s.product, s.amount "
    "FROM customer AS c LEFT OUTER JOIN spend_cap AS s ON s.customer_id = c.id "
    "WHERE c.id IN (SELECT unnest(%b::varchar[]))"
)


_READ_SQLITE = (
    "SELECT c.id, c.billing_anchor_day, c.closed_through, c.billing_start, "
    "c.discount_percent, c.discount_until, c.alert_thresholds, c.alert_free_allowance, "
    "c.alert_webhook_url, s.product, s.amount "
    "FROM customer AS c LEFT OUTER JOIN spend_cap AS s ON s.customer_id = c.id WHERE c.id IN "
)


def _typed_sqlite(row: Sequence[Any]) -> tuple[Any, ...]:
    """A row of `_READ_SQLITE` as the columns' types read it: ExactDecimal (text) Decimal,
    the date a date, the flag a bool; UTCDateTime's text is left to `stored_utc`, which
    `read_accounts` applies to both engines' rows."""
    customer_id, anchor, closed, start_at, percent, until, text, free, webhook, product, cap = row
    return (
        customer_id,
        anchor,
        closed,
        start_at,
        None if percent is None else Decimal(percent),
        None if until is None else dt.date.fromisoformat(until),
        text,
        bool(free),
        webhook,
        product,
        None if cap is None else Decimal(cap),
    )


def terms_for(catalog: Catalog, account: Account, product: str, start: dt.datetime) -> QuotaTerms:
    """The terms `product` is held to in the customer's period starting at `start`."""
    return QuotaTerms(
        product_name=catalog.products[product].name,
        plan=catalog.plan_for_period(product, start, account.id),
        cap=account.caps.get(product),
        discount_percent=account.discount_for(start),
    )
