"""A product's tier table in force: the model, the tiers, and precomputed segments.

Boundary rule, pinned once: `up_to` is inclusive, in units (packages for the package
model), cumulative; tier i covers (up_to[i-1], up_to[i]]; the last tier has no bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from billing.money import EXACT, ZERO, minor_digits


class Model(StrEnum):
    GRADUATED = "graduated"
    VOLUME = "volume"
    PACKAGE = "package"


@dataclass(frozen=True, slots=True)
class Tier:
    """One row of a tier table. `up_to` None means no upper bound ("inf")."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = ZERO


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
class Segment:
    """cost(lower + n) = base + unit_price * n for whole n in 1..(upper - lower)."""

    lower: Decimal
    upper: Decimal | None
    base: Decimal
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class PricePlan:
    """A validated tier table with the model that reads it."""

    model: Model
    tiers: tuple[Tier, ...]
    currency: str
    package_size: int | None = None
    lowers: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)
    segments: tuple[Segment, ...] = field(init=False, repr=False, compare=False)
    full_parts: tuple[TierCharge, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check(self)
        lowers: list[Decimal] = []
        previous = ZERO
        for tier in self.tiers:
            lowers.append(previous)
            previous = tier.up_to if tier.up_to is not None else previous
        object.__setattr__(self, "lowers", tuple(lowers))
        object.__setattr__(self, "segments", tuple(_segments(self)))
        object.__setattr__(self, "full_parts", tuple(_full_parts(self)))

    @property
    def free_allowance(self) -> Decimal | None:
        """Units charged nothing at all before the first paid one; None if every unit is free."""
        free = ZERO
        for tier in self.tiers:
            if tier.unit_price or tier.flat_fee:
                break
            if tier.up_to is None:
                return None
            free = tier.up_to
        return free * (self.package_size or 1)


def _check(plan: PricePlan) -> None:
    minor_digits(plan.currency)
    if not plan.tiers:
        raise ValueError("a price plan needs at least one tier")
    if plan.tiers[-1].up_to is not None:
        raise ValueError("the last tier must have no upper bound")
    previous = ZERO
    for tier in plan.tiers:
        if tier.unit_price < 0 or tier.flat_fee < 0:
            raise ValueError("prices and flat fees must be non-negative")
        if tier.up_to is not None:
            if tier.up_to <= previous or tier.up_to != tier.up_to.to_integral_value():
                raise ValueError("up_to must be whole numbers, strictly increasing")
            previous = tier.up_to
    for tier in plan.tiers[:-1]:
        if tier.up_to is None:
            raise ValueError("only the last tier may be unbounded")
    if (plan.model is Model.PACKAGE) != (plan.package_size is not None):
        raise ValueError("package_size is required by, and only by, the package model")
    if plan.package_size is not None and plan.package_size <= 0:
        raise ValueError("package_size must be positive")


def _segments(plan: PricePlan) -> list[Segment]:
    segments = []
    cumulative = ZERO
    for lower, tier in zip(plan.lowers, plan.tiers, strict=True):
        if plan.model is Model.VOLUME:
            base = EXACT.add(tier.flat_fee, EXACT.multiply(tier.unit_price, lower))
        else:
            base = EXACT.add(cumulative, tier.flat_fee)
        segments.append(Segment(lower, tier.up_to, base, tier.unit_price))
        if tier.up_to is not None:
            width = EXACT.subtract(tier.up_to, lower)
            cumulative = EXACT.add(base, EXACT.multiply(tier.unit_price, width))
    return segments


def _full_parts(plan: PricePlan) -> list[TierCharge]:
    """Each bounded tier fully used, as a graduated charge would show it."""
    parts = []
    for lower, tier in zip(plan.lowers, plan.tiers, strict=True):
        if tier.up_to is None:
            break
        width = EXACT.subtract(tier.up_to, lower)
        amount = EXACT.add(EXACT.multiply(tier.unit_price, width), tier.flat_fee)
        parts.append(TierCharge(lower, tier.up_to, width, tier.unit_price, tier.flat_fee, amount))
    return parts
