"""The three charge models behind one function, each returning its working.

graduated  each unit priced by the tier it falls in, plus the flat fee of every tier reached
volume     every unit priced at the tier that contains the whole quantity, plus its flat fee
package    ceil(quantity / package_size) packages, priced graduated
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from decimal import Decimal

from billing.money import EXACT, ZERO
from billing.pricing.plan import Model, PricePlan, TierCharge


@dataclass(frozen=True, slots=True)
class ChargeResult:
    """An exact, unrounded charge and the tier breakdown that produced it."""

    model: Model
    quantity: Decimal
    priced_quantity: Decimal  # units in the tiers: the quantity, or packages
    tiers: tuple[TierCharge, ...]
    amount: Decimal


def charge(plan: PricePlan, quantity: Decimal) -> ChargeResult:
    """Price `quantity` units with `plan`, exactly, showing every tier used."""
    if quantity < 0:
        raise ValueError(f"quantity must be non-negative, got {quantity}")
    # NOTE: arithmetic goes through the EXACT context's methods, so a charge can never be
    # rounded silently, whatever context the caller's thread has.
    if plan.model is Model.VOLUME:
        return _volume(plan, quantity)
    if plan.model is Model.PACKAGE:
        assert plan.package_size is not None
        packages, remainder = EXACT.divmod(quantity, plan.package_size)
        if remainder:
            packages = EXACT.add(packages, 1)
        return _graduated(plan, quantity, packages)
    return _graduated(plan, quantity, quantity)


def charge_amount(plan: PricePlan, quantity: Decimal) -> Decimal:
    """`charge(plan, quantity).amount`, exact and equal to it, without building the tier
    breakdown: for callers that price many quantities and need only the amounts (a backtest
    re-prices every customer's periods twice). ValueError for a negative quantity."""
    if quantity < 0:
        raise ValueError(f"quantity must be non-negative, got {quantity}")
    priced = quantity
    if plan.model is Model.PACKAGE:
        assert plan.package_size is not None
        priced, remainder = EXACT.divmod(quantity, plan.package_size)
        if remainder:
            priced = EXACT.add(priced, 1)
    if not priced:
        return ZERO
    index = bisect_left(plan.lowers, priced) - 1
    if plan.model is Model.VOLUME:
        tier = plan.tiers[index]
        return EXACT.add(EXACT.multiply(tier.unit_price, priced), tier.flat_fee)
    units = EXACT.subtract(priced, plan.lowers[index])
    return EXACT.add(plan.segments[index].base, EXACT.multiply(plan.tiers[index].unit_price, units))


def _graduated(plan: PricePlan, quantity: Decimal, priced: Decimal) -> ChargeResult:
    if not priced:
        return ChargeResult(plan.model, quantity, priced, (), ZERO)
    # Tiers below the one containing `priced` are used in full: their parts and their
    # cumulative cost (segment base) were computed once, when the plan was built.
    index = bisect_left(plan.lowers, priced) - 1
    lower, tier = plan.lowers[index], plan.tiers[index]
    units = EXACT.subtract(priced, lower)
    used = EXACT.multiply(tier.unit_price, units)
    last = TierCharge(
        lower, tier.up_to, units, tier.unit_price, tier.flat_fee, EXACT.add(used, tier.flat_fee)
    )
    amount = EXACT.add(plan.segments[index].base, used)
    return ChargeResult(plan.model, quantity, priced, (*plan.full_parts[:index], last), amount)


def _volume(plan: PricePlan, quantity: Decimal) -> ChargeResult:
    if not quantity:
        return ChargeResult(plan.model, quantity, quantity, (), ZERO)
    # tiers[k] contains quantity when lowers[k] < quantity <= up_to[k].
    index = bisect_left(plan.lowers, quantity) - 1
    tier = plan.tiers[index]
    amount = EXACT.add(EXACT.multiply(tier.unit_price, quantity), tier.flat_fee)
    lower = plan.lowers[index]
    part = TierCharge(lower, tier.up_to, quantity, tier.unit_price, tier.flat_fee, amount)
    return ChargeResult(plan.model, quantity, quantity, (part,), amount)
