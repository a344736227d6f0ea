"""The largest-remainder split of a rounded line into parts (docs/invoicing.md,
"Breakdowns"): exact tables, then properties for random data."""

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.pricing.allocate import largest_remainder

CENT = D("0.01")


@pytest.mark.parametrize(
    ("amount", "weights", "quantum", "parts"),
    [
        (D("10.00"), [D(1), D(1), D(1)], CENT, [D("3.34"), D("3.33"), D("3.33")]),  # tie: first
        (D("10.00"), [D(1), D(2), D(3)], CENT, [D("1.67"), D("3.33"), D("5.00")]),
        (D("0.05"), [D(1), D(1), D(1), D(1)], CENT, [D("0.02"), D("0.01"), D("0.01"), D("0.01")]),
        (D("84.30"), [D(2_000_000), D(1_000_000)], CENT, [D("56.20"), D("28.10")]),
        (D("1000"), [D(1), D(2)], D(1), [D(333), D(667)]),  # JPY: whole yen
        (D("-3.00"), [D(1), D(1)], CENT, [D("-1.50"), D("-1.50")]),
        (D("0.01"), [D(0), D(5)], CENT, [D("0.00"), D("0.01")]),
    ],
)
def test_splits_by_the_rule(amount, weights, quantum, parts):
    assert largest_remainder(amount, weights, quantum) == parts


@pytest.mark.parametrize(
    ("amount", "weights", "message"),
    [
        (D("1.00"), [D(0), D(0)], "at least one weight above 0"),
        (D("1.00"), [D(-1), D(2)], "none below 0"),
        (D("1.005"), [D(1)], "not a multiple"),
    ],
)
def test_refuses_what_it_cannot_split(amount, weights, message):
    with pytest.raises(ValueError, match=message):
        largest_remainder(amount, weights, CENT)


amounts = st.integers(-(10**9), 10**9).map(lambda cents: D(cents) / 100)
weights = st.lists(
    st.decimals(min_value=0, max_value=10**12, places=6, allow_nan=False), min_size=1, max_size=40
).filter(lambda ws: sum(ws) > 0)


@given(amount=amounts, weights=weights)
def test_parts_sum_to_the_line_to_the_cent_and_stay_within_a_cent_of_their_share(amount, weights):
    parts = largest_remainder(amount, weights, CENT)
    assert sum(parts, D(0)) == amount
    assert all(p == p.quantize(CENT) for p in parts)
    whole = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - amount * weight / whole) < CENT
