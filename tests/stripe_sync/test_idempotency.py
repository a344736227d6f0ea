"""Idempotency as Stripe keeps it (https://docs.stripe.com/api/idempotent_requests): a 409
(the key is in use by a request still in progress) is retried later; a key's first answer,
a 500 included, is replayed for 24 hours, so a try after a failure looks the object up by our
metadata and then uses a new key (docs/stripe.md, "Exactly once")."""

import datetime as dt
import threading

import pytest
import stripe
from sqlalchemy import select

from billing.stripe_sync.models import InvoiceSync
from billing.stripe_sync.sync import make_client, sync_due
from tests.stripe_sync.conftest import AFTER


def sync_state(engine):
    with engine.connect() as connection:
        return connection.execute(select(InvoiceSync.__table__)).one()


@pytest.fixture
def client(stripe_api):
    return make_client("sk_test_emulator", stripe_api.base)


def test_a_409_is_tried_again_later(engine, client, stripe_api, closed):
    stripe_api.faults = ["409"]
    report = sync_due(engine, client, AFTER)
    assert (report.retrying, report.failed) == (1, 0)
    state = sync_state(engine)
    assert (state.status, state.attempts) == ("pending", 1)
    assert "idempotency" in state.last_error.lower() or "in-progress" in state.last_error
    assert sync_due(engine, client, AFTER + dt.timedelta(minutes=5)).synced == 1


def test_a_twin_run_meeting_a_key_in_use_retries_and_one_invoice_is_made(
    engine, client, stripe_api, closed
):
    """One run is held while Stripe finalizes; a second run gets to the same finalize with
    the same key, is answered 409, and leaves it for later; the first one finishes."""
    stripe_api.hang_on = "/finalize"
    first = []
    thread = threading.Thread(target=lambda: first.append(sync_due(engine, client, AFTER)))
    thread.start()
    try:
        assert stripe_api.hung.wait(30)
        second = sync_due(engine, client, AFTER)
    finally:
        stripe_api.release.set()
        thread.join(timeout=60)
    assert (second.retrying, second.failed, second.synced) == (1, 0, 0)
    assert first[0].synced == 1
    [remote] = stripe_api.invoices_of(closed.id)
    assert (remote["status"], remote["total"]) == ("open", 3500)
    assert stripe_api.sent == [remote["id"]]
    assert sync_state(engine).status == "synced"


CREATES = ["billing-customer-", "billing-invoice-", "billing-line-", "billing-finalize-"]


@pytest.mark.parametrize("done", [False, True], ids=["failed", "done"])
@pytest.mark.parametrize("prefix", [*CREATES, "billing-send-"])
def test_a_saved_500_is_followed_by_a_look_up_and_a_new_key(
    engine, client, stripe_api, closed, prefix, done
):
    """Stripe answered 500 to a keyed request, having done the work (`done`) or not, and
    keeps that answer for the key: the next try finds what exists by our metadata and asks
    for the rest under new keys, so it finishes well within the key's 24 hours."""
    setattr(stripe_api, "done_500_for" if done else "save_500_for", prefix)
    assert sync_due(engine, client, AFTER).retrying == 1
    later = sync_due(engine, client, AFTER + dt.timedelta(minutes=30))
    assert (later.synced, later.retrying, later.failed) == (1, 0, 0)
    assert len(stripe_api.customers) == 1
    [remote] = stripe_api.invoices_of(closed.id)
    assert (remote["status"], remote["total"]) == ("open", 3500)
    assert sorted(line["amount"] for line in remote["lines"]) == [1000, 2500]
    # a send that was done but answered 500 is sent again: Stripe shows no "sent" flag
    assert stripe_api.sent == [remote["id"]] * (2 if done and prefix == "billing-send-" else 1)


def test_the_emulator_replays_a_saved_500_for_24_hours(client, stripe_api):
    stripe_api.save_500_for = "k-500"
    options = {"idempotency_key": "k-500"}
    for _ in range(2):
        with pytest.raises(stripe.APIError) as failed:
            client.v1.customers.create(params={"name": "Acme"}, options=options)
        assert failed.value.http_status == 500
    assert stripe_api.customers == {}
    start = stripe_api.clock()
    stripe_api.clock = lambda: start + 24 * 3600
    created = client.v1.customers.create(params={"name": "Acme"}, options=options)
    assert list(stripe_api.customers) == [created.id]


def test_a_refused_parameter_is_not_saved_for_the_key(client, stripe_api):
    customer = client.v1.customers.create(params={"name": "Acme"})
    options = {"idempotency_key": "k-currency"}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.create(
            params={"customer": customer.id, "currency": "xyz"}, options=options
        )
    fixed = client.v1.invoices.create(
        params={"customer": customer.id, "currency": "usd"}, options=options
    )
    assert fixed.currency == "usd"
