"""Stripe as it really behaves (docs/stripe.md): customers with their name and email, invoices
collected as configured and actually sent, totals checked on the draft before anything is
payable, a mismatched draft deleted (and a finalized one voided), items found again by
their own metadata, one pinned API version, and only parameters Stripe knows."""

import datetime as dt

import pydantic
import pytest
import stripe
from sqlalchemy import select

from billing.jobs import registry, runner
from billing.jobs.context import JobContext
from billing.settings import Settings
from billing.stripe_sync.models import InvoiceSync
from billing.stripe_sync.sync import (
    STRIPE_API_VERSION,
    Collection,
    make_client,
    retry_now,
    sync_due,
)
from tests.metering.helpers import update_customers
from tests.stripe_sync.conftest import AFTER


def sync_state(engine):
    with engine.connect() as connection:
        return connection.execute(select(InvoiceSync.__table__)).one()


@pytest.fixture
def client(stripe_api):
    return make_client("sk_test_emulator", stripe_api.base)


def test_the_stripe_customer_has_our_customers_name_and_email(engine, client, stripe_api, closed):
    with engine.begin() as connection:
        update_customers(connection, "cust_1", name="Acme Ltd", email="billing@acme.test")
    assert sync_due(engine, client, AFTER).synced == 1
    [customer] = stripe_api.customers.values()
    assert (customer["name"], customer["email"]) == ("Acme Ltd", "billing@acme.test")
    assert customer["metadata"] == {"billing_customer_id": "cust_1"}


def test_a_customer_without_an_email_is_created_without_one(engine, client, stripe_api, closed):
    sync_due(engine, client, AFTER)
    [customer] = stripe_api.customers.values()
    assert (customer["name"], customer["email"]) == ("Customer cust_1", None)


def test_by_default_the_invoice_is_sent_payable_within_30_days(engine, client, stripe_api, closed):
    assert sync_due(engine, client, AFTER).synced == 1
    [remote] = stripe_api.invoices_of(closed.id)
    assert (remote["collection_method"], remote["days_until_due"]) == ("send_invoice", 30)
    assert (remote["status"], remote["total"], remote["amount_due"]) == ("open", 3500, 3500)
    assert remote["auto_advance"] is False  # nothing happened to it before it was checked
    assert stripe_api.sent == [remote["id"]]  # the customer is asked to pay
    sync_due(engine, client, AFTER + dt.timedelta(hours=1))
    assert stripe_api.sent == [remote["id"]]  # once


def test_charge_automatically_leaves_stripe_to_charge(engine, client, stripe_api, closed):
    collection = Collection("charge_automatically")
    assert sync_due(engine, client, AFTER, collection).synced == 1
    [remote] = stripe_api.invoices_of(closed.id)
    assert (remote["collection_method"], remote["days_until_due"]) == ("charge_automatically", None)
    assert (remote["status"], remote["auto_advance"]) == ("open", True)  # Stripe collects
    assert stripe_api.sent == []


def test_the_collection_settings_reach_stripe(engine, catalog, stripe_api, closed):
    settings = Settings(
        stripe_api_key="sk_test_emulator",
        stripe_api_base=stripe_api.base,
        stripe_collection_method="send_invoice",
        stripe_days_until_due=14,
    )
    context = JobContext(engine=engine, settings=settings, catalog=catalog)
    assert runner.run_waiting(registry.SYNC_STRIPE, context, AFTER).synced == 1
    [remote] = stripe_api.invoices_of(closed.id)
    assert (remote["collection_method"], remote["days_until_due"]) == ("send_invoice", 14)


def test_the_collection_settings_are_read_and_checked(monkeypatch):
    assert (Settings().stripe_collection_method, Settings().stripe_days_until_due) == (
        "send_invoice",
        30,
    )
    monkeypatch.setenv("BILLING_STRIPE_COLLECTION_METHOD", "charge_automatically")
    monkeypatch.setenv("BILLING_STRIPE_DAYS_UNTIL_DUE", "45")
    assert (Settings().stripe_collection_method, Settings().stripe_days_until_due) == (
        "charge_automatically",
        45,
    )
    monkeypatch.setenv("BILLING_STRIPE_COLLECTION_METHOD", "sometimes")
    with pytest.raises(pydantic.ValidationError):
        Settings()
    monkeypatch.setenv("BILLING_STRIPE_COLLECTION_METHOD", "send_invoice")
    monkeypatch.setenv("BILLING_STRIPE_DAYS_UNTIL_DUE", "0")
    with pytest.raises(pydantic.ValidationError):
        Settings()


@pytest.mark.parametrize("skew", ["total_skew", "due_skew"])
def test_a_draft_that_differs_is_deleted_before_anything_is_payable(
    engine, client, stripe_api, closed, skew
):
    setattr(stripe_api, skew, 1)
    assert sync_due(engine, client, AFTER).mismatched == 1
    state = sync_state(engine)
    assert state.status == "mismatch"
    [deleted] = stripe_api.deleted
    total, due = (3501, 3501) if skew == "total_skew" else (3500, 3501)
    assert f"totals {total}, our amount due is 3500; Stripe's amount due is {due}" in (
        state.last_error
    )
    assert "the draft was deleted" in state.last_error
    assert stripe_api.invoices_of(closed.id) == []  # nothing left in Stripe to pay
    assert not any(path.endswith("/finalize") for _, path in stripe_api.requests)
    assert stripe_api.sent == []
    # Fixed, and retried at once: a new draft (not the deleted one, replayed by its key)
    setattr(stripe_api, skew, 0)
    assert retry_now(engine, closed.id, AFTER)
    assert sync_due(engine, client, AFTER).synced == 1
    [remote] = stripe_api.invoices_of(closed.id)
    assert remote["id"] != deleted["id"]
    assert (remote["status"], remote["total"], stripe_api.sent) == ("open", 3500, [remote["id"]])


def test_an_invoice_stripe_changes_on_finalizing_is_voided_never_sent(
    engine, client, stripe_api, closed
):
    """Stripe applies a customer's credit balance when it finalizes: the open invoice asks
    less than ours, so it is voided, and the next try makes a new one."""
    customer = client.v1.customers.create(
        params={"name": "cust_1", "balance": -500, "metadata": {"billing_customer_id": "cust_1"}}
    )
    assert sync_due(engine, client, AFTER).mismatched == 1
    [voided] = stripe_api.invoices_of(closed.id)
    assert (voided["status"], voided["total"], voided["amount_due"]) == ("void", 3500, 3000)
    state = sync_state(engine)
    assert "Stripe's amount due is 3000" in state.last_error
    assert "the open invoice was voided" in state.last_error
    assert stripe_api.sent == []
    stripe_api.customers[customer.id]["balance"] = 0
    assert retry_now(engine, closed.id, AFTER)
    assert sync_due(engine, client, AFTER).synced == 1
    remotes = sorted((i["status"], i["amount_due"]) for i in stripe_api.invoices_of(closed.id))
    assert remotes == [("open", 3500), ("void", 3000)]


def test_items_already_on_the_draft_are_found_by_their_own_metadata(
    engine, client, stripe_api, closed
):
    """A run died after adding the first item: the next lists the draft's invoice items."""
    customer = client.v1.customers.create(
        params={"name": "cust_1", "metadata": {"billing_customer_id": "cust_1"}}
    )
    draft = client.v1.invoices.create(
        params={
            "customer": customer.id,
            "currency": "usd",
            "collection_method": "send_invoice",
            "days_until_due": 30,
            "metadata": {"billing_invoice_id": closed.id},
        }
    )
    client.v1.invoice_items.create(
        params={
            "customer": customer.id,
            "invoice": draft.id,
            "currency": "usd",
            "amount": 1000,
            "metadata": {"billing_invoice_id": closed.id, "billing_line": "1"},
        }
    )
    assert sync_due(engine, client, AFTER).synced == 1
    [remote] = stripe_api.invoices_of(closed.id)
    assert sorted(line["amount"] for line in remote["lines"]) == [1000, 2500]
    assert ("GET", "/v1/invoiceitems") in stripe_api.requests
    assert not any(path.endswith("/lines") for _, path in stripe_api.requests)


def test_every_request_names_the_pinned_api_version(engine, client, stripe_api, closed):
    sync_due(engine, client, AFTER)
    assert stripe_api.versions == {STRIPE_API_VERSION}
    # The SDK is typed for one API version: upgrading it means reading Stripe's changelog
    # and moving STRIPE_API_VERSION with it (billing/stripe_sync/sync.py).
    assert stripe.api_version == STRIPE_API_VERSION


def test_parameters_stripe_does_not_know_are_refused(client):
    customer = client.v1.customers.create(params={"name": "Acme"})
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.invoices.create(
            params={"customer": customer.id, "colection_method": "send_invoice"}  # type: ignore[typeddict-unknown-key]
        )
    assert (unknown.value.http_status, unknown.value.param) == (400, "colection_method")
    assert "Received unknown parameter: colection_method" in str(unknown.value)
    draft = client.v1.invoices.create(params={"customer": customer.id})
    with pytest.raises(stripe.InvalidRequestError) as misplaced:  # an invoice's, not finalize's
        client.v1.invoices.finalize_invoice(draft.id, params={"days_until_due": 3})  # type: ignore[typeddict-unknown-key]
    assert misplaced.value.param == "days_until_due"


def test_stripe_s_invoice_lifecycle_as_the_emulator_keeps_it(client, stripe_api):
    customer = client.v1.customers.create(params={"name": "Acme"})
    automatic = client.v1.invoices.create(params={"customer": customer.id})
    with pytest.raises(stripe.InvalidRequestError):  # a draft is not payable
        client.v1.invoices.pay(automatic.id)
    with pytest.raises(stripe.InvalidRequestError):  # days_until_due is for send_invoice only
        client.v1.invoices.create(params={"customer": customer.id, "days_until_due": 30})
    with pytest.raises(stripe.InvalidRequestError):  # send_invoice needs a due date
        client.v1.invoices.create(
            params={"customer": customer.id, "collection_method": "send_invoice"}
        )
    client.v1.invoices.finalize_invoice(automatic.id)
    with pytest.raises(stripe.InvalidRequestError):  # only send_invoice invoices are sent
        client.v1.invoices.send_invoice(automatic.id)
    with pytest.raises(stripe.InvalidRequestError):  # only drafts are deleted
        client.v1.invoices.delete(automatic.id)
    paid = client.v1.invoices.pay(automatic.id, params={"paid_out_of_band": True})
    assert (paid.status, paid.amount_remaining) == ("paid", 0)
    with pytest.raises(stripe.InvalidRequestError):  # paid once
        client.v1.invoices.pay(automatic.id)
    draft = client.v1.invoices.create(params={"customer": customer.id})
    assert client.v1.invoices.delete(draft.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError) as gone:
        client.v1.invoices.retrieve(draft.id)
    assert gone.value.http_status == 404
    assert [i["id"] for i in stripe_api.deleted] == [draft.id]
