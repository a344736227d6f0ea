"""Self-selected commitments: bracket choice and the arithmetic of a prepaid year.

The customer picks an annual credit amount and a term; the bracket is the one for that
term with the highest `min_credit` not above the amount. A contract year costs
credit * (1 - discount / 100), rounded once. Usage is drawn from credit at list price
(after caps and any percentage discount); what credit does not cover is overage.

A bracket's break-even is the yearly pay-as-you-go spend at which its smallest commitment
costs exactly what paying as you go does: that commitment's price per year. Above it the
bracket saves money; below it, it costs more (`break_even`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from enum import StrEnum

from billing.errors import BelowMinimumPurchase, UnknownTerm
from billing.money import (
    EXACT,
    HUNDRED,
    ROUNDING,
    ZERO,
    billing_unit,
    divide_to_billing_unit,
    round_to_billing_unit,
    round_to_minor,
)

MONTHS_PER_YEAR = 12


class Release(StrEnum):
    MONTHLY = "monthly"
    UPFRONT = "upfront"


@dataclass(frozen=True, slots=True)
class Bracket:
    years: int
    min_credit: Decimal
    discount_percent: Decimal


@dataclass(frozen=True, slots=True)
class CommitmentSchedule:
    """The published table of brackets and the rules around them (discounts.toml)."""

    currency: str
    min_purchase: Decimal
    release: Release
    rollover_percent: Decimal
    topup_months: int
    brackets: tuple[Bracket, ...] = field(default=())

    @property
    def terms(self) -> tuple[int, ...]:
        """The term lengths offered, in years, shortest first."""
        return tuple(sorted({b.years for b in self.brackets}))

    def brackets_for(self, years: int) -> tuple[Bracket, ...]:
        """The brackets of one term, smallest credit first."""
        return tuple(sorted((b for b in self.brackets if b.years == years), key=_by_credit))

    def bracket_for(self, credit: Decimal, years: int) -> Bracket:
        """The bracket a credit amount and term buy."""
        brackets = self.brackets_for(years)
        if not brackets:
            offered = ", ".join(str(y) for y in self.terms)
            raise UnknownTerm(
                f"there is no {years}-year term; terms offered: {offered} years",
                field="commitment.years",
            )
        if credit < self.min_purchase:
            raise BelowMinimumPurchase(
                f"the smallest commitment is {self.min_purchase} {self.currency}, got {credit}",
                field="commitment.credit",
            )
        eligible = [b for b in brackets if b.min_credit <= credit]
        if not eligible:
            raise BelowMinimumPurchase(
                f"the smallest {years}-year commitment is {brackets[0].min_credit} "
                f"{self.currency}, got {credit}",
                field="commitment.credit",
            )
        return eligible[-1]


def _by_credit(bracket: Bracket) -> Decimal:
    return bracket.min_credit


@dataclass(frozen=True, slots=True)
class CommitmentQuote:
    """What a commitment costs per year against paying as you go, at a steady usage."""

    credit: Decimal
    years: int
    bracket: Bracket
    price_per_year: Decimal
    monthly_credit: Decimal
    monthly_usage: Decimal
    monthly_overage: Decimal
    annual_usage: Decimal
    annual_overage: Decimal
    annual_cost_with_commitment: Decimal
    annual_cost_without_commitment: Decimal
    saving: Decimal  # per year; negative when the commitment costs more
    term_saving: Decimal

    @property
    def discount_percent(self) -> Decimal:
        return self.bracket.discount_percent


def price_per_year(credit: Decimal, bracket: Bracket, currency: str) -> Decimal:
    """credit * (1 - discount / 100), rounded once to the billing unit (major units)."""
    keep = EXACT.subtract(HUNDRED, bracket.discount_percent)
    return round_to_billing_unit(EXACT.divide(EXACT.multiply(credit, keep), HUNDRED), currency)


def quote_commitment(
    schedule: CommitmentSchedule, credit: Decimal, years: int, monthly_usage: Decimal
) -> CommitmentQuote:
    """Price a commitment of `credit` a year for `years`, against a steady monthly usage."""
    with localcontext(EXACT):
        return _quote_commitment(schedule, credit, years, monthly_usage)


def _quote_commitment(
    schedule: CommitmentSchedule, credit: Decimal, years: int, monthly_usage: Decimal
) -> CommitmentQuote:
    currency = schedule.currency
    bracket = schedule.bracket_for(credit, years)
    price = price_per_year(credit, bracket, currency)
    monthly_credit = divide_to_billing_unit(credit, MONTHS_PER_YEAR, currency)
    annual_usage = monthly_usage * MONTHS_PER_YEAR
    # NOTE: unused monthly credit carries forward within the term, so at a steady usage
    # the year's overage is what the year's usage exceeds the whole year's credit by.
    annual_overage = max(ZERO, annual_usage - credit)
    with_commitment = price + annual_overage
    saving = annual_usage - with_commitment
    return CommitmentQuote(
        credit=credit,
        years=years,
        bracket=bracket,
        price_per_year=price,
        monthly_credit=monthly_credit,
        monthly_usage=monthly_usage,
        monthly_overage=max(ZERO, monthly_usage - monthly_credit),
        annual_usage=annual_usage,
        annual_overage=annual_overage,
        annual_cost_with_commitment=with_commitment,
        annual_cost_without_commitment=annual_usage,
        saving=saving,
        term_saving=saving * years,
    )


@dataclass(frozen=True, slots=True)
class BreakEven:
    """Where a bracket starts to pay, against paying as you go at a steady usage.

    `annual` is exact: the price per year of the bracket's smallest commitment (its
    `min_credit`, or `min_purchase` when that is larger), in major units, a billing-unit
    amount. At a yearly pay-as-you-go spend of exactly `annual` that commitment saves
    nothing; at any spend above it, it saves (the bracket's best credit saves at least as
    much); below it every credit of the bracket costs more than paying as you go.
    `monthly` is `annual / 12` rounded once, half-up, to the currency's minor unit, for
    display: every whole-minor-unit monthly spend above `monthly` saves.
    """

    annual: Decimal
    monthly: Decimal


def break_even(schedule: CommitmentSchedule, bracket: Bracket) -> BreakEven | None:
    """The bracket's break-even spend (`BreakEven`), or None for a bracket that never
    saves: one whose smallest commitment costs its whole credit (no discount, or one that
    rounds away)."""
    floor = max(bracket.min_credit, schedule.min_purchase)
    annual = price_per_year(floor, bracket, schedule.currency)
    if annual >= floor:
        return None
    monthly = round_to_minor(ROUNDING.divide(annual, Decimal(MONTHS_PER_YEAR)), schedule.currency)
    return BreakEven(annual=annual, monthly=monthly)


@dataclass(frozen=True, slots=True)
class CommitmentOption:
    """One bracket offered to a customer, at the credit that suits their usage best.

    `outgrown`: the year's usage reaches the next bracket of the same term, and that
    bracket saves more; this one is then priced at its ceiling (just below the next
    bracket's `min_credit`), an offer nobody should take. `break_even`: see `BreakEven`.
    """

    quote: CommitmentQuote
    recommended: bool
    break_even: BreakEven | None = None
    outgrown: bool = False


def commitment_options(
    schedule: CommitmentSchedule, monthly_usage: Decimal
) -> tuple[CommitmentOption, ...]:
    """Every bracket priced at its best credit for this usage; the largest saver recommended
    (billing/pricing/recommend.py makes the same choice without quoting every bracket)."""
    with localcontext(EXACT):
        return _commitment_options(schedule, monthly_usage)


def _best(quotes: list[CommitmentQuote]) -> CommitmentQuote | None:
    best = None
    for q in quotes:
        if q.saving > 0 and (best is None or q.saving > best.saving):
            best = q
    return best


def _commitment_options(
    schedule: CommitmentSchedule, monthly_usage: Decimal
) -> tuple[CommitmentOption, ...]:
    quotes, outgrown = _best_credits(schedule, monthly_usage)
    best = _best(quotes)
    return tuple(
        CommitmentOption(q, q is best, break_even(schedule, q.bracket), past)
        for q, past in zip(quotes, outgrown, strict=True)
    )


def _best_credits(
    schedule: CommitmentSchedule, monthly_usage: Decimal
) -> tuple[list[CommitmentQuote], list[bool]]:
    """Every bracket quoted at its best credit for this usage, and whether each is outgrown."""
    quotes: list[CommitmentQuote] = []
    outgrown: list[bool] = []
    step = billing_unit(schedule.currency)
    annual = monthly_usage * MONTHS_PER_YEAR
    for years in schedule.terms:
        brackets = schedule.brackets_for(years)
        term = []
        for index, bracket in enumerate(brackets):
            # NOTE: inside a bracket the yearly cost falls until credit equals usage and
            # rises after, so the best credit is the usage, held within the bracket.
            floor = max(bracket.min_credit, schedule.min_purchase)
            credit = max(floor, annual)
            if index + 1 < len(brackets):
                credit = min(credit, brackets[index + 1].min_credit - step)
            term.append(quote_commitment(schedule, max(credit, floor), years, monthly_usage))
        for index, q in enumerate(term):
            following = term[index + 1] if index + 1 < len(term) else None
            outgrown.append(
                following is not None
                and annual >= following.bracket.min_credit
                and following.saving > q.saving
            )
        quotes.extend(term)
    return quotes, outgrown
