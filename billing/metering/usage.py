"""Reading a period's billed usage from the running totals, as the close prices it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, bindparam, select

from billing.caps.quota import billed_quantity
from billing.metering.store import usage_table

# NOTE: statements built once: a period close runs them for every customer.
_USAGE = usage_table()
_READ = (
    select(_USAGE.c.product, _USAGE.c.quantity, _USAGE.c.limit_quantity)
    .where(_USAGE.c.customer_id == bindparam("customer"))
    .where(_USAGE.c.period_start == bindparam("start"))
    .order_by(_USAGE.c.product)
)
_LOCK = _READ.with_for_update()


@dataclass(frozen=True, slots=True)
class Billed:
    """A product's billed quantity in one period: min(accepted, limit_quantity)."""

    product: str
    quantity: Decimal


def billed_usage(
    connection: Connection, customer_id: str, period_start: dt.datetime, *, lock: bool
) -> list[Billed]:
    """Each product's billed quantity in the period starting at `period_start`, by product
    key; with `lock`, the rows stay locked until the transaction ends (PostgreSQL), so no
    batch moves them while the period closes."""
    query = _LOCK if lock and connection.dialect.name == "postgresql" else _READ
    rows = connection.execute(query, {"customer": customer_id, "start": period_start})
    return [Billed(row.product, billed_quantity(row.quantity, row.limit_quantity)) for row in rows]
