"""The emulator refuses what Stripe refuses (https://docs.stripe.com/currencies), through the
official SDK: amounts a currency cannot carry and unknown currencies, with Stripe's error
shape (400 invalid_request_error naming the `param`)."""

import pytest
import stripe

from billing.stripe_sync.sync import make_client


@pytest.fixture
def client(stripe_api):
    return make_client("sk_test_emulator", stripe_api.base)


def draft(client, currency):
    customer = client.v1.customers.create(params={"name": "Acme"})
    invoice = client.v1.invoices.create(params={"customer": customer.id, "currency": currency})
    return customer.id, invoice.id


def item(client, customer, invoice, currency, amount):
    return client.v1.invoice_items.create(
        params={"customer": customer, "invoice": invoice, "currency": currency, "amount": amount}
    )


@pytest.mark.parametrize(
    ("currency", "refused", "accepted"),
    [
        ("kwd", 1235, 1240),  # three-decimal: the last digit must be 0
        ("bhd", 5, 10),
        ("isk", 12345, 123400),  # two decimals that must be 00
        ("jpy", None, 1235),  # zero-decimal: every whole yen
        ("usd", None, 1235),
    ],
)
def test_amounts_a_currency_cannot_carry_are_refused(
    client, stripe_api, currency, refused, accepted
):
    customer, invoice = draft(client, currency)
    if refused is not None:
        with pytest.raises(stripe.InvalidRequestError) as error:
            item(client, customer, invoice, currency, refused)
        assert (error.value.http_status, error.value.param) == (400, "amount")
        assert error.value.error.type == "invalid_request_error"
    item(client, customer, invoice, currency, accepted)
    assert client.v1.invoices.retrieve(invoice).total == accepted


def test_an_unknown_currency_is_refused(client):
    customer = client.v1.customers.create(params={"name": "Acme"})
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.invoices.create(params={"customer": customer.id, "currency": "xyz"})
    assert (error.value.http_status, error.value.param) == (400, "currency")
    assert "Invalid currency: xyz" in str(error.value)
    with pytest.raises(stripe.InvalidRequestError) as pending:
        client.v1.invoice_items.create(
            params={"customer": customer.id, "currency": "iqd", "amount": 1000}  # not Stripe's
        )
    assert pending.value.param == "currency"


def test_an_item_in_another_currency_than_its_invoice_is_refused(client):
    customer, invoice = draft(client, "eur")
    with pytest.raises(stripe.InvalidRequestError) as error:
        item(client, customer, invoice, "usd", 100)
    assert error.value.param == "currency"


def test_an_amount_that_is_not_an_integer_is_refused(client):
    customer, invoice = draft(client, "usd")
    with pytest.raises(stripe.InvalidRequestError) as error:
        item(client, customer, invoice, "usd", "12.5")
    assert (error.value.param, "Invalid integer: 12.5" in str(error.value)) == ("amount", True)
