"""The recommended commitment bracket for a monthly usage, for callers that ask it often.

`commitment_options` (billing/pricing/commitments.py) quotes every bracket at its best
credit for a usage and recommends the largest saver. A backtest asks that choice for
thousands of customers under one schedule, so `Recommender` works out once per schedule
what does not depend on the usage, and each question is then a few exact comparisons.

For a yearly usage A (12 x the monthly usage, major units) a bracket with floor
f = max(min_credit, min_purchase) and ceiling c = the next bracket's min_credit minus one
billing unit (none for a term's largest) is quoted at credit clamp(A, f, c), or at f when
c < f; its yearly saving is then
    A <= f       A - price(f)    (credit unused: no overage)
    f < A <= c   A - price(A)    (credit equals usage)
    A > c        c - price(c)    (the usage above c is overage, paid at list price)
where price(x) is `price_per_year` of the bracket that credit x buys (`bracket_for`: a
floor raised by `min_purchase` can buy a later bracket). The recommendation is the first
quote, terms shortest first and brackets smallest first, whose saving is positive and
larger than every earlier one's; None when no commitment saves. Exact Decimal throughout;
the property test (tests/pricing/test_recommend.py) holds it equal to commitment_options.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from billing.money import EXACT, ZERO, billing_unit
from billing.pricing.commitments import (
    MONTHS_PER_YEAR,
    Bracket,
    CommitmentSchedule,
    price_per_year,
)


@dataclass(frozen=True, slots=True)
class _Row:
    """One bracket's quote as a function of the yearly usage: the floor and ceiling credits,
    the bracket each buys and its yearly saving there (below the floor, the saving is the
    usage minus `floor_price`)."""

    bracket: Bracket  # what a credit strictly between floor and ceiling buys
    floor: Decimal
    floor_bracket: Bracket
    floor_price: Decimal
    ceiling: Decimal | None  # None: no ceiling (the term's largest bracket)
    ceiling_bracket: Bracket  # `bracket` when there is no ceiling (unused)
    ceiling_saving: Decimal  # c - price(c); 0 when there is no ceiling (unused)


class Recommender:
    """`recommended_bracket` for one schedule, the usage-independent part computed once.

    Call it with a monthly usage at list price (major units of the schedule's currency,
    a Decimal) for the Bracket `commitment_options` recommends, or None when paying as
    you go saves most. Pure; safe to share between threads (nothing mutates after init).
    """

    __slots__ = ("currency", "rows")

    def __init__(self, schedule: CommitmentSchedule) -> None:
        self.currency = schedule.currency
        step = billing_unit(schedule.currency)
        rows: list[_Row] = []
        with localcontext(EXACT):
            for years in schedule.terms:
                brackets = schedule.brackets_for(years)
                for index, bracket in enumerate(brackets):
                    floor = max(bracket.min_credit, schedule.min_purchase)
                    ceiling = None
                    if index + 1 < len(brackets):
                        # NOTE: a ceiling below the floor quotes the floor at every usage
                        ceiling = max(floor, brackets[index + 1].min_credit - step)
                    floor_bracket = schedule.bracket_for(floor, years)
                    ceiling_bracket = bracket
                    ceiling_saving = ZERO
                    if ceiling is not None:
                        ceiling_bracket = schedule.bracket_for(ceiling, years)
                        ceiling_price = price_per_year(ceiling, ceiling_bracket, self.currency)
                        ceiling_saving = ceiling - ceiling_price
                    rows.append(
                        _Row(
                            bracket=bracket,
                            floor=floor,
                            floor_bracket=floor_bracket,
                            floor_price=price_per_year(floor, floor_bracket, self.currency),
                            ceiling=ceiling,
                            ceiling_bracket=ceiling_bracket,
                            ceiling_saving=ceiling_saving,
                        )
                    )
        self.rows = tuple(rows)

    def __call__(self, monthly_usage: Decimal) -> Bracket | None:
        best: Bracket | None = None
        best_saving = ZERO
        with localcontext(EXACT):
            annual = monthly_usage * MONTHS_PER_YEAR
            for row in self.rows:
                if annual <= row.floor:
                    saving = annual - row.floor_price
                    bracket = row.floor_bracket
                elif row.ceiling is not None and annual > row.ceiling:
                    saving = row.ceiling_saving
                    bracket = row.ceiling_bracket
                else:
                    saving = annual - price_per_year(annual, row.bracket, self.currency)
                    bracket = row.bracket
                if saving > best_saving:
                    best, best_saving = bracket, saving
        return best


def recommended_bracket(schedule: CommitmentSchedule, monthly_usage: Decimal) -> Bracket | None:
    """The bracket `commitment_options` recommends for this monthly usage (major units at
    list price), or None when no commitment saves anything. Builds a `Recommender` per
    call: callers that ask for many usages under one schedule should keep one."""
    return Recommender(schedule)(monthly_usage)
