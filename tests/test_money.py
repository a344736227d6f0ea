from decimal import Decimal as D

import pytest

from billing.money import (
    Money,
    MoneyTypeError,
    divide_to_billing_unit,
    format_amount,
    format_exact,
    format_quantity,
    round_to_billing_unit,
    round_to_minor,
    to_decimal,
    to_minor_units,
)


@pytest.mark.parametrize(
    ("amount", "currency", "rounded"),
    [
        ("84.305", "USD", "84.31"),  # half-up, not banker's
        ("84.304999", "USD", "84.30"),
        ("0.005", "USD", "0.01"),
        ("1234.5", "JPY", "1235"),
        ("1.0005", "KWD", "1.001"),
        ("-0.005", "USD", "-0.01"),
    ],
)
def test_round_to_minor_is_half_up_to_the_currency_minor_unit(amount, currency, rounded):
    assert str(round_to_minor(D(amount), currency)) == rounded


@pytest.mark.parametrize(
    ("amount", "currency", "rounded"),
    [
        ("84.305", "USD", "84.31"),  # the minor unit, as round_to_minor
        ("1234.5", "JPY", "1235"),
        ("1234.5", "ISK", "1235"),
        ("1.235", "KWD", "1.24"),  # hundredths: Stripe carries no odd thousandths
        ("1.2349", "BHD", "1.23"),
        ("-0.005", "OMR", "-0.01"),
        ("1.0005", "IQD", "1.001"),  # not a Stripe currency: its ISO minor unit
    ],
)
def test_round_to_billing_unit_is_half_up_to_what_stripe_can_carry(amount, currency, rounded):
    assert str(round_to_billing_unit(D(amount), currency)) == rounded


def test_a_twelfth_is_rounded_to_the_billing_unit():
    assert divide_to_billing_unit(D(100), 12, "KWD") == D("8.33")
    assert divide_to_billing_unit(D(100), 12, "USD") == D("8.33")
    assert format_amount(D("1.24"), "KWD") == "1.240"  # shown with KWD's three digits


def test_minor_units_round_rather_than_truncate():
    assert to_minor_units(D("19.999"), "USD") == 2000
    assert to_minor_units(D("19.994"), "USD") == 1999


@pytest.mark.parametrize("value", [0.1, True, None, [1]])
def test_floats_and_other_types_are_refused(value):
    with pytest.raises(MoneyTypeError):
        to_decimal(value)


def test_money_refuses_mixed_currencies_and_floats():
    with pytest.raises(ValueError, match="USD with EUR"):
        Money.of("1", "USD") + Money.of("1", "EUR")
    with pytest.raises(MoneyTypeError):
        Money(1.5, "USD")  # type: ignore[arg-type]
    assert (Money.of("1.10", "USD") + Money.of(2, "USD")).amount == D("3.10")


def test_formatting_keeps_exactness_without_exponents():
    assert format_exact(D("84.3000000"), "USD") == "84.30"
    assert format_exact(D("0.0000343"), "USD") == "0.0000343"
    assert format_exact(D("1E+3"), "USD") == "1000.00"
    assert format_quantity(D("3E+6")) == "3000000"
    assert format_quantity(D("1.50")) == "1.5"
