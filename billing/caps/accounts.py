"""What ingestion and the quota views need to know about a customer, read in one query."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Connection, select

from billing.caps.limits import limit_for
from billing.caps.models import SpendCap
from billing.catalog import Catalog
from billing.customers.models import Customer
from billing.db import table_of
from billing.metering.store import UsageKey, UsageState
from billing.pricing.discounts import percent_in_force
from billing.pricing.plan import PricePlan

CHUNK = 5000


@dataclass(slots=True)
class Account:
    id: str
    anchor_day: int
    closed_through: dt.datetime | None
    discount_percent: Decimal | None
    discount_until: dt.date | None
    thresholds: tuple[Decimal, ...]
    free_allowance_alert: bool
    webhook_url: str | None
    caps: dict[str, Decimal] = field(default_factory=dict)

    def discount_for(self, period_start: dt.datetime) -> Decimal:
        return percent_in_force(self.discount_percent, self.discount_until, period_start.date())


def parse_thresholds(text: str) -> tuple[Decimal, ...]:
    """'50,80,100' as stored on the customer."""
    return tuple(Decimal(part) for part in text.split(",") if part) if text else ()


def read_accounts(connection: Connection, ids: set[str]) -> dict[str, Account]:
    """The customers among `ids` with their spend caps (one statement per 5,000 ids)."""
    customer = table_of(Customer)
    cap = table_of(SpendCap)
    columns = (
        customer.c.id,
        customer.c.billing_anchor_day,
        customer.c.closed_through,
        customer.c.discount_percent,
        customer.c.discount_until,
        customer.c.alert_thresholds,
        customer.c.alert_free_allowance,
        customer.c.alert_webhook_url,
        cap.c.product,
        cap.c.amount,
    )
    joined = customer.outerjoin(cap, cap.c.customer_id == customer.c.id)
    found: dict[str, Account] = {}
    ordered = sorted(ids)
    thresholds: dict[str, tuple[Decimal, ...]] = {}
    for start in range(0, len(ordered), CHUNK):
        query = select(*columns).select_from(joined)
        query = query.where(customer.c.id.in_(ordered[start : start + CHUNK]))
        for row in connection.execute(query):
            account = found.get(row.id)
            if account is None:
                text = row.alert_thresholds
                if text not in thresholds:
                    thresholds[text] = parse_thresholds(text)
                account = found[row.id] = Account(
                    id=row.id,
                    anchor_day=row.billing_anchor_day,
                    closed_through=row.closed_through,
                    discount_percent=row.discount_percent,
                    discount_until=row.discount_until,
                    thresholds=thresholds[text],
                    free_allowance_alert=bool(row.alert_free_allowance),
                    webhook_url=row.alert_webhook_url,
                )
            if row.product is not None:
                account.caps[row.product] = row.amount
    return found


@dataclass(frozen=True, slots=True)
class Quota:
    """The terms one usage row is held to: the plan of its period, its cap and discount."""

    product_name: str
    plan: PricePlan
    cap: Decimal | None
    discount_percent: Decimal


def plan_for_period(catalog: Catalog, product: str, period_start: dt.datetime) -> PricePlan:
    """The price plan in force at the start of a period (the first one if none was yet)."""
    found = catalog.products[product]
    version = found.version_at(period_start.date()) or found.versions[0]
    return version.plan


def quota_of(catalog: Catalog, account: Account, key: UsageKey) -> Quota:
    _, product, start = key
    return Quota(
        product_name=catalog.products[product].name,
        plan=plan_for_period(catalog, product, start),
        cap=account.caps.get(product),
        discount_percent=account.discount_for(start),
    )


def sync_limit(quota: Quota, state: UsageState) -> bool:
    """Bring the row's limit in line with the cap and discount now in force; True if moved.

    The row remembers the cap and discount its limit was computed from, so a change made
    since (a new cap, a discount, a new period's first event) is applied exactly once.
    """
    discount = quota.discount_percent if quota.cap is not None else None
    if state.cap_amount == quota.cap and state.cap_discount == discount:
        return False
    state.limit_quantity = limit_for(
        quota.plan, quota.cap, quota.discount_percent, state.quantity, state.limit_quantity
    )
    state.cap_amount, state.cap_discount = quota.cap, discount
    return True
