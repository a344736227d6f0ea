"""Cap inversion: q_max is exact, never over the cap, and one more unit would be."""

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.pricing import Model, PricePlan, Tier, charge, max_quantity_within_cap
from tests.pricing.plans import ANALYTICS, GRADUATED, PACKAGE, VOLUME
from tests.pricing.strategies import line_total, plans

caps = st.integers(0, 10**6).map(lambda cents: D(cents).scaleb(-2))
percents = st.one_of(st.just(D(0)), st.integers(0, 9999).map(lambda bp: D(bp).scaleb(-2)))


def within(plan: PricePlan, quantity: D, cap: D, percent: D) -> bool:
    amount = charge(plan, quantity).amount
    exact_ok = amount * (100 - percent) / 100 <= cap
    return exact_ok and line_total(amount, percent) <= cap


@given(plans(max_width=10**6), caps, percents)
def test_rounded_total_at_q_max_is_within_the_cap_and_one_more_unit_is_not(plan, cap, percent):
    q_max = max_quantity_within_cap(plan, cap, percent)
    if q_max is None:  # the cap never binds: the price reaches zero
        assert charge(plan, D(10**15)).amount * (100 - percent) <= cap * 100
        return
    assert q_max == q_max.to_integral_value()
    assert within(plan, q_max, cap, percent)
    assert not within(plan, q_max + 1, cap, percent)


@settings(max_examples=60)
@given(plans(max_width=40), st.integers(0, 5000).map(lambda c: D(c).scaleb(-2)), percents)
def test_q_max_matches_a_unit_by_unit_search_on_small_plans(plan, cap, percent):
    limit = 400
    expected = None
    for q in range(limit + 1):
        if not within(plan, D(q), cap, percent):
            expected = D(q - 1)
            break
    q_max = max_quantity_within_cap(plan, cap, percent)
    if expected is None:
        assert q_max is None or q_max >= limit
    else:
        assert q_max == expected


@pytest.mark.parametrize(
    ("plan", "cap", "percent", "q_max"),
    [
        (ANALYTICS, "0", "0", 1_000_000),  # a zero cap keeps only the free allowance
        (ANALYTICS, "50", "0", 2_000_000),
        (ANALYTICS, "84.30", "0", 3_000_000),
        # docs/spend-caps.md: with 20 % off, a $200 cap buys $250 of list-price usage.
        (ANALYTICS, "200", "20", 7_830_903),
        (GRADUATED, "5.09", "0", 100),  # the flat fee makes the first paid unit cost 5.10
        (GRADUATED, "5.10", "0", 101),
        (VOLUME, "100", "0", 180),  # 101..180 units at 0.50 + 10 stay within 100
        (VOLUME, "60", "0", 60),  # 61 units would cost 61
        (PACKAGE, "2", "0", 2000),  # two whole packages
        (PACKAGE, "1.99", "0", 1000),
    ],
)
def test_known_cap_inversions(plan, cap, percent, q_max):
    assert max_quantity_within_cap(plan, D(cap), D(percent)) == q_max


def test_rounding_steps_the_limit_down_where_half_a_cent_would_round_up():
    # 0.003 a unit: 3 units cost 0.009, which rounds to 0.01, above a 0.00 cap...
    plan = PricePlan(Model.GRADUATED, (Tier(None, D("0.003")),), "USD")
    assert max_quantity_within_cap(plan, D("0.01"), D(0)) == 3  # 0.009 -> 0.01 <= 0.01
    assert max_quantity_within_cap(plan, D("0.02"), D(0)) == 6  # 0.018 -> 0.02
    # ...and 0.0049 rounds to 0.00 but the exact charge is already over a zero cap.
    assert max_quantity_within_cap(plan, D(0), D(0)) == 0


def test_a_rounded_discount_never_lets_the_total_exceed_the_cap():
    # 33.33 % off: the exact budget is cap * 1.4999..., rounding picks the last safe cent.
    plan = PricePlan(Model.GRADUATED, (Tier(None, D("0.01")),), "USD")
    q_max = max_quantity_within_cap(plan, D("10.00"), D("33.33"))
    assert line_total(charge(plan, q_max).amount, D("33.33")) <= D("10.00")
    assert line_total(charge(plan, q_max + 1).amount, D("33.33")) > D("10.00") or (
        charge(plan, q_max + 1).amount * (100 - D("33.33")) / 100 > D("10.00")
    )


def test_free_forever_and_full_discount_mean_no_limit():
    free = PricePlan(Model.GRADUATED, (Tier(None, D(0)),), "USD")
    assert max_quantity_within_cap(free, D(0)) is None
    assert max_quantity_within_cap(ANALYTICS, D(10), D(100)) is None


def test_volume_cap_stops_at_the_first_quantity_over_it_even_if_later_ones_are_cheaper():
    # 100 units cost 100; 101 cost 60.50. Usage accrues unit by unit, so a 80.00 cap stops
    # at 80 units and never "jumps" to the cheaper tier.
    assert max_quantity_within_cap(VOLUME, D(80)) == 80


@pytest.mark.parametrize(
    ("cap", "percent", "reason"),
    [("-1", "0", "non-negative"), ("10", "-1", "between 0 and 100"), ("10", "101", "between")],
)
def test_bad_caps_and_discounts_are_refused(cap, percent, reason):
    with pytest.raises(ValueError, match=reason):
        max_quantity_within_cap(ANALYTICS, D(cap), D(percent))


@given(
    st.integers(0, 10**9).map(lambda c: D(c).scaleb(-2)),
    st.integers(0, 1_000_000).map(lambda bp: D(bp).scaleb(-4)),
)
def test_the_closed_form_rounded_limit_is_the_largest_cent_within_the_cap(cap, percent):
    from billing.pricing.caps import _largest_rounded_subtotal
    from billing.pricing.discounts import discount_amount

    if percent >= 100:
        return
    subtotal = _largest_rounded_subtotal(cap, percent, "USD")

    def total(s):
        return s - discount_amount(s, percent, "USD")

    assert total(subtotal) <= cap
    assert total(subtotal + D("0.01")) > cap


def test_a_near_total_discount_with_tiny_caps_is_answered_at_once():
    # Once a public request could make the server step one cent at a time (~4 s).
    plan = PricePlan(Model.GRADUATED, (Tier(None, D("0.000001")),), "USD")
    # The exact discounted charge q x 0.000001 x 0.000001 reaches the 0.01 cap at 10^10.
    assert max_quantity_within_cap(plan, D("0.01"), D("99.9999")) == 10_000_000_000
