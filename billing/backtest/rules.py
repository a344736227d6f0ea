"""Rules that gate a merge of a price change (`billing tiers diff --fail-if RULE`). Pure.

A rule is `METRIC OP NUMBER` (spaces optional), e.g. `customer_increase_pct > 10`:

    customer_increase_pct   each customer whose bill rises: its rise in percent
    customer_decrease_pct   each customer whose bill falls: its fall in percent (positive)
    total_delta_pct         the whole range's change in percent (signed)
    cap_quantity_drop_pct   each spend cap that buys less: how much less, in percent

OP is one of > >= < <=. A bill that rises from 0.00 rises by more than any percentage.
Mismatches of the old side (history and code disagree) are always violations.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from billing.backtest.reprice import Backtest, Move

METRICS = (
    "customer_increase_pct",
    "customer_decrease_pct",
    "total_delta_pct",
    "cap_quantity_drop_pct",
)
_OPS: dict[str, Callable[[Decimal, Decimal], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_RULE = re.compile(r"\s*([a-z_]+)\s*(>=|<=|>|<)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*")


class RuleError(ValueError):
    """A rule that does not parse; the message says what is wrong and what is allowed."""


@dataclass(frozen=True, slots=True)
class Rule:
    metric: str
    op: str
    limit: Decimal

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.limit}"

    def holds(self, value: Decimal | None) -> bool:
        """Whether `value` meets the rule's condition (None: infinitely large)."""
        if value is None:
            return self.op in (">", ">=")
        return _OPS[self.op](value, self.limit)


def parse_rule(text: str) -> Rule:
    """`text` as a Rule; RuleError naming the problem."""
    found = _RULE.fullmatch(text)
    if found is None:
        raise RuleError(
            f"not a rule: {text!r} (want METRIC OP NUMBER, e.g. 'customer_increase_pct > 10')"
        )
    metric, op, number = found.groups()
    if metric not in METRICS:
        raise RuleError(f"unknown metric {metric!r} in {text!r}: one of {', '.join(METRICS)}")
    try:
        return Rule(metric, op, Decimal(number))
    except InvalidOperation:  # the pattern admits only numbers; kept for a clear message
        raise RuleError(f"not a number: {number!r} in {text!r}") from None


def _pct(value: Decimal | None) -> str:
    return "from 0.00" if value is None else f"{value:+}%"


def _move(move: Move) -> str:
    return f"{move.old} -> {move.new}"


def violations(report: Backtest, rules: list[Rule]) -> list[str]:
    """Every violation, one sentence each: the mismatches of the old side first, then each
    rule's, in the order given."""
    found = [
        f"mismatch: {m.customer} {m.month} {m.product}: invoiced {m.invoiced}, "
        f"re-priced {m.repriced}"
        for m in report.mismatches
    ]
    for rule in rules:
        if rule.metric == "customer_increase_pct":
            for customer, move in report.customers.items():
                if move.delta > 0 and rule.holds(move.delta_pct):
                    found.append(f"{rule}: {customer} {_pct(move.delta_pct)} ({_move(move)})")
        elif rule.metric == "customer_decrease_pct":
            for customer, move in report.customers.items():
                if move.delta < 0 and move.delta_pct is not None and rule.holds(-move.delta_pct):
                    found.append(f"{rule}: {customer} {_pct(move.delta_pct)} ({_move(move)})")
        elif rule.metric == "total_delta_pct":
            total = report.total
            if (total.delta_pct is not None or total.delta > 0) and rule.holds(total.delta_pct):
                found.append(f"{rule}: total {_pct(total.delta_pct)} ({_move(total)})")
        else:
            for cap in report.caps:
                # NOTE: a cap that bought without limit and now buys a quantity dropped by
                # more than any percentage
                unlimited_before = cap.quantity_old is None and cap.quantity_new is not None
                dropped = cap.drop_pct is not None and cap.drop_pct > 0
                if (dropped or unlimited_before) and rule.holds(
                    None if unlimited_before else cap.drop_pct
                ):
                    found.append(
                        f"{rule}: {cap.customer} {cap.product} cap {cap.cap} buys "
                        f"{cap.quantity_old} -> {cap.quantity_new} ({cap.drop_pct}% less)"
                    )
    return found
