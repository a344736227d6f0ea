"""Percentage discounts and the rounded figures of one line.

A line subtotal is the exact charge rounded once, half-up, to the currency's billing unit
(billing/money.py: the minor unit, or 0.01 for the three-decimal currencies; docs/money.md);
the discount is rounded once from the rounded subtotal; the total is their difference.
Every sum above a line adds these.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from billing.money import EXACT, HUNDRED, ZERO, round_to_billing_unit


@dataclass(frozen=True, slots=True)
class LineFigures:
    subtotal: Decimal
    discount: Decimal
    total: Decimal


def discount_amount(subtotal: Decimal, percent: Decimal, currency: str) -> Decimal:
    """round_half_up(subtotal * percent / 100) to the currency's billing unit (major units;
    docs/money.md)."""
    if not percent:
        return ZERO
    return round_to_billing_unit(EXACT.divide(EXACT.multiply(subtotal, percent), HUNDRED), currency)


def line_figures(exact_amount: Decimal, percent: Decimal, currency: str) -> LineFigures:
    """Subtotal, discount and total of a line from its exact charge."""
    subtotal = round_to_billing_unit(exact_amount, currency)
    discount = discount_amount(subtotal, percent, currency)
    return LineFigures(subtotal, discount, EXACT.subtract(subtotal, discount))


def line_amounts(exact_amount: Decimal, percent: Decimal, currency: str) -> tuple[Decimal, Decimal]:
    """(subtotal, total) of `line_figures(exact_amount, percent, currency)`, equal to them
    digit for digit, without building the figures: for callers that price many lines and
    need only these two (a backtest re-prices every customer's periods)."""
    subtotal = round_to_billing_unit(exact_amount, currency)
    if not percent:
        # NOTE: subtotal - 0 is the subtotal itself: its exponent is the billing unit's (<= 0)
        return subtotal, subtotal
    return subtotal, EXACT.subtract(subtotal, discount_amount(subtotal, percent, currency))


def percent_in_force(
    percent: Decimal | None, until: dt.date | None, period_start: dt.date
) -> Decimal:
    """A customer's percentage discount for the period starting on `period_start`.

    A discount applies to every period that starts on or before its `until` date.
    """
    if percent is None or (until is not None and period_start > until):
        return ZERO
    return percent
