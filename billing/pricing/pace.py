"""Where a period ends up at the pace it has gone so far (pure arithmetic)."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal


def at_pace(so_far: Decimal, elapsed_seconds: int, length_seconds: int) -> Decimal:
    """`so_far` scaled from the elapsed part of a period to all of it, in whole units (down).

    Nothing elapsed yet, or the period over: `so_far` as it is.
    """
    if elapsed_seconds <= 0 or elapsed_seconds >= length_seconds:
        return so_far
    scaled = so_far * Decimal(length_seconds) / Decimal(elapsed_seconds)
    return max(scaled.to_integral_value(rounding=ROUND_FLOOR), so_far)
