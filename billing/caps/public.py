"""Spend caps and quota state as the API and the portal show them."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from pydantic import Field

from billing.caps.quota import CAP_REACHED, ProductQuota
from billing.catalog import Catalog
from billing.customers.periods import Period
from billing.money import format_amount, format_quantity
from billing.public import (
    MoneyText,
    MonthLabel,
    PercentText,
    PublicModel,
    QuantityText,
    Timestamp,
)


class SpendCapPublic(PublicModel):
    """One product's cap and quota state in the current period."""

    product: str
    unit: str
    cap: MoneyText | None = Field(description="the cap on the line total; null: no cap")
    discount_percent: PercentText = Field(description="the customer's discount the cap is after")
    q_max: QuantityText | None = Field(description="the largest quantity the cap buys")
    limit_quantity: QuantityText | None = Field(
        description="events are accepted while accepted usage is below this"
    )
    accepted_quantity: QuantityText
    billed_quantity: QuantityText = Field(description="min(accepted, limit)")
    accrued: MoneyText = Field(description="the line total of the billed quantity")
    over_limit_events: int
    over_limit_quantity: QuantityText
    status: str = Field(description="ok | alerted | limited")
    thresholds_fired: list[PercentText] = Field(description="cap percentages alerted so far")
    alerts_fired: list[str]


class CapPeriodHead(PublicModel):
    """The customer and current period every caps answer starts with."""

    customer: str
    currency: str
    period: MonthLabel
    start: Timestamp
    end: Timestamp


class SpendCapsPublic(CapPeriodHead):
    spend_caps: list[SpendCapPublic]


class QuotaPublic(CapPeriodHead):
    limited: list[str] = Field(description="products whose limit is reached")
    products: list[SpendCapPublic]


# NOTE: pydantic lays out inherited fields from the last base to the first, so this
# answer reads head, then the cap's fields, then its own.
class SpendCapChangePublic(SpendCapPublic, CapPeriodHead):
    """A cap set or removed, and what it did this period, in words."""

    previous_cap: MoneyText | None
    effect: str


class CapChangePublic(PublicModel):
    product: str
    old_amount: MoneyText | None
    new_amount: MoneyText | None
    changed_by: str = Field(examples=["customer key 7"])
    changed_at: Timestamp
    effect: str


class CapChangesPublic(PublicModel):
    customer: str
    changes: list[CapChangePublic] = Field(description="newest first")


class LimitedPairPublic(PublicModel):
    """A customer x product whose limit is reached in its current period."""

    customer: str
    product: str
    period_start: Timestamp
    period_end: Timestamp
    limit_quantity: QuantityText
    accepted_quantity: QuantityText


class LimitedListPublic(PublicModel):
    """What `GET /v1/quota/limited` answers (rendered once per change by metering.limited)."""

    count: int
    limited: list[LimitedPairPublic]


def _money(value: Decimal | None, currency: str) -> str | None:
    return None if value is None else format_amount(value, currency)


def _quantity(value: Decimal | None) -> str | None:
    return None if value is None else format_quantity(value)


def _cap_fields(view: ProductQuota, catalog: Catalog) -> dict[str, Any]:
    return {
        "product": view.product,
        "unit": catalog.products[view.product].unit,
        "cap": _money(view.cap, catalog.currency),
        "discount_percent": format_quantity(view.discount_percent),
        "q_max": _quantity(view.q_max),
        "limit_quantity": _quantity(view.limit_quantity),
        "accepted_quantity": format_quantity(view.accepted),
        "billed_quantity": format_quantity(view.billed),
        "accrued": format_amount(view.accrued, catalog.currency),
        "over_limit_events": view.over_limit_events,
        "over_limit_quantity": format_quantity(view.over_limit_quantity),
        "status": view.status,
        "thresholds_fired": [k.removeprefix("cap_") for k in view.alerts_fired if k[:4] == "cap_"],
        "alerts_fired": [k for k in view.alerts_fired if k != CAP_REACHED],
    }


def spend_cap_public(view: ProductQuota, catalog: Catalog) -> SpendCapPublic:
    """One product's cap and quota state, as every caps and quota answer shows it."""
    return SpendCapPublic.model_validate(_cap_fields(view, catalog))


def _head(customer_id: str, period: Period, catalog: Catalog) -> dict[str, Any]:
    return {
        "customer": customer_id,
        "currency": catalog.currency,
        "period": period.label,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
    }


def spend_caps_public(
    customer_id: str, views: list[ProductQuota], catalog: Catalog
) -> SpendCapsPublic:
    """Every product's cap this period (`views` from caps.service.quotas)."""
    caps = [spend_cap_public(v, catalog) for v in views]
    return SpendCapsPublic.model_validate(
        {**_head(customer_id, views[0].period, catalog), "spend_caps": caps}
    )


def quota_public(customer_id: str, views: list[ProductQuota], catalog: Catalog) -> QuotaPublic:
    """Quota state this period: the limited products, then every product's state."""
    return QuotaPublic.model_validate(
        {
            **_head(customer_id, views[0].period, catalog),
            "limited": [v.product for v in views if v.limited],
            "products": [spend_cap_public(v, catalog) for v in views],
        }
    )


def cap_change_public(
    customer_id: str,
    quota: ProductQuota,
    catalog: Catalog,
    *,
    previous: Decimal | None,
    effect: str,
) -> SpendCapChangePublic:
    """The answer to setting a cap: the product's quota after it, the cap before, the effect."""
    return SpendCapChangePublic.model_validate(
        {
            **_head(customer_id, quota.period, catalog),
            **_cap_fields(quota, catalog),
            "previous_cap": _money(previous, catalog.currency),
            "effect": effect,
        }
    )


def cap_changes_public(customer_id: str, rows: Iterable[Any], currency: str) -> CapChangesPublic:
    """The audit trail of cap changes (rows of caps.service.cap_changes)."""
    return CapChangesPublic(
        customer=customer_id,
        changes=[
            CapChangePublic(
                product=r.product,
                old_amount=_money(r.old_amount, currency),
                new_amount=_money(r.new_amount, currency),
                changed_by=r.changed_by,
                changed_at=r.changed_at.isoformat(),
                effect=r.effect,
            )
            for r in rows
        ],
    )
