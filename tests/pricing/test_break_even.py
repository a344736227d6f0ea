"""A bracket's break-even: the pay-as-you-go spend from which committing saves money, exact
(docs/pricing-api.md, "The pricing page"); and which options the usage has outgrown."""

from decimal import Decimal as D

import pytest

from billing.catalog import load_catalog
from billing.pricing import Bracket, CommitmentSchedule, commitment_options, quote_commitment
from billing.pricing.commitments import Release, break_even
from tests.conftest import TIERS

CENT = D("0.01")
SCHEDULE = load_catalog(TIERS).schedule
assert SCHEDULE is not None
BRACKETS = [pytest.param(b, id=f"{b.years}y-{b.min_credit}") for b in SCHEDULE.brackets]


def saving_at(schedule: CommitmentSchedule, bracket: Bracket, monthly: D) -> D:
    """The option table's saving for this bracket at a steady monthly spend."""
    options = commitment_options(schedule, monthly)
    [option] = [o for o in options if o.quote.bracket == bracket]
    return option.quote.saving


@pytest.mark.parametrize(
    ("years", "min_credit", "annual", "monthly"),
    [
        (1, "3000", "2700.00", "225.00"),  # 3,000 at 10 % off; 2,700 / 12 is exact
        (2, "3000", "2550.00", "212.50"),
        (3, "3000", "2400.00", "200.00"),
        (1, "20000", "16000.00", "1333.33"),  # 1,333.333… rounds half-up down
        (3, "20000", "14000.00", "1166.67"),  # 1,166.666… rounds half-up up
        (2, "60000", "42000.00", "3500.00"),
        (1, "100000", "65000.00", "5416.67"),
        (3, "100000", "55000.00", "4583.33"),
    ],
)
def test_break_even_is_the_price_of_the_smallest_commitment(years, min_credit, annual, monthly):
    [bracket] = [b for b in SCHEDULE.brackets if (b.years, b.min_credit) == (years, D(min_credit))]
    found = break_even(SCHEDULE, bracket)
    assert found is not None
    assert (found.annual, found.monthly) == (D(annual), D(monthly))


@pytest.mark.parametrize("bracket", BRACKETS)
def test_at_the_break_even_the_saving_is_zero_and_above_it_positive(bracket):
    found = break_even(SCHEDULE, bracket)
    assert found is not None
    floor = max(bracket.min_credit, SCHEDULE.min_purchase)
    exact, cents = divmod(found.annual * 100, 12)
    if cents == 0:
        # A break-even of whole cents a month: there, exactly, nothing is saved...
        monthly = exact / 100
        assert monthly == found.monthly
        assert quote_commitment(SCHEDULE, floor, bracket.years, monthly).saving == 0
        assert saving_at(SCHEDULE, bracket, monthly) == 0
        assert saving_at(SCHEDULE, bracket, monthly - CENT) < 0
    else:
        # ...otherwise it falls between two whole cents: the one below costs more, the one
        # above saves, and the displayed figure is the nearer of the two.
        below, above = exact / 100, exact / 100 + CENT
        assert saving_at(SCHEDULE, bracket, below) < 0
        assert saving_at(SCHEDULE, bracket, above) > 0
        assert found.monthly == (below if cents * 2 < 12 else above)
    # Above the displayed monthly figure every whole cent saves.
    assert saving_at(SCHEDULE, bracket, found.monthly + CENT) > 0
    assert saving_at(SCHEDULE, bracket, found.monthly * 4) > 0
    assert saving_at(SCHEDULE, bracket, D(0)) < 0


def test_the_displayed_break_even_is_rounded_half_up_from_the_exact_one():
    for bracket in SCHEDULE.brackets:
        found = break_even(SCHEDULE, bracket)
        assert found is not None
        exact = found.annual / 12
        assert abs(found.monthly - exact) <= D("0.005")
        assert found.monthly == exact.quantize(CENT, rounding="ROUND_HALF_UP")


def test_min_purchase_above_a_bracket_minimum_sets_the_break_even():
    schedule = CommitmentSchedule(
        "USD", D(5000), Release.MONTHLY, D(0), 0, (Bracket(1, D(1000), D(10)),)
    )
    found = break_even(schedule, schedule.brackets[0])
    assert found is not None
    assert (found.annual, found.monthly) == (D("4500.00"), D("375.00"))


def test_a_bracket_without_a_discount_never_breaks_even():
    schedule = CommitmentSchedule(
        "USD", D(1000), Release.MONTHLY, D(0), 0, (Bracket(1, D(1000), D(0)),)
    )
    assert break_even(schedule, schedule.brackets[0]) is None
    [option] = commitment_options(schedule, D(5000))
    assert option.break_even is None
    assert option.quote.saving <= 0


def test_options_carry_their_break_even():
    for option in commitment_options(SCHEDULE, D("496.00")):
        assert option.break_even == break_even(SCHEDULE, option.quote.bracket)


def test_a_bracket_the_usage_has_outgrown_is_marked_and_never_recommended():
    options = commitment_options(SCHEDULE, D("2500.00"))  # 30,000 a year
    by_bracket = {(o.quote.years, o.quote.bracket.min_credit): o for o in options}
    small = by_bracket[(1, D(3000))]
    assert small.quote.credit == D("19999.99")  # held just below the next bracket
    assert small.outgrown
    assert by_bracket[(1, D(20000))].quote.saving > small.quote.saving
    assert not by_bracket[(1, D(20000))].outgrown  # 30,000 is inside it
    assert not by_bracket[(1, D(60000))].outgrown  # not reached
    assert not by_bracket[(1, D(100000))].outgrown  # the last bracket has no next
    assert not any(o.recommended and o.outgrown for o in options)


def test_nothing_is_outgrown_below_the_second_bracket():
    options = commitment_options(SCHEDULE, D("496.00"))
    assert not any(o.outgrown for o in options)
