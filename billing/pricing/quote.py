"""A month's quote: each product charged, capped and discounted, then summed.

Totals are sums of rounded line figures, so every total equals the sum of its lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext

from billing.errors import InvalidPercent, NoCommitmentSchedule, UnknownProduct
from billing.money import EXACT, HUNDRED, ZERO
from billing.pricing.caps import max_quantity_within_cap
from billing.pricing.charge import ChargeResult, charge
from billing.pricing.commitments import (
    CommitmentOption,
    CommitmentQuote,
    CommitmentSchedule,
    commitment_options,
    quote_commitment,
)
from billing.pricing.discounts import line_figures
from billing.pricing.plan import PricePlan


@dataclass(frozen=True, slots=True)
class QuoteLine:
    product: str
    quantity: Decimal
    billable_quantity: Decimal
    capped: bool
    spend_cap: Decimal | None
    max_quantity: Decimal | None  # what the cap buys; None without a cap or when unlimited
    charge: ChargeResult
    subtotal: Decimal
    discount: Decimal
    total: Decimal


@dataclass(frozen=True, slots=True)
class Quote:
    currency: str
    discount_percent: Decimal
    lines: tuple[QuoteLine, ...]
    subtotal: Decimal
    discount: Decimal
    total: Decimal
    commitment: CommitmentQuote | None
    commitment_options: tuple[CommitmentOption, ...] | None


def quote_line(
    product: str,
    plan: PricePlan,
    quantity: Decimal,
    discount_percent: Decimal = ZERO,
    spend_cap: Decimal | None = None,
) -> QuoteLine:
    """One product's line: cap applied to the quantity, then charged and discounted."""
    max_quantity = None
    billable = quantity
    if spend_cap is not None:
        max_quantity = max_quantity_within_cap(plan, spend_cap, discount_percent)
        if max_quantity is not None and quantity > max_quantity:
            billable = max_quantity
    result = charge(plan, billable)
    figures = line_figures(result.amount, discount_percent, plan.currency)
    return QuoteLine(
        product=product,
        quantity=quantity,
        billable_quantity=billable,
        capped=billable < quantity,
        spend_cap=spend_cap,
        max_quantity=max_quantity,
        charge=result,
        subtotal=figures.subtotal,
        discount=figures.discount,
        total=figures.total,
    )


def build_quote(
    *,
    plans: Mapping[str, PricePlan],
    currency: str,
    usage: Mapping[str, Decimal],
    discount_percent: Decimal = ZERO,
    spend_caps: Mapping[str, Decimal] | None = None,
    commitment: tuple[Decimal, int] | None = None,
    schedule: CommitmentSchedule | None = None,
    include_options: bool = False,
) -> Quote:
    """Price a month of usage; optionally a commitment and every commitment option."""
    # NOTE: every sum below runs in the EXACT context: a total is never rounded silently.
    with localcontext(EXACT):
        return _build_quote(
            plans=plans,
            currency=currency,
            usage=usage,
            discount_percent=discount_percent,
            spend_caps=spend_caps,
            commitment=commitment,
            schedule=schedule,
            include_options=include_options,
        )


def _build_quote(
    *,
    plans: Mapping[str, PricePlan],
    currency: str,
    usage: Mapping[str, Decimal],
    discount_percent: Decimal,
    spend_caps: Mapping[str, Decimal] | None,
    commitment: tuple[Decimal, int] | None,
    schedule: CommitmentSchedule | None,
    include_options: bool,
) -> Quote:
    caps = spend_caps or {}
    if not ZERO <= discount_percent <= HUNDRED:
        raise InvalidPercent(
            f"discount_percent must be between 0 and 100, got {discount_percent}",
            field="discount_percent",
        )
    for name, mapping in (("usage", usage), ("spend_caps", caps)):
        for product in mapping:
            if product not in plans:
                known = ", ".join(sorted(plans))
                raise UnknownProduct(
                    f"unknown product {product!r}; products in force: {known}",
                    field=f"{name}.{product}",
                )
    lines = tuple(
        quote_line(product, plans[product], quantity, discount_percent, caps.get(product))
        for product, quantity in usage.items()
    )
    subtotal = sum((line.subtotal for line in lines), ZERO)
    discount = sum((line.discount for line in lines), ZERO)
    total = subtotal - discount
    if (commitment is not None or include_options) and schedule is None:
        raise NoCommitmentSchedule(
            "this catalogue has no commitment schedule (discounts.toml)", field="commitment"
        )
    committed = None
    if commitment is not None:
        assert schedule is not None
        credit, years = commitment
        committed = quote_commitment(schedule, credit, years, total)
    options = None
    if include_options:
        assert schedule is not None
        options = commitment_options(schedule, total)
    return Quote(
        currency=currency,
        discount_percent=discount_percent,
        lines=lines,
        subtotal=subtotal,
        discount=discount,
        total=total,
        commitment=committed,
        commitment_options=options,
    )
