"""A customer's projected usage at list price, from the running totals (no raw events).

The run rate is the average list charge of the billing periods that ended within the last
90 days (up to three) and that the customer existed for in full. A customer without one
yet (younger than a whole period) is projected from the current period,
its quantities scaled to the whole period and then priced (tiers are not linear, so the
quantity is scaled, never the charge). The answer says which basis it used.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, select

from billing.caps.quota import billed_quantity
from billing.catalog import Catalog
from billing.customers.periods import Period, period_for
from billing.metering.store import usage_table
from billing.money import EXACT, ZERO, divide_to_billing_unit, round_to_billing_unit
from billing.pricing.charge import charge
from billing.pricing.pace import at_pace

WINDOW = dt.timedelta(days=90)
GRACE = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class RunRate:
    """A customer's monthly usage at list price (major units, rounded), and its basis."""

    monthly: Decimal  # list charge per period, rounded to the billing unit (major units)
    basis: str  # last_90_days | current_period | no_usage
    periods: tuple[str, ...]  # the period labels it comes from


def _list_charge(
    catalog: Catalog, customer_id: str, start: dt.datetime, quantities: dict[str, Decimal]
) -> Decimal:
    """The period's usage at the customer's list prices (their overrides included)."""
    total = ZERO
    for product, quantity in quantities.items():
        if product in catalog.products:
            plan = catalog.plan_for_period(product, start, customer_id)
            total = EXACT.add(total, charge(plan, quantity).amount)
    return total


def project(
    connection: Connection,
    catalog: Catalog,
    customer_id: str,
    anchor_day: int,
    now: dt.datetime,
    created_at: dt.datetime,
) -> RunRate:
    """The monthly run rate at list price, and where it comes from.

    Only periods the customer existed for in full (a day's grace) count as ended periods:
    the period a customer joined in holds a fraction of a month's usage.
    """
    table = usage_table()
    since = now - WINDOW - dt.timedelta(days=31)
    rows = connection.execute(
        select(table.c.period_start, table.c.product, table.c.quantity, table.c.limit_quantity)
        .where(table.c.customer_id == customer_id, table.c.period_start >= since)
        .order_by(table.c.period_start)
    )
    by_period: dict[dt.datetime, dict[str, Decimal]] = defaultdict(dict)
    for row in rows:
        by_period[row.period_start][row.product] = billed_quantity(row.quantity, row.limit_quantity)
    current = period_for(anchor_day, now)
    ended: list[Period] = []
    for start in by_period:
        period = period_for(anchor_day, start)
        whole = period.start >= created_at - GRACE
        if whole and period.end <= now and period.end > now - WINDOW:
            ended.append(period)
    ended = ended[-3:]
    if ended:
        total = ZERO
        for period in ended:
            total = EXACT.add(
                total, _list_charge(catalog, customer_id, period.start, by_period[period.start])
            )
        monthly = divide_to_billing_unit(total, len(ended), catalog.currency)
        return RunRate(monthly, "last_90_days", tuple(p.label for p in ended))
    quantities = by_period.get(current.start)
    if not quantities:
        return RunRate(ZERO, "no_usage", ())
    second = dt.timedelta(seconds=1)
    elapsed = max((now - current.start) // second, 1)
    length = (current.end - current.start) // second
    scaled = {p: at_pace(q, elapsed, length) for p, q in quantities.items()}
    monthly = round_to_billing_unit(
        _list_charge(catalog, customer_id, current.start, scaled), catalog.currency
    )
    return RunRate(monthly, "current_period", (current.label,))
