"""Spend caps as terms: validating a cap, storing it, and the audit trail of changes.

A cap is stored here; what it does to the running period (its limit, alerts, the words
that say so) is applied to the period's quota by metering/quota.py, which calls these in
the same transaction. Every change is audited: who, when, old -> new, effect.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from billing.caps.models import SpendCap, SpendCapChange
from billing.caps.quota import ProductQuota
from billing.catalog import Catalog
from billing.db import table_of
from billing.errors import InvalidAmount, NotFound
from billing.money import billing_digits, format_amount, fraction_digits, group_quantity


def check_product(catalog: Catalog, product: str) -> None:
    if product not in catalog.products:
        known = ", ".join(sorted(catalog.products))
        raise NotFound(f"no product {product!r} (products: {known})", field="product")


def check_cap(catalog: Catalog, product: str, amount: Decimal | None) -> None:
    """Refuse an unknown product, a negative cap, or more decimals than the currency has."""
    check_product(catalog, product)
    if amount is None:
        return
    if amount < 0:
        raise InvalidAmount(f"a cap is 0 or more, got {amount:f}", field="amount")
    digits = billing_digits(catalog.currency)
    if fraction_digits(amount) > digits:
        raise InvalidAmount(
            f"a cap in {catalog.currency} has at most {digits} decimal places, got {amount:f}",
            field="amount",
        )


def store_cap(
    connection: Connection,
    *,
    customer_id: str,
    product: str,
    amount: Decimal | None,
    now: dt.datetime,
) -> None:
    """Store a product's cap (in the catalogue's currency), or remove it with None."""
    table = table_of(SpendCap)
    if amount is None:
        connection.execute(
            delete(table).where(table.c.customer_id == customer_id, table.c.product == product)
        )
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    upsert = dialect.insert(table).values(
        customer_id=customer_id, product=product, amount=amount, updated_at=now
    )
    connection.execute(
        upsert.on_conflict_do_update(
            index_elements=["customer_id", "product"],
            set_={"amount": amount, "updated_at": now},
        )
    )


def record_change(
    connection: Connection,
    *,
    customer_id: str,
    product: str,
    old_amount: Decimal | None,
    new_amount: Decimal | None,
    actor: str,
    effect: str,
    now: dt.datetime,
) -> None:
    """Add a change to the audit trail."""
    connection.execute(
        insert(table_of(SpendCapChange)).values(
            customer_id=customer_id,
            product=product,
            old_amount=old_amount,
            new_amount=new_amount,
            changed_by=actor,
            changed_at=now,
            effect=effect,
        )
    )


def effect(catalog: Catalog, view: ProductQuota, billed_before: Decimal) -> str:
    """What a cap change did to the current period, in words (docs/spend-caps.md)."""
    unit = _plural(catalog.products[view.product].unit)
    money = partial(format_amount, currency=catalog.currency)
    count = group_quantity
    until = view.period.end.date().isoformat()
    if view.cap is None:
        return f"No cap: {view.product} usage is no longer limited."
    if view.q_max is None:
        return f"The cap never binds: at this price, {view.product} usage stays within it."
    if billed_before > view.q_max:
        return (
            f"Lowered below what this period already accrued ({count(billed_before)} {unit}, "
            f"{money(view.accrued)} {catalog.currency}): that usage stays billed, nothing more "
            f"is accepted until the period ends on {until}, and the cap of {money(view.cap)} "
            f"{catalog.currency} ({count(view.q_max)} {unit}) applies in full from the next "
            "period."
        )
    left = max(view.q_max - view.accepted, Decimal(0))
    return (
        f"Takes effect at once: up to {count(view.q_max)} {unit} this period "
        f"({count(left)} more before {until}), within {money(view.cap)} {catalog.currency}."
    )


def _plural(unit: str) -> str:
    return unit if unit.endswith("s") or unit.isupper() else f"{unit}s"


def cap_changes(connection: Connection, customer_id: str) -> list[Any]:
    """The audit trail of a customer's cap changes, newest first."""
    table = table_of(SpendCapChange)
    query = (
        select(table)
        .where(table.c.customer_id == customer_id)
        .order_by(table.c.changed_at.desc(), table.c.id.desc())
    )
    return list(connection.execute(query))


def cap_bound(
    connection: Connection, customer_id: str, product: str, start: dt.datetime, end: dt.datetime
) -> Decimal | None:
    """The highest cap a product had at any time in the period [start, end) (in the
    catalogue's currency); None when it was uncapped at some time in it (no bound).

    At close, a line is never billed above what this cap buys at the discount then in force
    (docs/spend-caps.md, "At close"): a cap lowered within the period still lets the usage
    accrued under the higher one be billed, a removed discount does not.
    """
    current = connection.execute(
        select(table_of(SpendCap).c.amount).where(
            table_of(SpendCap).c.customer_id == customer_id,
            table_of(SpendCap).c.product == product,
        )
    ).scalar()
    changes = table_of(SpendCapChange)
    moves = list(
        connection.execute(
            select(changes.c.old_amount, changes.c.new_amount, changes.c.changed_at)
            .where(changes.c.customer_id == customer_id, changes.c.product == product)
            .order_by(changes.c.changed_at, changes.c.id)
        )
    )
    before = [m for m in moves if m.changed_at <= start]
    if before:
        at_start = before[-1].new_amount
    elif moves:
        at_start = moves[0].old_amount
    else:
        at_start = current
    during = [m.new_amount for m in moves if start < m.changed_at < end]
    caps = [at_start, *during]
    if any(cap is None for cap in caps):
        return None
    highest: Decimal = max(cap for cap in caps if cap is not None)
    return highest
