"""Every model at 0, inside the free tier, exactly at each up_to, one past it, and at 10^12."""

from decimal import Decimal as D

import pytest

from billing.pricing import Model, PricePlan, Tier, charge
from tests.pricing.plans import ANALYTICS, GRADUATED, PACKAGE, VOLUME


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [
        (0, "0"),
        (50, "0"),
        (100, "0"),  # exactly at the free tier's up_to
        (101, "5.10"),  # one past: first paid unit plus the tier's flat fee
        (1000, "95.00"),
        (1001, "95.05"),
        (10**12, "50000000045.00"),
    ],
)
def test_graduated_prices_each_unit_in_its_tier_plus_flat_fees_reached(quantity, amount):
    assert charge(GRADUATED, D(quantity)).amount == D(amount)


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [
        (0, "0"),
        (1, "1"),
        (100, "100"),
        (101, "60.50"),  # every unit at 0.50, plus the tier's flat fee
        (1000, "510"),
        (1001, "250.25"),
        (10**12, "250000000000"),
    ],
)
def test_volume_prices_every_unit_at_the_tier_containing_the_quantity(quantity, amount):
    assert charge(VOLUME, D(quantity)).amount == D(amount)


@pytest.mark.parametrize(
    ("quantity", "packages", "amount"),
    [
        (0, 0, "0"),
        (1, 1, "0"),
        (1000, 1, "0"),
        (1001, 2, "2.00"),
        (10000, 10, "18.00"),
        (10001, 11, "19.50"),
        (10**12, 10**9, "1500000003.00"),
    ],
)
def test_package_rounds_up_to_whole_packages_priced_graduated(quantity, packages, amount):
    result = charge(PACKAGE, D(quantity))
    assert result.priced_quantity == packages
    assert result.amount == D(amount)


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [
        (0, "0"),
        (999_999, "0"),
        (1_000_000, "0"),
        (1_000_001, "0.00005"),
        (2_000_000, "50"),
        (2_000_001, "50.0000343"),
        (3_000_000, "84.30"),
        (15_000_000, "495.90"),
        (15_000_001, "495.900009"),
        (10**12, "9000360.90"),
    ],
)
def test_design_example_table(quantity, amount):
    assert charge(ANALYTICS, D(quantity)).amount == D(amount)


def test_breakdown_shows_the_working_tier_by_tier():
    result = charge(ANALYTICS, D(3_000_000))
    rows = [(t.lower, t.up_to, t.quantity, t.unit_price, t.amount) for t in result.tiers]
    assert rows == [
        (0, 1_000_000, 1_000_000, 0, 0),
        (1_000_000, 2_000_000, 1_000_000, D("0.00005"), D(50)),
        (2_000_000, 15_000_000, 1_000_000, D("0.0000343"), D("34.30")),
    ]


def test_volume_breakdown_names_the_tier_applied():
    (part,) = charge(VOLUME, D(500)).tiers
    assert (part.lower, part.up_to, part.quantity, part.amount) == (100, 1000, 500, 260)


def test_fractional_quantities_are_priced_exactly():
    assert charge(GRADUATED, D("100.5")).amount == D("5.05")
    assert charge(PACKAGE, D("1000.000000000001")).priced_quantity == 2


def test_twelve_decimal_prices_on_huge_quantities_stay_exact():
    plan = PricePlan(Model.GRADUATED, (Tier(None, D("0.000000000001")),), "USD")
    assert charge(plan, D("999999999999999.999999999999")).amount == D(
        "999.999999999999999999999999"
    )


def test_a_flat_fee_on_the_free_tier_is_charged_once_any_unit_is_used():
    plan = PricePlan(Model.GRADUATED, (Tier(D(10), D(0), D(20)), Tier(None, D(1))), "USD")
    assert charge(plan, D(0)).amount == 0
    assert charge(plan, D(1)).amount == 20
    assert charge(plan, D(11)).amount == 21


def test_negative_quantity_is_refused():
    with pytest.raises(ValueError, match="non-negative"):
        charge(GRADUATED, D(-1))


@pytest.mark.parametrize(
    "tiers",
    [
        (),
        (Tier(D(10), D(1)),),  # no unbounded last tier
        (Tier(D(10), D(1)), Tier(D(10), D(1)), Tier(None, D(1))),  # not increasing
        (Tier(None, D(-1)),),
        (Tier(D("1.5"), D(1)), Tier(None, D(1))),  # up_to is whole units
    ],
)
def test_price_plans_refuse_broken_tables(tiers):
    with pytest.raises(ValueError, match=r"tier|up_to|non-negative"):
        PricePlan(Model.GRADUATED, tiers, "USD")


def test_free_allowance_is_the_zero_priced_start():
    assert GRADUATED.free_allowance == 100
    assert VOLUME.free_allowance == 0
    assert PACKAGE.free_allowance == 1000
    assert PricePlan(Model.GRADUATED, (Tier(None, D(0)),), "USD").free_allowance is None


def test_the_largest_prices_and_quantities_allowed_are_summed_without_rounding():
    from billing.pricing import build_quote

    price = D("999999999.999999999999")  # the catalogue's largest price, 12 decimals
    plan = PricePlan(Model.GRADUATED, (Tier(None, price),), "USD")
    quantity = D("999999999999999.999999999999")
    quote = build_quote(
        plans={"a": plan, "b": plan, "c": plan},
        currency="USD",
        usage={"a": quantity, "b": quantity, "c": quantity},
        discount_percent=D("12.3456"),
    )
    exact = price * quantity  # Python's context is irrelevant: compare with exact Fractions
    from fractions import Fraction

    assert Fraction(quote.lines[0].charge.amount) == Fraction(price) * Fraction(quantity)
    assert quote.total == sum(line.total for line in quote.lines)
    assert quote.subtotal == 3 * quote.lines[0].subtotal
    assert exact
