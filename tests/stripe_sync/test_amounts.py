"""Stripe's amount rules (billing/stripe_sync/amounts.py) and the billing unit our invoices are
rounded to at issue (billing/money.py), so that every figure we issue reaches Stripe exactly
(docs/money.md, "Billing unit"; docs/stripe.md, "Amounts")."""

from decimal import Decimal as D
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.invoicing.calculate import BilledUsage, totals, usage_lines
from billing.money import (
    MINOR_UNITS,
    billing_unit,
    minor_unit,
    round_to_billing_unit,
    round_to_minor,
)
from billing.pricing import Model, PricePlan, Tier, charge, max_quantity_within_cap
from billing.pricing.discounts import line_figures
from billing.stripe_sync.amounts import (
    STRIPE_CURRENCIES,
    StripeAmountError,
    from_stripe_amount,
    to_stripe_amount,
)
from billing.stripe_sync.sync import make_client, push
from tests.invoicing.test_close import created

SUPPORTED = sorted(c for c in MINOR_UNITS if c in STRIPE_CURRENCIES)
# every supported currency, the ones with a rule of their own drawn as often as the rest
currencies = st.one_of(
    st.sampled_from(SUPPORTED), st.sampled_from(["BHD", "JOD", "KWD", "OMR", "TND", "ISK", "JPY"])
)
# 0.001235 KWD a call (a price in thousandths of a fils)
KWD_PLAN = PricePlan(Model.GRADUATED, (Tier(None, D("0.001235")),), "KWD")


def kwd_lines(calls):
    usage = BilledUsage(
        product="api_calls",
        name="API calls",
        unit="call",
        quantity=D(calls),
        charge=charge(KWD_PLAN, D(calls)),
    )
    return usage_lines([usage], discount_percent=D(0), currency="KWD")


def test_kwd_1000_calls_are_1_235_exact_rounded_to_1_24_at_issue_and_sent_as_1240():
    assert charge(KWD_PLAN, D(1000)).amount == D("1.235")  # exact
    assert round_to_minor(D("1.235"), "KWD") == D("1.235")  # ISO 4217 has thousandths...
    [line] = kwd_lines(1000)
    assert line.amount == D("1.24")  # ...Stripe does not: rounded half-up once, at issue
    assert totals([line], "KWD").amount_due == D("1.24")
    assert to_stripe_amount(line.amount, "KWD") == 1240


@pytest.mark.parametrize(
    ("amount", "currency", "sent"),
    [
        ("1234", "ISK", 123400),  # zero-decimal, sent with two decimals that must be 00
        ("1234", "JPY", 1234),  # zero-decimal: whole yen
        ("1234", "CLP", 1234),
        ("12.34", "USD", 1234),
        ("-2.50", "EUR", -250),  # a credits line
        ("12.34", "HUF", 1234),  # two-decimal for invoices (whole forints only for payouts)
        ("12.34", "TWD", 1234),
        ("1.24", "KWD", 1240),
        ("0.01", "BHD", 10),
        ("7", "OMR", 7000),
        ("0", "TND", 0),
    ],
)
def test_amounts_in_stripes_units(amount, currency, sent):
    assert to_stripe_amount(D(amount), currency) == sent
    assert from_stripe_amount(sent, currency) == D(amount)


@pytest.mark.parametrize(
    ("amount", "currency", "says"),
    [
        ("1.235", "KWD", "steps of 0.01"),  # the last of three digits must be 0
        ("1.001", "JOD", "steps of 0.01"),
        ("12.5", "JPY", "steps of 1"),
        ("1234.5", "ISK", "steps of 1"),
        ("0.001", "USD", "steps of 0.01"),
        ("1.000", "IQD", "does not take"),  # ours (ISO 4217), not Stripe's
        ("1.00", "XYZ", "does not take"),
    ],
)
def test_an_amount_stripe_cannot_carry_is_refused_never_rounded(amount, currency, says):
    with pytest.raises(StripeAmountError, match=says):
        to_stripe_amount(D(amount), currency)


def test_the_billing_unit_is_the_minor_unit_but_for_three_decimal_currencies():
    differ = {c: billing_unit(c) for c in MINOR_UNITS if billing_unit(c) != minor_unit(c)}
    assert differ == dict.fromkeys(["BHD", "JOD", "KWD", "OMR", "TND"], D("0.01"))
    assert billing_unit("USD") == D("0.01")
    assert billing_unit("JPY") == billing_unit("ISK") == D(1)


exact_amounts = st.builds(
    lambda units, places: D(units).scaleb(-places),
    st.integers(-(10**12), 10**12),
    st.integers(0, 12),
)


@given(currencies, st.lists(exact_amounts, min_size=1, max_size=8))
def test_every_rounded_line_reaches_stripe_exactly_and_totals_agree(currency, amounts):
    lines = [round_to_billing_unit(amount, currency) for amount in amounts]
    sent = [to_stripe_amount(line, currency) for line in lines]
    assert [from_stripe_amount(units, currency) for units in sent] == lines
    assert to_stripe_amount(sum(lines, D(0)), currency) == sum(sent)  # Stripe's total is ours
    # rounded once: a line already on the billing unit does not move again
    assert [round_to_billing_unit(line, currency) for line in lines] == lines


@given(
    currencies,
    exact_amounts.filter(lambda a: a >= 0),
    st.integers(0, 10000).map(lambda bp: D(bp).scaleb(-2)),
)
def test_discounted_lines_are_carried_too(currency, amount, percent):
    figures = line_figures(amount, percent, currency)
    for figure in (figures.subtotal, -figures.discount, figures.total):
        to_stripe_amount(figure, currency)  # raises if Stripe could not carry it


def kwd_within(quantity, cap, percent):
    exact = charge(KWD_PLAN, D(quantity)).amount
    total = line_figures(exact, percent, "KWD").total
    return exact * (100 - percent) / 100 <= cap and total <= cap


@given(
    st.integers(0, 10**5).map(lambda fils: D(fils).scaleb(-2)),
    st.integers(0, 9999).map(lambda bp: D(bp).scaleb(-2)),
)
def test_a_kwd_cap_is_inverted_on_lines_rounded_to_hundredths(cap, percent):
    q_max = max_quantity_within_cap(KWD_PLAN, cap, percent)
    assert kwd_within(q_max, cap, percent)
    assert not kwd_within(q_max + 1, cap, percent)  # the largest: one more call is over


def test_a_kwd_invoice_reaches_stripe_in_its_units(engine, session, stripe_api):
    """Through the sync and the official SDK: the rounded line arrives as 1240 thousandths."""
    created(session)
    session.close()
    [line] = kwd_lines(1000)
    invoice = SimpleNamespace(
        id="inv_kwd", customer_id="cust_1", currency="KWD", amount_due=D("1.24")
    )
    row = SimpleNamespace(position=1, amount=line.amount, description=line.description)
    push(make_client("sk_test_emulator", stripe_api.base), engine, invoice, [row])
    [remote] = stripe_api.invoices_of("inv_kwd")
    assert (remote["currency"], remote["total"]) == ("kwd", 1240)


def test_an_amount_stripe_cannot_carry_never_reaches_stripe(engine, session, stripe_api):
    created(session)
    session.close()
    invoice = SimpleNamespace(
        id="inv_kwd", customer_id="cust_1", currency="KWD", amount_due=D("1.235")
    )
    row = SimpleNamespace(position=1, amount=D("1.235"), description="not rounded at issue")
    with pytest.raises(StripeAmountError, match=r"1\.235 KWD cannot be sent"):
        push(make_client("sk_test_emulator", stripe_api.base), engine, invoice, [row])
    assert stripe_api.requests == []
