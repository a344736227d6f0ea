"""The live quota of a customer's running period: reading it, and moving it when its terms
change (a cap set or removed, a discount changed) — docs/spend-caps.md.

The quota state lives on the running-totals rows that ingestion locks, so a change of terms
locks the same rows, exactly as a batch does: no batch can be admitted under a limit that a
committed change already moved. The rules are pure (caps/quota.py); the cap itself is
stored and audited by caps/service.py, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal

from sqlalchemy import Connection, select

from billing.alerts.service import fire_due_alerts
from billing.caps import service as caps_service
from billing.caps.accounts import Account, read_accounts, terms_for
from billing.caps.public import cap_change_public
from billing.caps.quota import ProductQuota, QuotaState, reprice, view
from billing.catalog import Catalog
from billing.customers.periods import Period, period_for
from billing.errors import NotFound
from billing.metering import store
from billing.notifications.events import emit


def account_of(connection: Connection, customer_id: str) -> Account:
    """The customer as quotas see it (caps, discount, alert settings); NotFound if missing."""
    found = read_accounts(connection, {customer_id}).get(customer_id)
    if found is None:
        raise NotFound(f"no customer {customer_id!r}", field="customer")
    return found


def read_states(connection: Connection, customer_id: str, period: Period) -> dict[str, QuotaState]:
    """The quota states of one customer's period, by product (not locked)."""
    table = store.usage_table()
    query = select(table).where(
        table.c.customer_id == customer_id, table.c.period_start == period.start
    )
    return {row.product: store.row_of(row).quota for row in connection.execute(query)}


def quotas(
    connection: Connection,
    catalog: Catalog,
    customer_id: str,
    now: dt.datetime,
    products: list[str] | None = None,
) -> list[ProductQuota]:
    """Quota views of a customer's current period for `products` (default: all priced)."""
    account = account_of(connection, customer_id)
    period = period_for(account.anchor_day, now)
    states = read_states(connection, customer_id, period)
    chosen = products if products is not None else sorted(catalog.products)
    return [
        view(
            states.get(product, QuotaState()),
            terms_for(catalog, account, product, period.start),
            product,
            period,
        )
        for product in chosen
    ]


@dataclass(frozen=True, slots=True)
class Moved:
    """A product's quota before and after its terms changed."""

    before: QuotaState
    after: QuotaState


def apply_terms(
    connection: Connection,
    catalog: Catalog,
    account: Account,
    products: Iterable[str],
    now: dt.datetime,
) -> dict[str, Moved]:
    """Lock the current period's rows of `products`, reprice them under `account`'s terms,
    fire the alerts they now reach, and write them; what moved, by product."""
    period = period_for(account.anchor_day, now)
    keys = sorted((account.id, product, period.start) for product in products)
    rows = store.lock_usage(connection, keys, now)
    written: dict[store.UsageKey, store.UsageRow] = {}
    moved: dict[str, Moved] = {}
    for key, row in rows.items():
        _, product, start = key
        terms = terms_for(catalog, account, product, start)
        after = fire_due_alerts(
            connection,
            account=account,
            product=product,
            period_start=start,
            state=reprice(row.quota, terms),
            terms=terms,
            now=now,
        )
        written[key] = replace(row, quota=after, period_end=period.end)
        moved[product] = Moved(row.quota, after)
    store.write_usage(connection, written, now)
    return moved


@dataclass(frozen=True, slots=True)
class CapChange:
    """What a cap change did: the product's quota after it, the cap before, and the effect
    in words."""

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
    """Set (or with None remove) a product's cap; apply it to the current period at once.

    Raises NotFound (customer, product) and InputError (a negative cap, too many decimals).
    """
    caps_service.check_cap(catalog, product, amount)
    account = account_of(connection, customer_id)
    old = account.caps.get(product)
    caps_service.store_cap(
        connection, customer_id=customer_id, product=product, amount=amount, now=now
    )
    account = _with_cap(account, product, amount)
    moved = apply_terms(connection, catalog, account, [product], now)[product]
    period = period_for(account.anchor_day, now)
    shown = view(moved.after, terms_for(catalog, account, product, period.start), product, period)
    effect = caps_service.effect(catalog, shown, moved.before.billed)
    caps_service.record_change(
        connection,
        customer_id=customer_id,
        product=product,
        old_amount=old,
        new_amount=amount,
        actor=actor,
        effect=effect,
        now=now,
    )
    emit(
        connection,
        "spend_cap.changed",
        customer=customer_id,
        data=lambda: cap_change_public(
            customer_id, shown, catalog, previous=old, effect=effect
        ).model_dump(mode="json", by_alias=True),
        now=now,
    )
    return CapChange(shown, old, effect)


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
    caps_service.check_cap(catalog, product, amount)
    account = account_of(connection, customer_id)
    period = period_for(account.anchor_day, now)
    state = read_states(connection, customer_id, period).get(product, QuotaState())
    old = account.caps.get(product)
    account = _with_cap(account, product, amount)
    shown = view(state, terms_for(catalog, account, product, period.start), product, period)
    return CapChange(shown, old, caps_service.effect(catalog, shown, state.billed))


def _with_cap(account: Account, product: str, amount: Decimal | None) -> Account:
    caps = {name: cap for name, cap in account.caps.items() if name != product}
    if amount is not None:
        caps[product] = amount
    return replace(account, caps=caps)
