"""The three charge models behind one function, each returning its working.

graduated  each unit priced by the tier it falls in, plus the flat fee of every tier reached
volume     every unit priced at the tier that contains the whole quantity, plus its flat fee
package    ceil(quantity / package_size) packages, priced graduated
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from decimal import Decimal, localcontext

from billing.money import EXACT, ZERO
from billing.pricing.plan import Model, PricePlan


@dataclass(frozen=True, slots=True)
class TierCharge:
    """The part of a charge that fell in one tier: (lower, up_to] x unit_price + flat_fee."""

    lower: Decimal
    up_to: Decimal | None
    quantity: Decimal
    unit_price: Decimal
    flat_fee: Decimal
    amount: Decimal


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
    with localcontext(EXACT):
        if plan.model is Model.VOLUME:
            return _volume(plan, quantity)
        if plan.model is Model.PACKAGE:
            assert plan.package_size is not None
            packages, remainder = divmod(quantity, plan.package_size)
            if remainder:
                packages += 1
            return _graduated(plan, quantity, packages)
        return _graduated(plan, quantity, quantity)


def _graduated(plan: PricePlan, quantity: Decimal, priced: Decimal) -> ChargeResult:
    parts = []
    total = ZERO
    for lower, tier in zip(plan.lowers, plan.tiers, strict=True):
        if priced <= lower:
            break
        top = priced if tier.up_to is None or priced < tier.up_to else tier.up_to
        units = top - lower
        amount = tier.unit_price * units + tier.flat_fee
        total += amount
        parts.append(TierCharge(lower, tier.up_to, units, tier.unit_price, tier.flat_fee, amount))
    return ChargeResult(plan.model, quantity, priced, tuple(parts), total)


def _volume(plan: PricePlan, quantity: Decimal) -> ChargeResult:
    if not quantity:
        return ChargeResult(plan.model, quantity, quantity, (), ZERO)
    # tiers[k] contains quantity when lowers[k] < quantity <= up_to[k].
    index = bisect_left(plan.lowers, quantity) - 1
    tier = plan.tiers[index]
    amount = tier.unit_price * quantity + tier.flat_fee
    lower = plan.lowers[index]
    part = TierCharge(lower, tier.up_to, quantity, tier.unit_price, tier.flat_fee, amount)
    return ChargeResult(plan.model, quantity, quantity, (part,), amount)
