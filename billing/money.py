"""Exact money: Decimal amounts, ISO 4217 minor units, one rounding rule.

Every amount in the engine is a `Decimal` built from a string or an int. Floats are
refused at the boundary (`to_decimal`), and rounding is half-up, once, to a step of the
currency: `round_to_minor` to its ISO 4217 minor unit, and `round_to_billing_unit` to its
**billing unit**, the step every amount we issue (invoice lines, discounts, commitment
prices, caps, credits) is rounded to so that Stripe can carry it exactly: the minor unit,
except for the three-decimal currencies Stripe takes only in whole hundredths (0.010 KWD
steps; https://docs.stripe.com/currencies#three-decimal; docs/money.md, "Billing unit").
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

# ISO 4217 minor-unit digits. A currency missing here is refused by the catalog.
_TWO = """AED ARS AUD BDT BGN BRL CAD CHF CNY COP CZK DKK EGP EUR GBP GEL HKD HUF IDR ILS INR
KES KZT MAD MXN MYR NGN NOK NZD PEN PHP PKR PLN QAR RON RSD SAR SEK SGD THB TRY TWD UAH
USD UYU ZAR"""
_ZERO = "CLP ISK JPY KRW PYG UGX VND XAF XOF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_TWO.split(), 2),
    **dict.fromkeys(_ZERO.split(), 0),
    **dict.fromkeys(_THREE.split(), 3),
}

# Arithmetic context for exact work: enough digits for 10^15 units at 12-decimal prices,
# and any rounding at all raises (Inexact) instead of passing silently.
EXACT = Context(
    prec=80,
    rounding=ROUND_HALF_UP,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
)
# The one context that is allowed to round: half-up, used by round_to_minor and divide.
ROUNDING = Context(
    prec=80,
    rounding=ROUND_HALF_UP,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)

# Three-decimal currencies that Stripe carries only when the last of the three digits is 0
# (https://docs.stripe.com/currencies#three-decimal): amounts we issue in them are rounded
# to 0.01. IQD and LYD are three-decimal too but Stripe has neither (stripe_sync/amounts.py
# refuses them), so they keep their ISO minor unit.
_BILLED_IN_HUNDREDTHS = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])
# Decimal digits of each currency's billing unit (docs/money.md, "Billing unit").
BILLING_DIGITS: dict[str, int] = {
    code: 2 if code in _BILLED_IN_HUNDREDTHS else digits for code, digits in MINOR_UNITS.items()
}

ZERO = Decimal(0)
HUNDRED = Decimal(100)


class MoneyTypeError(TypeError):
    """A float (or another non-exact type) reached a place that takes exact amounts."""


def to_decimal(value: object) -> Decimal:
    """Convert a str, int or Decimal to Decimal exactly; refuse floats and booleans."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (bool, float)):  # float-ok: refuses floats
        raise MoneyTypeError(f"exact amounts are built from strings, not {type(value).__name__}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        return Decimal(value.strip())
    raise MoneyTypeError(f"cannot make an exact amount from {type(value).__name__}")


def minor_digits(currency: str) -> int:
    """Number of minor-unit digits of an ISO 4217 currency (USD 2, JPY 0, KWD 3)."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise ValueError(f"unknown currency {currency!r}") from None


_MINOR_UNIT = {code: Decimal(1).scaleb(-digits) for code, digits in MINOR_UNITS.items()}


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of a currency: Decimal('0.01') for USD, Decimal('1') for JPY."""
    try:
        return _MINOR_UNIT[currency]
    except KeyError:
        raise ValueError(f"unknown currency {currency!r}") from None


def round_to_minor(amount: Decimal, currency: str) -> Decimal:
    """Round an exact amount once, half-up, to the currency's minor unit."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP, context=ROUNDING)


def billing_digits(currency: str) -> int:
    """Decimal digits of the currency's billing unit: its minor digits, but 2 for the
    three-decimal currencies Stripe carries in hundredths (KWD 2, USD 2, JPY 0)."""
    try:
        return BILLING_DIGITS[currency]
    except KeyError:
        raise ValueError(f"unknown currency {currency!r}") from None


_BILLING_UNIT = {code: Decimal(1).scaleb(-digits) for code, digits in BILLING_DIGITS.items()}


def billing_unit(currency: str) -> Decimal:
    """The step, in major units, every amount we issue is rounded to: Decimal('0.01') for USD
    and for KWD (Stripe takes no odd thousandths, docs/money.md), Decimal('1') for JPY."""
    try:
        return _BILLING_UNIT[currency]
    except KeyError:
        raise ValueError(f"unknown currency {currency!r}") from None


def round_to_billing_unit(amount: Decimal, currency: str) -> Decimal:
    """Round an exact amount (major units) once, half-up, to the currency's billing unit:
    how an invoice line, a discount or a commitment price is rounded at issue
    (1.235 KWD -> 1.24; 84.305 USD -> 84.31). The same as `round_to_minor` for every
    currency but the three-decimal ones Stripe carries in hundredths."""
    return amount.quantize(billing_unit(currency), rounding=ROUND_HALF_UP, context=ROUNDING)


def divide_to_billing_unit(amount: Decimal, divisor: int, currency: str) -> Decimal:
    """amount / divisor rounded once, half-up, to the billing unit (a monthly twelfth)."""
    # NOTE: 80 significant digits before the final quantize cannot move a half-up decision
    # for amounts in minor units divided by small integers.
    return round_to_billing_unit(ROUNDING.divide(amount, Decimal(divisor)), currency)


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Integer minor units of an already-rounded amount (never truncates: rounds first)."""
    rounded = round_to_minor(amount, currency)
    return int(rounded.scaleb(minor_digits(currency), context=EXACT))


def fraction_digits(value: Decimal) -> int:
    """How many digits a finite Decimal has after the point, ignoring trailing zeros."""
    # NOTE: read from the digit tuple, not via normalize(): no context, so no value
    # (however many digits, however small its exponent) can trap or round here.
    _sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"{value} is not a finite number")
    end = len(digits)
    while end > 1 and digits[end - 1] == 0:
        end -= 1
        exponent += 1
    return 0 if digits == (0,) else max(0, -exponent)


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency; arithmetic refuses to mix currencies."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise MoneyTypeError(f"Money.amount must be Decimal, got {type(self.amount).__name__}")
        minor_digits(self.currency)

    @classmethod
    def of(cls, value: object, currency: str) -> Money:
        """Build Money from a str, int or Decimal."""
        return cls(to_decimal(value), currency)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise MoneyTypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(EXACT.add(self.amount, other.amount), self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(EXACT.subtract(self.amount, other.amount), self.currency)

    def rounded(self) -> Money:
        """This amount rounded half-up to the minor unit."""
        return Money(round_to_minor(self.amount, self.currency), self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def format_amount(amount: Decimal, currency: str) -> str:
    """Render a rounded amount with exactly the currency's minor digits ("84.30")."""
    return str(round_to_minor(amount, currency))


def display_amount(amount: Decimal, currency: str) -> str:
    """An amount for people: rounded half-up to the currency's minor unit, digits grouped,
    the currency after it ("1,234.50 USD", "1,235 JPY"). The one display format of money in
    messages, pages and PDFs; the API sends `format_amount`'s plain text instead."""
    text = format_amount(amount, currency)
    whole, dot, fraction = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}{dot}{fraction} {currency}"


def format_quantity(quantity: Decimal) -> str:
    """A quantity as plain text without exponent or trailing zeros ("3000000", "1.5")."""
    text = str(quantity)
    if "E" in text:
        text = format(quantity, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def group_quantity(quantity: Decimal) -> str:
    """A quantity for people: digits grouped, no trailing zeros ("1,200,000", "2.5")."""
    text = format_quantity(quantity)
    whole, dot, fraction = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}{dot}{fraction}"


def format_exact(amount: Decimal, currency: str) -> str:
    """An exact amount as plain text, trailing zeros trimmed to the minor digits ("0.0000343")."""
    text = format_quantity(amount)
    digits = minor_digits(currency)
    whole, _, fraction = text.partition(".")
    if len(fraction) >= digits:
        return text
    return f"{whole}.{fraction.ljust(digits, '0')}" if digits else whole
