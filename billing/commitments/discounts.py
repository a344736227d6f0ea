"""Percentage discounts set by an admin (non-profit, negotiated): docs/discounts.md.

A discount applies to every usage line of the periods starting on or before `until`
(forever without one), before credits. Spend caps are measured after it, so setting or
changing one moves the current period's limits at once, by the rule of caps/quota.py.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Connection, update

from billing.catalog import Catalog
from billing.commitments.public import DiscountPublic
from billing.customers.models import Customer
from billing.customers.periods import period_for
from billing.customers.service import lock_customer
from billing.db import table_of
from billing.errors import DateInPast, MissingReason
from billing.metering import quota
from billing.money import format_quantity


def set_discount(
    *,
    connection: Connection,
    catalog: Catalog,
    customer_id: str,
    percent: Decimal | None,
    reason: str | None,
    until: dt.date | None,
    now: dt.datetime,
) -> DiscountPublic:
    """Set (or with None remove) the discount; re-measure this period's capped limits."""
    if percent is not None and not (reason or "").strip():
        raise MissingReason(
            "say why: a discount needs a reason (for the audit trail)", field="reason"
        )
    if percent is not None and until is not None and until < now.date():
        raise DateInPast(f"until {until} is in the past", field="until")
    lock_customer(connection, customer_id)
    table = table_of(Customer)
    connection.execute(
        update(table)
        .where(table.c.id == customer_id)
        .values(
            discount_percent=percent,
            discount_reason=None if percent is None else reason,
            discount_until=None if percent is None else until,
        )
    )
    account = quota.account_of(connection, customer_id)
    period = period_for(account.anchor_day, now)
    quota.apply_terms(connection, catalog, account, account.caps, now)
    return DiscountPublic(
        customer=customer_id,
        percent=None if percent is None else format_quantity(percent),
        reason=None if percent is None else reason,
        until=None if until is None or percent is None else until.isoformat(),
        applies_from=period.label,
    )
