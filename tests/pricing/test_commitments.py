"""Bracket choice and the arithmetic of a prepaid commitment year (docs/discounts.md)."""

from decimal import Decimal as D

import pytest

from billing.errors import BelowMinimumPurchase, UnknownTerm
from billing.pricing import Bracket, CommitmentSchedule, commitment_options, quote_commitment
from billing.pricing.commitments import Release

# The schedule of the worked scenario, for one year.
SCHEDULE = CommitmentSchedule(
    currency="USD",
    min_purchase=D(3000),
    release=Release.MONTHLY,
    rollover_percent=D(50),
    topup_months=3,
    brackets=(
        Bracket(1, D(3000), D(10)),
        Bracket(1, D(20000), D(20)),
        Bracket(1, D(60000), D(25)),
        Bracket(1, D(100000), D(35)),
        Bracket(3, D(3000), D(20)),
    ),
)


@pytest.mark.parametrize(
    ("credit", "years", "percent"),
    [
        ("3000", 1, "10"),
        ("19999.99", 1, "10"),
        ("20000", 1, "20"),
        ("30000", 1, "20"),
        ("60000", 1, "25"),
        ("1000000", 1, "35"),
        ("5000", 3, "20"),
    ],
)
def test_bracket_is_the_highest_min_credit_not_above_the_amount(credit, years, percent):
    assert SCHEDULE.bracket_for(D(credit), years).discount_percent == D(percent)


def test_scenario_thirty_thousand_for_one_year_costs_twenty_four_thousand():
    quote = quote_commitment(SCHEDULE, D(30000), 1, monthly_usage=D("1375.90"))
    assert quote.price_per_year == D("24000.00")
    assert quote.monthly_credit == D("2500.00")
    assert quote.discount_percent == D(20)


def test_overage_and_saving_at_a_steady_usage():
    quote = quote_commitment(SCHEDULE, D(30000), 1, monthly_usage=D("3000.00"))
    assert quote.annual_usage == D("36000.00")
    assert quote.annual_overage == D("6000.00")
    assert quote.monthly_overage == D("500.00")
    assert quote.annual_cost_with_commitment == D("30000.00")
    assert quote.annual_cost_without_commitment == D("36000.00")
    assert quote.saving == D("6000.00")
    assert quote.annual_cost_with_commitment == quote.price_per_year + quote.annual_overage


def test_price_per_year_is_rounded_once_to_the_cent():
    quote = quote_commitment(SCHEDULE, D("3333.33"), 1, monthly_usage=D(0))
    assert quote.price_per_year == D("3000.00")  # 2999.997 rounds half-up
    assert quote.monthly_credit == D("277.78")  # 277.7775


def test_a_commitment_larger_than_usage_shows_a_negative_saving():
    quote = quote_commitment(SCHEDULE, D(30000), 1, monthly_usage=D(100))
    assert quote.saving == D(1200) - D(24000)


def test_unknown_term_and_too_small_purchases_are_refused_with_the_field():
    with pytest.raises(UnknownTerm) as unknown:
        SCHEDULE.bracket_for(D(5000), 2)
    assert unknown.value.field == "commitment.years"
    assert "1, 3" in unknown.value.message
    with pytest.raises(BelowMinimumPurchase) as small:
        SCHEDULE.bracket_for(D("2999.99"), 1)
    assert small.value.field == "commitment.credit"


def test_options_price_each_bracket_at_the_credit_that_suits_the_usage():
    options = commitment_options(SCHEDULE, monthly_usage=D("2500.00"))  # 30,000 a year
    by_bracket = {(o.quote.years, o.quote.bracket.min_credit): o for o in options}
    assert len(options) == len(SCHEDULE.brackets)
    # Within 20,000..59,999.99 the best credit is the year's usage itself.
    assert by_bracket[(1, D(20000))].quote.credit == D("30000.00")
    # The 3,000 bracket tops out just below the next one.
    assert by_bracket[(1, D(3000))].quote.credit == D("19999.99")
    # Above usage, a bracket is priced at its minimum.
    assert by_bracket[(1, D(60000))].quote.credit == D(60000)
    recommended = [o for o in options if o.recommended]
    assert len(recommended) == 1
    best = max(options, key=lambda o: o.quote.saving)
    assert recommended[0] is best
    assert best.quote.saving == max(o.quote.saving for o in options)


def test_no_option_is_recommended_when_none_saves():
    options = commitment_options(SCHEDULE, monthly_usage=D(10))
    assert not any(o.recommended for o in options)
