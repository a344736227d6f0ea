"""Splitting a rounded amount into parts that sum to it exactly (docs/invoicing.md,
"Breakdowns").

The rule (largest remainder, also called Hamilton's method): each part first gets its exact
share of the amount, `amount x weight / total weight`, rounded **toward zero** to the
quantum (the currency's billing unit); the quanta left over, at most one per part, go one
each to the parts with the largest remainders, ties to the earlier part. The parts then sum
to the amount to the quantum, and no part is off its exact share by a quantum or more.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal


def largest_remainder(
    amount: Decimal, weights: Sequence[Decimal], quantum: Decimal
) -> list[Decimal]:
    """`amount` (a multiple of `quantum`, any sign) split in proportion to `weights` (each
    >= 0, at least one above 0): one part per weight, each a multiple of `quantum`, summing
    to `amount` exactly. ValueError for a negative weight, no weight above 0, or an amount
    that is not a multiple of `quantum`."""
    if any(w < 0 for w in weights):
        raise ValueError("weights are quantities: none below 0")
    whole = sum(weights, Decimal(0))
    if whole <= 0:
        raise ValueError("at least one weight above 0")
    units = amount / quantum
    if units != units.to_integral_value():
        raise ValueError(f"{amount} is not a multiple of {quantum}")
    sign = -1 if amount < 0 else 1
    total_units = int(abs(units))
    exact = [Decimal(total_units) * w / whole for w in weights]
    floors = [int(e.to_integral_value(rounding=ROUND_DOWN)) for e in exact]
    left = total_units - sum(floors)
    # the parts with the largest remainders take one unit each; ties go to the earlier part
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [sign * quantum * units_of_part for units_of_part in floors]
