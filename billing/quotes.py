"""The quote use case: choose the plans in force from the catalogue, call the pricing core.

Shared by `POST /v1/quote`, `billing quote` and the pricing page, so all three answer the
same question the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from billing.catalog import Catalog
from billing.errors import InvalidAmount, UnknownProduct
from billing.money import ZERO, format_exact, format_quantity, fraction_digits, minor_digits
from billing.pricing import CommitmentQuote, PricePlan, Quote, build_quote


def quote(
    *,
    catalog: Catalog,
    usage: Mapping[str, Decimal],
    at: dt.date,
    discount_percent: Decimal = ZERO,
    spend_caps: Mapping[str, Decimal] | None = None,
    commitment: tuple[Decimal, int] | None = None,
    include_options: bool = False,
) -> Quote:
    """Price a month of usage with the versions in force on `at`."""
    caps = spend_caps or {}
    currency = catalog.currency
    for key, amount in caps.items():
        _check_minor(amount, currency, f"spend_caps.{key}")
    if commitment is not None:
        _check_minor(commitment[0], currency, "commitment.credit")
    plans: dict[str, PricePlan] = {}
    for name, products in (("usage", usage), ("spend_caps", caps)):
        for key in products:
            plans[key] = _plan(catalog, key, at, field=f"{name}.{key}")
    return build_quote(
        plans=plans,
        currency=catalog.currency,
        usage=usage,
        discount_percent=discount_percent,
        spend_caps=caps,
        commitment=commitment,
        schedule=catalog.schedule,
        include_options=include_options,
    )


def _check_minor(amount: Decimal, currency: str, field: str) -> None:
    if fraction_digits(amount) > minor_digits(currency):
        raise InvalidAmount(
            f"{field}: {currency} amounts have at most {minor_digits(currency)} decimal places, "
            f"got {amount}",
            field=field,
        )


def _plan(catalog: Catalog, key: str, at: dt.date, *, field: str) -> PricePlan:
    if key not in catalog.products:
        known = ", ".join(catalog.products)
        raise UnknownProduct(f"unknown product {key!r}; products: {known}", field=field)
    return catalog.plan_at(key, at)


def quote_json(result: Quote, *, catalog: Catalog, at: dt.date) -> dict[str, Any]:
    """The quote as JSON (money and quantities as strings): the API and `billing quote --json`."""
    currency = result.currency
    lines = []
    for line in result.lines:
        product = catalog.products[line.product]
        charge = line.charge
        lines.append(
            {
                "product": line.product,
                "name": product.name,
                "unit": product.unit,
                "model": charge.model.value,
                "quantity": format_quantity(line.quantity),
                "billable_quantity": format_quantity(line.billable_quantity),
                "capped": line.capped,
                "spend_cap": _money(line.spend_cap, currency),
                "max_quantity": _quantity(line.max_quantity),
                "packages": (
                    format_quantity(charge.priced_quantity) if product.package_size else None
                ),
                "tiers": [
                    {
                        "from": format_quantity(t.lower),
                        "up_to": "inf" if t.up_to is None else format_quantity(t.up_to),
                        "quantity": format_quantity(t.quantity),
                        "unit_price": format_quantity(t.unit_price),
                        "flat_fee": format_exact(t.flat_fee, currency),
                        "amount": format_exact(t.amount, currency),
                    }
                    for t in charge.tiers
                ],
                "amount": format_exact(charge.amount, currency),
                "subtotal": format_exact(line.subtotal, currency),
                "discount": format_exact(line.discount, currency),
                "total": format_exact(line.total, currency),
            }
        )
    return {
        "at": at.isoformat(),
        "currency": currency,
        "discount_percent": format_quantity(result.discount_percent),
        "lines": lines,
        "subtotal": format_exact(result.subtotal, currency),
        "discount": format_exact(result.discount, currency),
        "total": format_exact(result.total, currency),
        "commitment": commitment_json(result.commitment, currency) if result.commitment else None,
        "commitment_options": (
            [
                {**commitment_json(option.quote, currency), "recommended": option.recommended}
                for option in result.commitment_options
            ]
            if result.commitment_options is not None
            else None
        ),
    }


def commitment_json(c: CommitmentQuote, currency: str) -> dict[str, Any]:
    return {
        "credit": format_exact(c.credit, currency),
        "years": c.years,
        "discount_percent": format_quantity(c.discount_percent),
        "bracket": {
            "years": c.bracket.years,
            "min_credit": format_exact(c.bracket.min_credit, currency),
            "discount_percent": format_quantity(c.bracket.discount_percent),
        },
        "price_per_year": format_exact(c.price_per_year, currency),
        "monthly_credit": format_exact(c.monthly_credit, currency),
        "monthly_usage": format_exact(c.monthly_usage, currency),
        "monthly_overage": format_exact(c.monthly_overage, currency),
        "annual_usage": format_exact(c.annual_usage, currency),
        "annual_overage": format_exact(c.annual_overage, currency),
        "annual_cost_with_commitment": format_exact(c.annual_cost_with_commitment, currency),
        "annual_cost_without_commitment": format_exact(c.annual_cost_without_commitment, currency),
        "saving": format_exact(c.saving, currency),
        "term_saving": format_exact(c.term_saving, currency),
    }


def _money(value: Decimal | None, currency: str) -> str | None:
    return None if value is None else format_exact(value, currency)


def _quantity(value: Decimal | None) -> str | None:
    return None if value is None else format_quantity(value)
