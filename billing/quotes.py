"""The quote use case: choose the plans in force from the catalogue, call the pricing core,
and the answer's shape (`QuotePublic`).

Shared by `POST /v1/quote`, `billing quote` and the pricing page, so all three answer the
same question the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import Field

from billing.catalog import Catalog
from billing.catalog.public import BracketPublic, bracket_public
from billing.errors import InvalidAmount, UnknownProduct
from billing.money import ZERO, billing_digits, format_exact, format_quantity, fraction_digits
from billing.pricing import CommitmentOption, CommitmentQuote, PricePlan, Quote, build_quote
from billing.public import BoundText, Day, MoneyText, PercentText, PublicModel, QuantityText


def quote(
    *,
    catalog: Catalog,
    usage: Mapping[str, Decimal],
    at: dt.date,
    discount_percent: Decimal = ZERO,
    spend_caps: Mapping[str, Decimal] | None = None,
    commitment: tuple[Decimal, int] | None = None,
    include_options: bool = False,
    customer: str | None = None,
) -> Quote:
    """Price a month of usage with the versions in force on `at`; for `customer` (a
    customer id), with their overrides in force on `at` in place of the list prices
    (docs/pricing-changes.md, "Customer overrides")."""
    caps = spend_caps or {}
    currency = catalog.currency
    for key, amount in caps.items():
        _check_minor(amount, currency, f"spend_caps.{key}")
    if commitment is not None:
        _check_minor(commitment[0], currency, "commitment.credit")
    plans: dict[str, PricePlan] = {}
    for name, products in (("usage", usage), ("spend_caps", caps)):
        for key in products:
            plans[key] = _plan(catalog, key, at, field=f"{name}.{key}", customer=customer)
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


STARTING_QUANTITY_UNPRICED = Decimal(1000)


def starting_quantity(plan: PricePlan) -> Decimal:
    """The volume the pricing page opens a product on, in units (not packages): the top of
    its first paid tier, i.e. the free allowance plus one whole paid tier, so the breakdown
    shows what is free and what the next units cost.

    When that tier is the last, unbounded one, twice where it starts (1,000 units when every
    unit is paid for); when every unit is free, the top of the last bounded tier (1,000
    units when there is none). Always a whole number of units, never negative.
    """
    size = plan.package_size or 1
    for lower, tier in zip(plan.lowers, plan.tiers, strict=True):
        if tier.unit_price or tier.flat_fee:
            if tier.up_to is not None:
                return tier.up_to * size
            return (lower * 2 if lower else STARTING_QUANTITY_UNPRICED) * size
    return (plan.lowers[-1] or STARTING_QUANTITY_UNPRICED) * size


def starting_usage(catalog: Catalog, at: dt.date) -> dict[str, Decimal]:
    """Product key -> `starting_quantity` of the version in force on `at`, for every product
    with a price in force then (catalogue order); 0 for a product with a `where` filter (an
    add-on, or a variant priced on a subset of events, such as one model family): those
    are chosen, not assumed (docs/pricing-api.md, "Starting volumes")."""
    return {
        key: Decimal(0) if product.where else starting_quantity(version.plan)
        for key, (product, version) in catalog.in_force(at).items()
    }


def _check_minor(amount: Decimal, currency: str, field: str) -> None:
    if fraction_digits(amount) > billing_digits(currency):
        raise InvalidAmount(
            f"{field}: {currency} amounts have at most {billing_digits(currency)} decimal places, "
            f"got {amount}",
            field=field,
        )


def _plan(
    catalog: Catalog, key: str, at: dt.date, *, field: str, customer: str | None
) -> PricePlan:
    if key not in catalog.products:
        known = ", ".join(catalog.products)
        raise UnknownProduct(f"unknown product {key!r}; products: {known}", field=field)
    return catalog.plan_at(key, at, customer=customer)


class QuoteTierPublic(PublicModel):
    """The part of a line's quantity priced in one tier, with its exact amount."""

    from_: QuantityText = Field(alias="from", description="exclusive lower bound")
    up_to: BoundText
    quantity: QuantityText
    unit_price: MoneyText
    flat_fee: MoneyText
    amount: MoneyText


class QuoteLinePublic(PublicModel):
    product: str
    name: str
    unit: str
    model: str = Field(description="graduated | volume | package")
    quantity: QuantityText
    billable_quantity: QuantityText = Field(description="after the spend cap")
    capped: bool
    spend_cap: MoneyText | None
    max_quantity: QuantityText | None = Field(description="the largest quantity the cap buys")
    packages: QuantityText | None = Field(description="packages priced (package model only)")
    tiers: list[QuoteTierPublic]
    amount: MoneyText = Field(description="exact, unrounded charge")
    subtotal: MoneyText = Field(description="the charge rounded once to the billing unit")
    discount: MoneyText
    total: MoneyText


class CommitmentQuotePublic(PublicModel):
    """A commitment's price per year against paying as you go, at a steady usage."""

    credit: MoneyText = Field(description="annual credit")
    years: int
    discount_percent: PercentText
    bracket: BracketPublic
    price_per_year: MoneyText
    monthly_credit: MoneyText
    monthly_usage: MoneyText
    monthly_overage: MoneyText
    annual_usage: MoneyText
    annual_overage: MoneyText
    annual_cost_with_commitment: MoneyText
    annual_cost_without_commitment: MoneyText
    saving: MoneyText = Field(description="per year; negative when the commitment costs more")
    term_saving: MoneyText


class CommitmentOptionPublic(CommitmentQuotePublic):
    recommended: bool
    outgrown: bool = Field(
        description="the year's usage reaches the next bracket of this term, which saves more: "
        "this one is priced at its ceiling (just below that bracket) and is not worth choosing"
    )
    break_even_annual_usage: MoneyText | None = Field(
        description="exact: the yearly pay-as-you-go spend at which this bracket's smallest "
        "commitment costs the same as paying as you go (its price per year); above it the "
        "bracket saves. null when the bracket never saves"
    )
    break_even_monthly_usage: MoneyText | None = Field(
        description="break_even_annual_usage / 12, rounded half-up to the minor unit: every "
        "monthly spend above it saves"
    )


class QuotePublic(PublicModel):
    """A month of usage priced, line by line, with an optional commitment."""

    at: Day = Field(description="the date whose tier versions priced it")
    currency: str
    discount_percent: PercentText
    lines: list[QuoteLinePublic]
    subtotal: MoneyText
    discount: MoneyText
    total: MoneyText
    commitment: CommitmentQuotePublic | None
    commitment_options: list[CommitmentOptionPublic] | None


def quote_public(result: Quote, *, catalog: Catalog, at: dt.date) -> QuotePublic:
    """The quote as answers show it: `POST /v1/quote`, `billing quote --json`, the page."""
    currency = result.currency
    lines = []
    for line in result.lines:
        product = catalog.products[line.product]
        charge = line.charge
        lines.append(
            QuoteLinePublic(
                product=line.product,
                name=product.name,
                unit=product.unit,
                model=charge.model.value,
                quantity=format_quantity(line.quantity),
                billable_quantity=format_quantity(line.billable_quantity),
                capped=line.capped,
                spend_cap=_money(line.spend_cap, currency),
                max_quantity=_quantity(line.max_quantity),
                packages=(
                    format_quantity(charge.priced_quantity) if product.package_size else None
                ),
                tiers=[
                    QuoteTierPublic(
                        from_=format_quantity(t.lower),
                        up_to="inf" if t.up_to is None else format_quantity(t.up_to),
                        quantity=format_quantity(t.quantity),
                        unit_price=format_quantity(t.unit_price),
                        flat_fee=format_exact(t.flat_fee, currency),
                        amount=format_exact(t.amount, currency),
                    )
                    for t in charge.tiers
                ],
                amount=format_exact(charge.amount, currency),
                subtotal=format_exact(line.subtotal, currency),
                discount=format_exact(line.discount, currency),
                total=format_exact(line.total, currency),
            )
        )
    options = result.commitment_options
    return QuotePublic(
        at=at.isoformat(),
        currency=currency,
        discount_percent=format_quantity(result.discount_percent),
        lines=lines,
        subtotal=format_exact(result.subtotal, currency),
        discount=format_exact(result.discount, currency),
        total=format_exact(result.total, currency),
        commitment=commitment_public(result.commitment, currency) if result.commitment else None,
        commitment_options=None
        if options is None
        else [commitment_option_public(option, currency) for option in options],
    )


def _commitment_fields(c: CommitmentQuote, currency: str) -> dict[str, Any]:
    return {
        "credit": format_exact(c.credit, currency),
        "years": c.years,
        "discount_percent": format_quantity(c.discount_percent),
        "bracket": bracket_public(c.bracket, currency),
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


def commitment_public(c: CommitmentQuote, currency: str) -> CommitmentQuotePublic:
    """A commitment quote: its bracket, price per year, and saving against paying as you go."""
    return CommitmentQuotePublic.model_validate(_commitment_fields(c, currency))


def commitment_option_public(option: CommitmentOption, currency: str) -> CommitmentOptionPublic:
    """One bracket offered, priced: whether it is the recommended one, whether the usage has
    outgrown it, and its break-even spend (money as strings in `currency`)."""
    fields = _commitment_fields(option.quote, currency)
    even = option.break_even
    return CommitmentOptionPublic.model_validate(
        {
            **fields,
            "recommended": option.recommended,
            "outgrown": option.outgrown,
            "break_even_annual_usage": None
            if even is None
            else format_exact(even.annual, currency),
            "break_even_monthly_usage": None
            if even is None
            else format_exact(even.monthly, currency),
        }
    )


def _money(value: Decimal | None, currency: str) -> str | None:
    return None if value is None else format_exact(value, currency)


def _quantity(value: Decimal | None) -> str | None:
    return None if value is None else format_quantity(value)
