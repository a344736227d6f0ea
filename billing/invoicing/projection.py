"""The running period's projected month-end cost, at the pace its usage has gone so far.

Each product's accepted quantity is extrapolated to the whole period (sums and counts; a
max, a latest reading or a count of distinct values is taken as it stands), held to the
product's limit (a cap stops usage there), and priced like the invoice will price it: the
plan in force at the period's start, the percentage discount, rounded per line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection

from billing.caps.quota import ProductQuota, line_total
from billing.catalog import Catalog
from billing.customers.periods import Period
from billing.metering import quota as quota_service
from billing.pricing.pace import at_pace


@dataclass(frozen=True, slots=True)
class ProjectedLine:
    product: str
    quantity_so_far: Decimal
    quantity: Decimal  # projected for the whole period
    capped: bool  # the projection reaches the product's limit
    amount: Decimal  # rounded line total after the discount


@dataclass(frozen=True, slots=True)
class MonthEndProjection:
    """The running period's projected lines (major units, rounded per line) and their total."""

    period: Period
    elapsed_days: Decimal
    lines: tuple[ProjectedLine, ...]

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal(0))


def month_end(
    connection: Connection, catalog: Catalog, customer_id: str, now: dt.datetime
) -> MonthEndProjection:
    """Every product's projected quantity and amount for the customer's current period."""
    views = quota_service.quotas(connection, catalog, customer_id, now)
    return project(catalog, views, now, customer_id)


def project(
    catalog: Catalog, views: list[ProductQuota], now: dt.datetime, customer_id: str
) -> MonthEndProjection:
    """The projection from quota views already read (one period's, every product)."""
    period = views[0].period
    elapsed = int((now - period.start).total_seconds())
    length = int((period.end - period.start).total_seconds())
    lines = []
    for view in views:
        # NOTE: sums and counts grow with time; a max, the latest reading or a count of
        # distinct values does not scale with the days left: it is projected as it stands
        additive = catalog.products[view.product].aggregation in ("sum", "count")
        quantity = at_pace(view.accepted, elapsed, length) if additive else view.accepted
        capped = view.limit_quantity is not None and quantity >= view.limit_quantity
        if view.limit_quantity is not None:
            quantity = min(quantity, view.limit_quantity)
        plan = catalog.plan_for_period(view.product, period.start, customer_id)
        amount = line_total(plan, quantity, view.discount_percent)
        lines.append(ProjectedLine(view.product, view.accepted, quantity, capped, amount))
    days = (Decimal(max(elapsed, 0)) / Decimal(86400)).quantize(Decimal("0.1"))
    return MonthEndProjection(period, days, tuple(lines))
