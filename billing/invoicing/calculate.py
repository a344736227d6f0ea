"""An invoice's lines and figures from what it bills. Pure: no I/O (docs/invoicing.md).

Each line is rounded once, half-up, to the currency's billing unit (billing/money.py:
the minor unit, or 0.01 for the three-decimal currencies Stripe carries in hundredths;
docs/money.md): a usage line is its
product's exact charge rounded (the tier breakdown keeps the exact amounts), and its
percentage discount is rounded from that rounded subtotal. Every figure of an invoice is a
sum of rounded lines:

    subtotal        = usage, adjustment and commitment lines (capped lines are 0.00)
    discount_total  = -(discount lines)
    total           = subtotal - discount_total
    credits_applied = -(credits lines)
    amount_due      = total - credits_applied = the sum of every line

Prepaid credit is applied to the finished total (billing/credits/draw.py decides how much),
after every line is priced and discounted; `with_credits` adds its line.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache
from typing import Any

from billing.catalog.models import NONE
from billing.invoicing.models import LineKind
from billing.money import (
    EXACT,
    ZERO,
    billing_unit,
    format_quantity,
    group_quantity,
    round_to_billing_unit,
)
from billing.pricing.allocate import largest_remainder
from billing.pricing.charge import ChargeResult
from billing.pricing.discounts import line_figures
from billing.pricing.plan import TierCharge

_ONE = Decimal(1)


@dataclass(frozen=True, slots=True, kw_only=True)
class LineIn:
    """One invoice line before it is numbered: `amount` (signed, major units of the invoice's
    currency) is already rounded to the billing unit; `detail` is the tier breakdown (JSON)."""

    kind: LineKind
    description: str
    quantity: Decimal
    unit_amount: Decimal
    amount: Decimal
    product: str | None = None
    detail: str = ""
    corrects_period: dt.datetime | None = None  # the earlier period an adjustment is for


@dataclass(frozen=True, slots=True, kw_only=True)
class Totals:
    """An invoice's figures, each a sum of its rounded lines (see the module docstring)."""

    subtotal: Decimal
    discount_total: Decimal
    total: Decimal
    credits_applied: Decimal
    amount_due: Decimal


def totals(lines: Iterable[LineIn], currency: str) -> Totals:
    """The figures of `lines`; ValueError if a line is not rounded to `currency`'s billing unit."""
    by_kind = dict.fromkeys(LineKind, ZERO)
    for line in lines:
        if round_to_billing_unit(line.amount, currency) != line.amount:
            raise ValueError(f"line amount {line.amount} is not rounded to {currency}")
        by_kind[line.kind] = EXACT.add(by_kind[line.kind], line.amount)
    subtotal = EXACT.plus(
        sum(
            (
                by_kind[kind]
                for kind in (
                    LineKind.USAGE,
                    LineKind.ADJUSTMENT,
                    LineKind.CAPPED,
                    LineKind.COMMITMENT,
                )
            ),
            ZERO,
        )
    )
    discount_total = -by_kind[LineKind.DISCOUNT]
    total = EXACT.subtract(subtotal, discount_total)
    credits_applied = -by_kind[LineKind.CREDITS]
    return Totals(
        subtotal=subtotal,
        discount_total=discount_total,
        total=total,
        credits_applied=credits_applied,
        amount_due=EXACT.subtract(total, credits_applied),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BilledUsage:
    """One product's billed quantity in a period (after caps) and its exact charge."""

    product: str
    name: str  # the product's display name
    unit: str  # singular display unit
    quantity: Decimal
    charge: ChargeResult


def usage_lines(
    usage: Sequence[BilledUsage], *, discount_percent: Decimal, currency: str
) -> tuple[LineIn, ...]:
    """A usage line per product, each followed by its discount line when it has one."""
    lines: list[LineIn] = []
    for item in usage:
        figures = line_figures(item.charge.amount, discount_percent, currency)
        lines.append(
            LineIn(
                kind=LineKind.USAGE,
                description=f"{item.name}: {group_quantity(item.quantity)} {item.unit}s",
                quantity=item.quantity,
                unit_amount=figures.subtotal,
                amount=figures.subtotal,
                product=item.product,
                detail=breakdown(item.charge),
            )
        )
        if figures.discount:
            lines.append(
                LineIn(
                    kind=LineKind.DISCOUNT,
                    description=f"{item.name}: {discount_percent.normalize():f}% discount",
                    quantity=_ONE,
                    unit_amount=-figures.discount,
                    amount=-figures.discount,
                    product=item.product,
                )
            )
    return tuple(lines)


def with_credits(lines: Sequence[LineIn], applied: Decimal) -> tuple[LineIn, ...]:
    """`lines` and, when credit was applied (a positive amount), the credits line."""
    if not applied:
        return tuple(lines)
    credits = LineIn(
        kind=LineKind.CREDITS,
        description="Prepaid credits applied",
        quantity=_ONE,
        unit_amount=-applied,
        amount=-applied,
    )
    return (*lines, credits)


def breakdown(result: ChargeResult) -> str:
    """The tier breakdown of a charge as stored on its line (exact amounts, as text): a JSON
    list of one object per tier used, the same text as `json.dumps` of the list."""
    return "[" + ",".join(_tier_json(tier) for tier in result.tiers) + "]"


@lru_cache(maxsize=4096)
def _tier_json(tier: TierCharge) -> str:
    """One tier of a breakdown as JSON. Cached: every customer who passed a tier has the
    same text for it (a close writes a few tiers per line, for thousands of lines), and
    equal Decimals format alike (`format_quantity`), so the cache never mixes values."""
    return json.dumps(
        {
            "from": format_quantity(tier.lower),
            "up_to": None if tier.up_to is None else format_quantity(tier.up_to),
            "quantity": format_quantity(tier.quantity),
            "unit_price": format_quantity(tier.unit_price),
            "flat_fee": format_quantity(tier.flat_fee),
            "amount": format_quantity(tier.amount),
        },
        separators=(",", ":"),
    )


@dataclass(frozen=True, slots=True)
class Parts:
    """A product's usage in a period by dimension value: (dimensions JSON, quantity
    accepted) each, the quantity accepted in all (more than the parts' sum when usage came
    before the product had dimensions: that shows as "(none)"), and the dimension names."""

    rows: Sequence[tuple[str, Decimal]]
    accepted: Decimal
    dimensions: tuple[str, ...]


def with_breakdowns(
    lines: Sequence[LineIn], parts: dict[str, Parts], currency: str
) -> tuple[LineIn, ...]:
    """`lines` with each usage line of a product in `parts` broken down by dimension value
    (docs/invoicing.md, "Breakdowns"): each part's quantity accepted, and its amount, the
    line's rounded amount split in proportion to quantity by the largest-remainder rule
    (billing.pricing.allocate) so the parts sum to the line to the billing unit. Kept in
    the line's `detail` beside its tiers: {"tiers": [...], "breakdown": [...]}."""
    made = []
    for line in lines:
        found = parts.get(line.product or "") if line.kind == LineKind.USAGE else None
        if not found:
            made.append(line)
            continue
        named = [(json.loads(name), quantity) for name, quantity in found.rows if quantity > 0]
        rest = found.accepted - sum((q for _, q in named), ZERO)
        if rest > 0:
            named.append((dict.fromkeys(found.dimensions, NONE), rest))
        weights = [quantity for _, quantity in named]
        if sum(weights, ZERO) <= 0:
            made.append(line)
            continue
        amounts = largest_remainder(line.amount, weights, billing_unit(currency))
        split = [
            {
                "dimensions": dimensions,
                "quantity": format_quantity(quantity),
                "amount": format_quantity(amount),
            }
            for (dimensions, quantity), amount in zip(named, amounts, strict=True)
        ]
        made.append(replace(line, detail=_with_split(line.detail, split)))
    return tuple(made)


def _with_split(tiers: str, split: list[dict[str, Any]]) -> str:
    """{"tiers": ..., "breakdown": ...} as `json.dumps` writes it compactly, the tier list
    spliced in as the text `breakdown` made (equal to json.dumps of it: a property test
    holds it), not parsed and written again for every line of a close."""
    return '{"tiers":' + (tiers or "null") + ',"breakdown":' + _COMPACT.encode(split) + "}"


_COMPACT = json.JSONEncoder(separators=(",", ":"))


def read_detail(detail: str) -> tuple[list[Any] | None, list[Any] | None]:
    """A line's stored `detail`: its tier breakdown and its breakdown by dimension value
    (each None when it has none). Lines keep either the tier list alone (`breakdown`) or
    {"tiers": [...], "breakdown": [...]} (`with_breakdowns`)."""
    stored = json.loads(detail) if detail else None
    if isinstance(stored, dict):
        return stored.get("tiers"), stored.get("breakdown")
    return stored, None
