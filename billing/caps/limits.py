"""Quota arithmetic of one customer's product in one period. Pure: no I/O.

docs/spend-caps.md in three functions:

- `limit_for` moves a period's `limit_quantity` when the cap (or the discount it is
  measured after) changes: it becomes the new `q_max`, except that it never drops below what
  the period has already billed. One rule covers raising (the new q_max is above the billed
  quantity), lowering below the accrued usage (the limit freezes at the billed quantity, so
  accrued usage stays billed and nothing more is accepted) and a new period (nothing billed
  yet: the limit is q_max).
- `admits` decides one event: accepted while the accepted quantity is below the limit; the
  event that crosses it is accepted too; later ones are over the limit.
- `alerts_due` lists the alerts a period's state calls for that have not fired yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from billing.money import EXACT, HUNDRED, ZERO, format_amount, group_quantity
from billing.pricing.caps import max_quantity_within_cap
from billing.pricing.charge import charge
from billing.pricing.discounts import line_figures
from billing.pricing.plan import PricePlan

FREE_ALLOWANCE = "free_allowance"
DEFAULT_THRESHOLDS = (Decimal(50), Decimal(80), Decimal(100))


def cap_alert(threshold: Decimal) -> str:
    """The kind of the alert at `threshold` percent of a cap: cap_50, cap_80, cap_100."""
    return f"cap_{threshold.normalize():f}"


def billed_quantity(accepted: Decimal, limit: Decimal | None) -> Decimal:
    """What a period bills: min(accepted, limit_quantity)."""
    return accepted if limit is None or accepted <= limit else limit


def limit_for(
    plan: PricePlan,
    cap: Decimal | None,
    discount_percent: Decimal,
    accepted: Decimal,
    current_limit: Decimal | None,
) -> Decimal | None:
    """The period's new limit_quantity after its cap or discount changed (None: no limit)."""
    if cap is None:
        return None
    q_max = max_quantity_within_cap(plan, cap, discount_percent)
    if q_max is None:
        return None
    return max(q_max, billed_quantity(accepted, current_limit))


def admits(accepted: Decimal, limit: Decimal | None) -> bool:
    """Whether the next event is accepted, given the quantity accepted so far."""
    return limit is None or accepted < limit


def is_limited(accepted: Decimal, limit: Decimal | None) -> bool:
    """True once nothing more is accepted this period."""
    return limit is not None and accepted >= limit


def line_total(plan: PricePlan, quantity: Decimal, discount_percent: Decimal) -> Decimal:
    """The product's line total for `quantity`: rounded, after the percentage discount."""
    return line_figures(charge(plan, quantity).amount, discount_percent, plan.currency).total


@dataclass(frozen=True, slots=True)
class AlertDue:
    kind: str
    message: str


def alerts_due(
    *,
    plan: PricePlan,
    product_name: str,
    cap: Decimal | None,
    discount_percent: Decimal,
    accepted: Decimal,
    limit: Decimal | None,
    thresholds: Iterable[Decimal],
    free_allowance_alert: bool,
    fired: frozenset[str],
) -> list[AlertDue]:
    """Alerts the period's state has reached that have not fired yet, in threshold order.

    A threshold below 100 % fires when the billed line total reaches that share of the cap;
    100 % fires when it reaches the cap or when the product is limited (the line total at
    q_max is usually a little under the cap). A cap of 0 fires only its 100 % alert.
    """
    due: list[AlertDue] = []
    billed = billed_quantity(accepted, limit)
    allowance = plan.free_allowance
    if (
        free_allowance_alert
        and FREE_ALLOWANCE not in fired
        and allowance is not None
        and allowance > 0
        and billed >= allowance
    ):
        due.append(
            AlertDue(
                FREE_ALLOWANCE,
                f"{product_name}: the free allowance of {group_quantity(allowance)} units "
                "is used up",
            )
        )
    if cap is None:
        return due
    pending = [t for t in sorted(set(thresholds)) if cap_alert(t) not in fired]
    if not pending:
        return due
    total = line_total(plan, billed, discount_percent)
    limited = is_limited(accepted, limit)
    shown_cap, shown_total = format_amount(cap, plan.currency), format_amount(total, plan.currency)
    for threshold in pending:
        share = EXACT.divide(EXACT.multiply(cap, threshold), HUNDRED)
        reached = (cap > ZERO and total >= share) or (threshold >= HUNDRED and limited)
        if not reached:
            continue
        if threshold >= HUNDRED and limited:
            text = (
                f"{product_name}: the spend cap of {shown_cap} is reached; "
                "further usage is not accepted this period"
            )
        else:
            text = (
                f"{product_name}: {threshold.normalize():f}% of the spend cap of {shown_cap} "
                f"is used ({shown_total})"
            )
        due.append(AlertDue(cap_alert(threshold), text))
    return due
