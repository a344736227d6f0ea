"""Stripe's amount rules in one place: our exact amount (major units) to the integer Stripe takes.

Stripe's API takes every amount as an integer in the currency's smallest unit *as Stripe
defines it*, which is not always ISO 4217's (https://docs.stripe.com/currencies):

- **two-decimal** (USD, EUR, ...): cents, 12.34 USD -> 1234;
- **zero-decimal** (BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF):
  whole units, 1234 JPY -> 1234 (https://docs.stripe.com/currencies#zero-decimal);
- **ISK**: zero-decimal, but for backwards compatibility the API takes it with two decimals
  that must be zero, so the integer is a multiple of 100: 1234 ISK -> 123400
  (https://docs.stripe.com/currencies#special-cases);
- **three-decimal** (BHD JOD KWD OMR TND): thousandths whose last digit must be 0, so only
  whole hundredths can be sent: 1.24 KWD -> 1240, and 1.235 KWD cannot be sent
  (https://docs.stripe.com/currencies#three-decimal);
- **HUF and TWD** are two-decimal for charges (invoices) and zero-decimal only for payouts,
  which this service never makes: they are sent as two-decimal, nothing else applies
  (https://docs.stripe.com/currencies#special-cases).

Amounts are never rounded here: an amount Stripe cannot carry is refused with
`StripeAmountError`. Our invoices are rounded once, at issue, to each currency's billing
unit (billing/money.py, `billing_unit`), which Stripe carries exactly, so the refusal can
only mean a bug or a currency Stripe does not have (IQD, LYD). docs/money.md ("Billing
unit") and docs/stripe.md ("Amounts") say the same with examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.money import EXACT, MINOR_UNITS

# Stripe's presentment currencies (https://docs.stripe.com/currencies#presentment-currencies).
_PRESENTMENT = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BWP
BYN BZD CAD CDF CHF CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL
GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR ISK JMD JOD JPY KES KGS KHR KMF KRW KWD
KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MUR MVR MWK MXN MYR MZN NAD NGN
NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SEK SGD
SHP SLE SOS SRD STD SZL THB TJS TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VND VUV WST
XAF XCD XOF XPF YER ZAR ZMW"""
STRIPE_CURRENCIES = frozenset(_PRESENTMENT.split())
_ZERO_DECIMAL = "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF"
ZERO_DECIMAL = frozenset(_ZERO_DECIMAL.split())
THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])


class StripeAmountError(ValueError):
    """An amount Stripe cannot carry exactly, or a currency Stripe does not have."""


@dataclass(frozen=True, slots=True)
class StripeCurrency:
    """How Stripe takes one currency: `decimals` digits in the API's integer, in steps of
    `step` (major units) with the reason for that step."""

    code: str
    decimals: int
    step: Decimal
    rule: str


def stripe_currency(currency: str) -> StripeCurrency:
    """Stripe's rule for an ISO 4217 code of our catalogue ("KWD"); StripeAmountError if we
    do not price in it or Stripe does not take it."""
    code = currency.upper()
    if code not in MINOR_UNITS or code not in STRIPE_CURRENCIES:
        raise StripeAmountError(
            f"Stripe does not take {currency!r} (https://docs.stripe.com/currencies)"
        )
    if code in ZERO_DECIMAL:
        return StripeCurrency(code, 0, Decimal(1), "zero-decimal: whole units")
    if code == "ISK":
        return StripeCurrency(code, 2, Decimal(1), "ISK: two decimals that must be 00")
    if code in THREE_DECIMAL:
        return StripeCurrency(
            code, 3, Decimal("0.01"), "three-decimal: the last of the three digits must be 0"
        )
    return StripeCurrency(code, 2, Decimal("0.01"), "two-decimal: cents")


def to_stripe_amount(amount: Decimal, currency: str) -> int:
    """The integer Stripe takes for `amount` (major units of `currency`, signed): 12.34 USD
    -> 1234, 1234 JPY -> 1234, 1234 ISK -> 123400, 1.24 KWD -> 1240. Never rounds: an amount
    that is not a whole number of Stripe's steps (1.235 KWD, 12.5 JPY, 0.001 USD) raises
    StripeAmountError, as does a currency Stripe does not take."""
    rule = stripe_currency(currency)
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise StripeAmountError(f"not an exact amount: {amount!r}")
    if EXACT.remainder(amount, rule.step) != 0:
        raise StripeAmountError(
            f"{amount:f} {rule.code} cannot be sent to Stripe: it takes {rule.code} in steps "
            f"of {rule.step} ({rule.rule}; https://docs.stripe.com/currencies). Amounts are "
            "rounded to the billing unit when the invoice is issued (docs/money.md)"
        )
    return int(amount.scaleb(rule.decimals, context=EXACT))


def from_stripe_amount(units: int, currency: str) -> Decimal:
    """Our major-unit amount for Stripe's integer: 1240 KWD -> 1.240, 123400 ISK -> 1234.00."""
    return Decimal(units).scaleb(-stripe_currency(currency).decimals, context=EXACT)
