"""Properties of the charge models, checked against an independent Fraction pricer."""

from decimal import Decimal as D
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from billing.pricing import Model, build_quote, charge
from tests.pricing.strategies import plans, reference_charge

quantities = st.integers(0, 10**7)


@given(plans(), quantities)
def test_charge_agrees_with_an_independent_exact_pricer(plan, quantity):
    assert Fraction(charge(plan, D(quantity)).amount) == reference_charge(plan, quantity)


@given(plans(models=(Model.GRADUATED, Model.PACKAGE)), quantities, quantities)
def test_graduated_and_package_cost_is_monotone_in_quantity(plan, a, b):
    low, high = sorted((a, b))
    assert charge(plan, D(low)).amount <= charge(plan, D(high)).amount


@given(plans(models=(Model.VOLUME,)), quantities, quantities)
def test_volume_cost_is_monotone_within_a_tier(plan, a, b):
    low, high = sorted((a, b))
    low_part, high_part = charge(plan, D(low)).tiers, charge(plan, D(high)).tiers
    if low_part and high_part and low_part[0].lower == high_part[0].lower:
        assert charge(plan, D(low)).amount <= charge(plan, D(high)).amount


@given(plans(models=(Model.GRADUATED, Model.PACKAGE)), quantities)
def test_graduated_cost_is_the_sum_of_its_tier_costs(plan, quantity):
    result = charge(plan, D(quantity))
    assert result.amount == sum((t.amount for t in result.tiers), D(0))
    assert sum((t.quantity for t in result.tiers), D(0)) == result.priced_quantity
    for part in result.tiers:
        assert part.amount == part.unit_price * part.quantity + part.flat_fee
        assert part.quantity > 0


@given(
    st.lists(st.tuples(plans(), quantities), min_size=1, max_size=6),
    st.integers(0, 10000).map(lambda bp: D(bp).scaleb(-2)),
)
def test_every_total_equals_the_sum_of_its_rounded_lines(entries, percent):
    plans_by_key = {f"p{i}": plan for i, (plan, _) in enumerate(entries)}
    usage = {f"p{i}": D(q) for i, (_, q) in enumerate(entries)}
    quote = build_quote(plans=plans_by_key, currency="USD", usage=usage, discount_percent=percent)
    assert quote.subtotal == sum(line.subtotal for line in quote.lines)
    assert quote.discount == sum(line.discount for line in quote.lines)
    assert quote.total == sum(line.total for line in quote.lines)
    assert quote.total == quote.subtotal - quote.discount
    for line in quote.lines:
        assert line.subtotal == line.subtotal.quantize(D("0.01"))
        assert line.discount == line.discount.quantize(D("0.01"))
        assert line.total == line.subtotal - line.discount


@given(plan=plans(), quantity=st.integers(min_value=0, max_value=10**7))
def test_charge_amount_is_the_charge_without_its_breakdown(plan, quantity):
    """`charge_amount` (the backtest's fast path) equals `charge(...).amount` exactly, for
    every model, and the reference arithmetic."""
    from billing.pricing.charge import charge_amount

    amount = charge_amount(plan, D(quantity))
    assert amount == charge(plan, D(quantity)).amount
    assert Fraction(amount) == reference_charge(plan, quantity)
