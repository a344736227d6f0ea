"""The catalogue as the public sees it (`GET /v1/products`): plain JSON, money as strings."""

from __future__ import annotations

import datetime as dt
from typing import Any

from billing.catalog.models import Catalog
from billing.money import format_exact, format_quantity
from billing.pricing import CommitmentSchedule, PricePlan


def catalog_json(catalog: Catalog, day: dt.date) -> dict[str, Any]:
    """Products in force on `day` with their tier tables, and the commitment brackets."""
    products = []
    for product, version in catalog.in_force(day).values():
        later = [v.effective_from for v in product.versions if v.effective_from > day]
        products.append(
            {
                "key": product.key,
                "name": product.name,
                "unit": product.unit,
                "currency": product.currency,
                "model": product.model.value,
                "package_size": product.package_size,
                "effective_from": version.effective_from.isoformat(),
                "next_version_from": later[0].isoformat() if later else None,
                "free_allowance": _allowance(version.plan),
                "tiers": tiers_json(version.plan),
            }
        )
    return {
        "at": day.isoformat(),
        "currency": catalog.currency,
        "products": products,
        "commitments": schedule_json(catalog.schedule) if catalog.schedule else None,
    }


def tiers_json(plan: PricePlan) -> list[dict[str, Any]]:
    """A tier table: `from` exclusive, `up_to` inclusive ("inf" for the last)."""
    return [
        {
            "from": format_quantity(lower),
            "up_to": "inf" if tier.up_to is None else format_quantity(tier.up_to),
            "unit_price": format_quantity(tier.unit_price),
            "flat_fee": format_exact(tier.flat_fee, plan.currency),
        }
        for lower, tier in zip(plan.lowers, plan.tiers, strict=True)
    ]


def schedule_json(schedule: CommitmentSchedule) -> dict[str, Any]:
    """The commitment schedule of discounts.toml."""
    currency = schedule.currency
    return {
        "currency": currency,
        "min_purchase": format_exact(schedule.min_purchase, currency),
        "release": schedule.release.value,
        "rollover_percent": format_quantity(schedule.rollover_percent),
        "topup_months": schedule.topup_months,
        "brackets": [
            {
                "years": b.years,
                "min_credit": format_exact(b.min_credit, currency),
                "discount_percent": format_quantity(b.discount_percent),
            }
            for years in schedule.terms
            for b in schedule.brackets_for(years)
        ],
    }


def _allowance(plan: PricePlan) -> str:
    free = plan.free_allowance
    return "inf" if free is None else format_quantity(free)
