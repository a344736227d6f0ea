"""Spend caps as terms: validating a cap, storing it, and the audit trail of changes.

A cap is stored here; what it does to the running period (its limit, alerts, the words
that say so) is applied to the period's quota by metering/quota.py, which calls these in
the same transaction. Every change is audited: who, when, old -> new, effect.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from billing.caps.models import SpendCap, SpendCapChange
from billing.caps.quota import ProductQuota
from billing.catalog import Catalog
from billing.db import one_of, recalled, remember, table_of
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
    _forget_history(connection, customer_id)
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
    _forget_history(connection, customer_id)
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


_HISTORY_AHEAD = "caps.history_ahead"
_CAPS = table_of(SpendCap)
_CHANGES = table_of(SpendCapChange)
_MOVES = (_CHANGES.c.old_amount, _CHANGES.c.new_amount, _CHANGES.c.changed_at)


@dataclass(slots=True)
class _HistoryAhead:
    """The caps and cap changes of some customers, read ahead for one transaction: current
    amount and changes (oldest first) by (customer, product)."""

    customers: set[str]
    current: dict[tuple[str, str], Decimal]
    moves: dict[tuple[str, str], list[Any]]


def read_cap_history_ahead(connection: Connection, customer_ids: Sequence[str]) -> None:
    """Read, in two statements, the caps and cap changes of `customer_ids`, for the rest of
    the transaction: `cap_bound` then answers for them without statements of its own (the
    close asks it for every capped product of every customer of a chunk). Writing a cap or
    a change (`store_cap`, `record_change`) drops its customer from what is kept."""
    if not customer_ids:
        return
    current = {
        (row.customer_id, row.product): row.amount
        for row in connection.execute(
            select(_CAPS.c.customer_id, _CAPS.c.product, _CAPS.c.amount).where(
                one_of(connection, _CAPS.c.customer_id, list(customer_ids))
            )
        )
    }
    moves: dict[tuple[str, str], list[Any]] = {}
    query = (
        select(_CHANGES.c.customer_id, _CHANGES.c.product, *_MOVES)
        .where(one_of(connection, _CHANGES.c.customer_id, list(customer_ids)))
        .order_by(_CHANGES.c.changed_at, _CHANGES.c.id)
    )
    for row in connection.execute(query):
        moves.setdefault((row.customer_id, row.product), []).append(row)
    remember(connection, _HISTORY_AHEAD, _HistoryAhead(set(customer_ids), current, moves))


def _forget_history(connection: Connection, customer_id: str) -> None:
    kept: _HistoryAhead | None = recalled(connection, _HISTORY_AHEAD)
    if kept is not None:
        kept.customers.discard(customer_id)


def cap_bound(
    connection: Connection, customer_id: str, product: str, start: dt.datetime, end: dt.datetime
) -> Decimal | None:
    """The highest cap a product had at any time in the period [start, end) (in the
    catalogue's currency); None when it was uncapped at some time in it (no bound).

    At close, a line is never billed above what this cap buys at the discount then in force
    (docs/spend-caps.md, "At close"): a cap lowered within the period still lets the usage
    accrued under the higher one be billed, a removed discount does not.
    """
    kept: _HistoryAhead | None = recalled(connection, _HISTORY_AHEAD)
    if kept is not None and customer_id in kept.customers:
        current = kept.current.get((customer_id, product))
        moves = kept.moves.get((customer_id, product), [])
    else:
        current = connection.execute(
            select(_CAPS.c.amount).where(
                _CAPS.c.customer_id == customer_id, _CAPS.c.product == product
            )
        ).scalar()
        moves = list(
            connection.execute(
                select(*_MOVES)
                .where(_CHANGES.c.customer_id == customer_id, _CHANGES.c.product == product)
                .order_by(_CHANGES.c.changed_at, _CHANGES.c.id)
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
