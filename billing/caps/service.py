"""Setting spend caps and reading quota state (docs/spend-caps.md).

A cap change locks the current period's running-totals row, exactly as ingestion does, so
it is ordered with concurrent batches: no batch can be admitted under a limit that a
committed change already moved. Every change is audited (who, when, old -> new, effect).
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from billing.alerts.service import fire_due_alerts
from billing.caps.accounts import Account, Quota, quota_of, read_accounts, sync_limit
from billing.caps.limits import billed_quantity, is_limited, line_total
from billing.caps.models import SpendCap, SpendCapChange
from billing.catalog import Catalog
from billing.customers.periods import Period, period_for
from billing.db import table_of
from billing.errors import InvalidAmount, NotFound
from billing.metering import store
from billing.metering.store import UsageKey, UsageState
from billing.money import format_amount, fraction_digits, group_quantity, minor_digits
from billing.pricing.caps import max_quantity_within_cap


@dataclass(frozen=True, slots=True)
class ProductQuota:
    """One product's quota state in one period, as the caps and quota views show it."""

    product: str
    period: Period
    cap: Decimal | None
    discount_percent: Decimal
    q_max: Decimal | None
    limit_quantity: Decimal | None
    accepted: Decimal
    billed: Decimal
    accrued: Decimal  # the line total of the billed quantity, after the discount
    over_limit_events: int
    over_limit_quantity: Decimal
    alerts_fired: tuple[str, ...]

    @property
    def limited(self) -> bool:
        return is_limited(self.accepted, self.limit_quantity)

    @property
    def status(self) -> str:
        if self.limited:
            return "limited"
        if self.cap is not None and any(k.startswith("cap_") for k in self.alerts_fired):
            return "alerted"
        return "ok"


def _account(connection: Connection, customer_id: str) -> Account:
    found = read_accounts(connection, {customer_id}).get(customer_id)
    if found is None:
        raise NotFound(f"no customer {customer_id!r}", field="customer")
    return found


def _check_product(catalog: Catalog, product: str) -> None:
    if product not in catalog.products:
        known = ", ".join(sorted(catalog.products))
        raise NotFound(f"no product {product!r} (products: {known})", field="product")


def _empty_state() -> UsageState:
    return UsageState(Decimal(0), 0, 0, 0, None, None, None, 0, Decimal(0), "")


def _view(quota: Quota, period: Period, product: str, state: UsageState) -> ProductQuota:
    shown = copy.copy(state)
    sync_limit(quota, shown)  # what the next event will be held to
    billed = billed_quantity(shown.quantity, shown.limit_quantity)
    q_max = None
    if quota.cap is not None:
        q_max = max_quantity_within_cap(quota.plan, quota.cap, quota.discount_percent)
    return ProductQuota(
        product=product,
        period=period,
        cap=quota.cap,
        discount_percent=quota.discount_percent,
        q_max=q_max,
        limit_quantity=shown.limit_quantity,
        accepted=shown.quantity,
        billed=billed,
        accrued=line_total(quota.plan, billed, quota.discount_percent),
        over_limit_events=shown.over_limit_events,
        over_limit_quantity=shown.over_limit_quantity,
        alerts_fired=tuple(k for k in shown.alerts_fired.split(",") if k),
    )


def read_states(connection: Connection, customer_id: str, period: Period) -> dict[str, UsageState]:
    """The running-totals rows of one customer's period, by product (not locked)."""
    table = store.usage_table()
    query = select(table).where(
        table.c.customer_id == customer_id, table.c.period_start == period.start
    )
    return {row.product: store.state_of(row) for row in connection.execute(query)}


def quotas(
    connection: Connection,
    catalog: Catalog,
    customer_id: str,
    now: dt.datetime,
    products: list[str] | None = None,
) -> list[ProductQuota]:
    """Quota state of a customer's current period for `products` (default: all priced)."""
    account = _account(connection, customer_id)
    period = period_for(account.anchor_day, now)
    states = read_states(connection, customer_id, period)
    chosen = products if products is not None else sorted(catalog.products)
    found = []
    for product in chosen:
        key = (customer_id, product, period.start)
        state = states.get(product, _empty_state())
        found.append(_view(quota_of(catalog, account, key), period, product, state))
    return found


@dataclass(frozen=True, slots=True)
class CapChange:
    quota: ProductQuota
    old_amount: Decimal | None
    effect: str


def set_cap(
    *,
    connection: Connection,
    catalog: Catalog,
    customer_id: str,
    product: str,
    amount: Decimal | None,
    actor: str,
    now: dt.datetime,
) -> CapChange:
    """Set (or with None remove) a product's cap; apply it to the current period at once."""
    _check_cap(catalog, product, amount)
    account = _account(connection, customer_id)
    period = period_for(account.anchor_day, now)
    key: UsageKey = (customer_id, product, period.start)
    state = store.lock_usage(connection, [key], now)[key]
    old = account.caps.get(product)
    table = table_of(SpendCap)
    if amount is None:
        connection.execute(
            delete(table).where(table.c.customer_id == customer_id, table.c.product == product)
        )
        account.caps.pop(product, None)
    else:
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
        account.caps[product] = amount
    quota = quota_of(catalog, account, key)
    billed_before = billed_quantity(state.quantity, state.limit_quantity)
    sync_limit(quota, state)
    state.period_end = period.end
    fire_due_alerts(connection, account, key, state, quota, now)
    store.write_usage(connection, {key: state}, now)
    view = _view(quota, period, product, state)
    effect = _effect(catalog, view, billed_before)
    connection.execute(
        insert(table_of(SpendCapChange)).values(
            customer_id=customer_id,
            product=product,
            old_amount=old,
            new_amount=amount,
            changed_by=actor,
            changed_at=now,
            effect=effect,
        )
    )
    return CapChange(view, old, effect)


def _check_cap(catalog: Catalog, product: str, amount: Decimal | None) -> None:
    _check_product(catalog, product)
    if amount is None:
        return
    if amount < 0:
        raise InvalidAmount(f"a cap is 0 or more, got {amount:f}", field="amount")
    digits = minor_digits(catalog.currency)
    if fraction_digits(amount) > digits:
        raise InvalidAmount(
            f"a cap in {catalog.currency} has at most {digits} decimal places, got {amount:f}",
            field="amount",
        )


def preview_cap(
    *,
    connection: Connection,
    catalog: Catalog,
    customer_id: str,
    product: str,
    amount: Decimal | None,
    now: dt.datetime,
) -> CapChange:
    """What `set_cap` would do now, in the same words, without changing anything."""
    _check_cap(catalog, product, amount)
    account = _account(connection, customer_id)
    period = period_for(account.anchor_day, now)
    state = read_states(connection, customer_id, period).get(product, _empty_state())
    billed_before = billed_quantity(state.quantity, state.limit_quantity)
    old = account.caps.get(product)
    caps = {**account.caps}
    if amount is None:
        caps.pop(product, None)
    else:
        caps[product] = amount
    account = copy.copy(account)
    account.caps = caps
    view = _view(
        quota_of(catalog, account, (customer_id, product, period.start)), period, product, state
    )
    return CapChange(view, old, _effect(catalog, view, billed_before))


def _effect(catalog: Catalog, view: ProductQuota, billed_before: Decimal) -> str:
    """What the change did to the current period, in words (docs/spend-caps.md)."""
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
