"""line_amounts is line_figures' subtotal and total, digit for digit (docs/money.md)."""

from decimal import Decimal as D

from hypothesis import example, given
from hypothesis import strategies as st

from billing.pricing.discounts import line_amounts, line_figures

amounts = st.builds(
    lambda n, places: D(n).scaleb(-places), st.integers(0, 10**12), st.integers(0, 14)
)
percents = st.one_of(
    st.just(D(0)),
    st.just(D("0.00")),
    st.builds(lambda n: D(n).scaleb(-2), st.integers(0, 10_000)),
)


@given(amounts, percents, st.sampled_from(["USD", "JPY", "KWD", "BHD", "IQD"]))
@example(D(0), D(0), "USD")
@example(D("0.005"), D(0), "USD")
@example(D("84.305"), D(20), "USD")
@example(D("1.235"), D("12.5"), "KWD")
def test_line_amounts_are_line_figures_digit_for_digit(amount, percent, currency):
    figures = line_figures(amount, percent, currency)
    subtotal, total = line_amounts(amount, percent, currency)
    # NOTE: str() compares the digits too (0.00 is not 0): the report prints these
    assert (str(subtotal), str(total)) == (str(figures.subtotal), str(figures.total))
