"""Spend caps inverted exactly: the largest whole quantity a cap buys.

A cap bounds a line's total after the percentage discount. `max_quantity_within_cap`
returns the largest whole quantity q such that, for every whole quantity up to q,
  (a) the exact discounted charge  charge(q) * (100 - p) / 100  is at most the cap, and
  (b) the rounded line total  subtotal - discount  is at most the cap.
It walks the tier segments once, solving each linear piece with exact integer division:
no search over units. Volume tables can get cheaper past a boundary; the cap still
stops at the first quantity that would exceed it, because usage accrues unit by unit.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

from billing.money import EXACT, HUNDRED, ZERO, billing_unit
from billing.pricing.charge import charge
from billing.pricing.discounts import discount_amount, line_figures
from billing.pricing.plan import PricePlan, Segment


def max_quantity_within_cap(
    plan: PricePlan, cap: Decimal, discount_percent: Decimal = ZERO
) -> Decimal | None:
    """Largest whole quantity whose line total stays within `cap`; None if no limit binds."""
    if cap < 0:
        raise ValueError(f"a cap must be non-negative, got {cap}")
    if not ZERO <= discount_percent <= HUNDRED:
        raise ValueError(f"a discount is between 0 and 100 percent, got {discount_percent}")
    if discount_percent == HUNDRED:
        return None
    with localcontext(EXACT):
        keep = HUNDRED - discount_percent
        exact_limit = _largest_whole(plan, cap * HUNDRED, keep, strict=False)
        # r(S) <= R  <=>  S < R + half a billing unit (half-up rounding, docs/money.md).
        rounded_subtotal = _largest_rounded_subtotal(cap, discount_percent, plan.currency)
        half = billing_unit(plan.currency) / 2
        rounding_limit = _largest_whole(plan, rounded_subtotal + half, Decimal(1), strict=True)
    limits = [q for q in (exact_limit, rounding_limit) if q is not None]
    if not limits:
        return None
    q_max = min(limits)
    # NOTE: by construction this never steps; it is the docs/spend-caps.md guarantee, kept
    # as code so that a future model with a subtle rounding case stays safe.
    while q_max > 0 and _line_total(plan, q_max, discount_percent) > cap:
        q_max -= 1
    return q_max


def _line_total(plan: PricePlan, quantity: Decimal, percent: Decimal) -> Decimal:
    return line_figures(charge(plan, quantity).amount, percent, plan.currency).total


def _largest_rounded_subtotal(cap: Decimal, percent: Decimal, currency: str) -> Decimal:
    """The largest rounded subtotal whose discounted total is within the cap, in closed form.

    With s = k billing units, c = cap in billing units and keep = 100 - percent:
    s - round_half_up(s * percent / 100) <= cap  <=>  k - floor(k * percent / 100 + 1/2) <= c
    <=>  k * percent / 100 + 1/2 >= k - c (k - c is whole)  <=>  k <= (c + 1/2) * 100 / keep.
    """
    step = billing_unit(currency)
    keep = HUNDRED - percent
    units = ((cap / step) * 2 + 1) * HUNDRED // (keep * 2)
    subtotal = units * step

    def total(s: Decimal) -> Decimal:
        return s - discount_amount(s, percent, currency)

    # NOTE: a guard, not a search: the closed form is exact, so this never iterates.
    while subtotal > 0 and total(subtotal) > cap:
        subtotal -= step
    return subtotal


def _largest_whole(
    plan: PricePlan, limit: Decimal, scale: Decimal, *, strict: bool
) -> Decimal | None:
    """Largest whole quantity q with cost(q') * scale <= limit (< if strict) for all q' <= q."""
    packages = _largest_whole_in_segments(plan.segments, limit, scale, strict=strict)
    if packages is None or plan.package_size is None:
        return packages
    return packages * plan.package_size


def _largest_whole_in_segments(
    segments: tuple[Segment, ...], limit: Decimal, scale: Decimal, *, strict: bool
) -> Decimal | None:
    reached = ZERO
    for segment in segments:
        room = limit - segment.base * scale
        if segment.unit_price == 0:
            fits = room > 0 if strict else room >= 0
            if not fits:
                return segment.lower
            if segment.upper is None:
                return None
            reached = segment.upper
            continue
        if room <= 0:
            return segment.lower
        step = segment.unit_price * scale
        units, remainder = divmod(room, step)
        if strict and not remainder:
            units -= 1
        if units < 1:
            return segment.lower
        if segment.upper is not None and segment.lower + units >= segment.upper:
            reached = segment.upper
            continue
        return segment.lower + units
    return reached
