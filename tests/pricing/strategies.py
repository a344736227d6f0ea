"""Hypothesis strategies for price plans, and an independent reference pricer.

The reference uses Fractions and a different algorithm (per-tier overlap), so agreeing
with it means something.
"""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction
from math import ceil

from hypothesis import strategies as st

from billing.money import round_to_minor
from billing.pricing import Model, PricePlan, Tier

prices = st.builds(
    lambda units, places: D(units).scaleb(-places),
    st.integers(0, 10**6),
    st.integers(0, 12),
)
fees = st.one_of(st.just(D(0)), st.builds(lambda c: D(c).scaleb(-2), st.integers(0, 10**5)))


@st.composite
def plans(draw, models=tuple(Model), max_width=1000):
    model = draw(st.sampled_from(models))
    widths = draw(st.lists(st.integers(1, max_width), min_size=0, max_size=5))
    bounds, total = [], 0
    for width in widths:
        total += width
        bounds.append(D(total))
    tiers = [Tier(b, draw(prices), draw(fees)) for b in bounds]
    tiers.append(Tier(None, draw(prices), draw(fees)))
    size = draw(st.integers(1, 50)) if model is Model.PACKAGE else None
    return PricePlan(model, tuple(tiers), "USD", package_size=size)


def reference_charge(plan: PricePlan, quantity: int) -> Fraction:
    """Exact charge by overlap of [0, q] with each tier, in Fractions."""
    q = Fraction(quantity)
    if plan.model is Model.PACKAGE:
        q = Fraction(ceil(q / plan.package_size))
    total = Fraction(0)
    lower = Fraction(0)
    for tier in plan.tiers:
        upper = Fraction(tier.up_to) if tier.up_to is not None else None
        price, fee = Fraction(tier.unit_price), Fraction(tier.flat_fee)
        if plan.model is Model.VOLUME:
            if q > lower and (upper is None or q <= upper):
                return q * price + fee
        else:
            units = (min(q, upper) if upper is not None else q) - lower
            if units > 0:
                total += units * price + fee
        if upper is None:
            break
        lower = upper
    return total


def line_total(amount: D, percent: D) -> D:
    subtotal = round_to_minor(amount, "USD")
    return subtotal - round_to_minor(subtotal * percent / 100, "USD")
