"""Credit notes pushed to Stripe through the official SDK, against the emulator, on SQLite and
PostgreSQL (docs/stripe.md, "Credit notes"): the outcome mapped to Stripe's, previewed and
checked, exactly one Stripe note per note of ours, a note waiting for its invoice."""

import datetime as dt
from decimal import Decimal as D

import pytest
import stripe
from sqlalchemy import select

from billing.corrections.calculate import LineRequest
from billing.corrections.credit_notes import create_credit_note
from billing.db import table_of
from billing.invoicing import payments
from billing.invoicing.models import CreditNoteOutcome
from billing.invoicing.payments import PaymentEvent
from billing.stripe_sync.models import CreditNoteSync
from billing.stripe_sync.sync import make_client, sync_due
from billing.stripe_sync.webhook import apply_event
from tests.stripe_sync.conftest import AFTER, kill_sync_while

LATER = AFTER + dt.timedelta(hours=1)


@pytest.fixture
def client(stripe_api):
    return make_client("sk_test_emulator", stripe_api.base)


@pytest.fixture
def in_stripe(engine, client, stripe_api, closed):
    """October's invoice (35.00 USD) in Stripe, open; its Stripe invoice."""
    assert sync_due(engine, client, AFTER).synced == 1
    [remote] = stripe_api.invoices_of(closed.id)
    return remote


def credit(engine, catalog, invoice_id, amount="5.00", outcome=CreditNoteOutcome.REDUCE_DUE):
    with engine.begin() as connection:
        return create_credit_note(
            connection,
            catalog,
            invoice_id,
            reason="duplicate events",
            lines=[LineRequest(line=1, amount=D(amount))],
            outcome=outcome,
            actor="finance",
            now=AFTER,
        )


def paid_in_stripe(engine, client, catalog, remote):
    """The customer pays through Stripe; Stripe's invoice.paid reaches our webhook."""
    client.v1.invoices.pay(remote["id"])
    event = {
        "id": "evt_paid",
        "type": "invoice.paid",
        "created": int(AFTER.timestamp()) + 60,
        "data": {"object": {"id": remote["id"], "object": "invoice"}},
    }
    with engine.begin() as connection:
        assert apply_event(connection, catalog, event, AFTER).outcome == "recorded"


def note_sync(engine):
    with engine.connect() as connection:
        return connection.execute(select(CreditNoteSync.__table__)).one()


def test_reduce_due_lowers_stripes_amount_due_by_exactly_the_note_once(
    engine, client, stripe_api, catalog, closed, in_stripe
):
    note = credit(engine, catalog, closed.id, "5.00")
    report = sync_due(engine, client, LATER)
    assert report.credit_notes.synced == 1
    [made] = stripe_api.credit_notes.values()
    remote = stripe_api.invoices[in_stripe["id"]]
    assert (remote["status"], remote["amount_due"], remote["amount_remaining"]) == (
        "open",
        3000,
        3000,
    )
    assert remote["pre_payment_credit_notes_amount"] == 500
    assert (made["total"], made["pre_payment_amount"], made["post_payment_amount"]) == (
        500,
        500,
        0,
    )
    assert made["out_of_band_amount"] is None
    assert made["metadata"]["billing_credit_note_id"] == note.id
    assert [(line["quantity"], line["unit_amount"]) for line in made["lines"]["data"]] == [(1, 500)]
    state = note_sync(engine)
    assert (state.status, state.stripe_credit_note_id, state.attempts) == (
        "synced",
        made["id"],
        1,
    )
    again = sync_due(engine, client, LATER + dt.timedelta(hours=1))
    assert again.credit_notes.synced == 0
    assert len(stripe_api.credit_notes) == 1
    assert stripe_api.invoices[in_stripe["id"]]["amount_due"] == 3000


def test_a_refund_of_an_invoice_paid_through_stripe_is_a_stripe_refund(
    engine, client, stripe_api, catalog, closed, in_stripe
):
    paid_in_stripe(engine, client, catalog, in_stripe)
    credit(engine, catalog, closed.id, "7.50", CreditNoteOutcome.REFUND)
    assert sync_due(engine, client, LATER).credit_notes.synced == 1
    [made] = stripe_api.credit_notes.values()
    assert (made["total"], made["post_payment_amount"], made["out_of_band_amount"]) == (
        750,
        750,
        None,
    )
    assert stripe_api.refunds == [{"credit_note": made["id"], "amount": 750}]
    assert stripe_api.invoices[in_stripe["id"]]["post_payment_credit_notes_amount"] == 750


def test_a_refund_of_an_invoice_paid_outside_stripe_is_out_of_band(
    engine, client, stripe_api, catalog, closed, in_stripe
):
    with engine.begin() as connection:  # a bank transfer, recorded by finance
        payments.apply_event(connection, invoice_id=closed.id, event=PaymentEvent.PAID, at=AFTER)
    credit(engine, catalog, closed.id, "7.50", CreditNoteOutcome.REFUND)
    assert sync_due(engine, client, LATER).credit_notes.synced == 1
    remote = stripe_api.invoices[in_stripe["id"]]
    assert (remote["status"], remote["amount_paid_off_stripe"]) == ("paid", 3500)
    [made] = stripe_api.credit_notes.values()
    assert (made["total"], made["out_of_band_amount"]) == (750, 750)
    assert stripe_api.refunds == []


def test_credit_balance_is_out_of_band_so_stripe_never_applies_it_twice(
    engine, client, stripe_api, catalog, closed, in_stripe
):
    """Our ledger holds the credit and our next invoice draws it (a negative line in
    Stripe): Stripe's customer balance must stay untouched, or Stripe would apply the same
    credit again when it finalizes that invoice."""
    paid_in_stripe(engine, client, catalog, in_stripe)
    credit(engine, catalog, closed.id, "10.00", CreditNoteOutcome.CREDIT_BALANCE)
    assert sync_due(engine, client, LATER).credit_notes.synced == 1
    [made] = stripe_api.credit_notes.values()
    assert (made["total"], made["out_of_band_amount"]) == (1000, 1000)
    assert stripe_api.customers[in_stripe["customer"]]["balance"] == 0
    assert stripe_api.refunds == []


@pytest.mark.parametrize("done", [False, True], ids=["failed", "done"])
def test_a_500_mid_push_and_a_rerun_make_exactly_one_stripe_note(
    engine, client, stripe_api, catalog, closed, in_stripe, done
):
    """Stripe answers the create with a 500 it keeps for the key, having made the note
    (`done`) or not: the next try finds it by our id, or makes it under a new key."""
    credit(engine, catalog, closed.id, "5.00")
    setattr(stripe_api, "done_500_for" if done else "save_500_for", "billing-credit-note-")
    first = sync_due(engine, client, LATER)
    assert (first.credit_notes.retrying, first.credit_notes.synced) == (1, 0)
    state = note_sync(engine)
    assert (state.status, state.attempts) == ("pending", 1)
    assert "APIError" in state.last_error
    assert len(stripe_api.credit_notes) == (1 if done else 0)
    second = sync_due(engine, client, LATER + dt.timedelta(minutes=30))
    assert (second.credit_notes.synced, second.credit_notes.retrying) == (1, 0)
    [made] = stripe_api.credit_notes.values()
    assert note_sync(engine).stripe_credit_note_id == made["id"]
    assert stripe_api.invoices[in_stripe["id"]]["amount_due"] == 3000


def test_a_note_waits_until_its_invoice_is_in_stripe(engine, client, stripe_api, catalog, closed):
    stripe_api.faults = ["500"]  # the invoice's first push fails: it is not in Stripe yet
    credit(engine, catalog, closed.id, "5.00")
    first = sync_due(engine, client, AFTER)
    assert (first.retrying, first.credit_notes.waiting) == (1, 1)
    assert stripe_api.credit_notes == {}
    assert note_sync(engine).status == "pending"
    later = sync_due(engine, client, AFTER + dt.timedelta(minutes=30))
    assert (later.synced, later.credit_notes.synced) == (1, 1)
    [remote] = stripe_api.invoices_of(closed.id)
    # the invoice goes as issued (35.00), then the note lowers what is due
    assert (remote["total"], remote["amount_due"]) == (3500, 3000)
    assert len(stripe_api.credit_notes) == 1


def test_a_preview_that_differs_is_a_mismatch_and_nothing_is_created(
    engine, client, stripe_api, catalog, closed, in_stripe
):
    credit(engine, catalog, closed.id, "5.00")
    stripe_api.credit_note_skew = 1
    assert sync_due(engine, client, LATER).credit_notes.mismatched == 1
    assert stripe_api.credit_notes == {}
    state = note_sync(engine)
    assert state.status == "mismatch"
    assert "preview" in state.last_error
    assert "totals 501" in state.last_error
    assert sync_due(engine, client, LATER + dt.timedelta(hours=3)).credit_notes.synced == 0
    assert stripe_api.credit_notes == {}


def test_reduce_due_on_a_stripe_invoice_already_paid_fails_loudly(
    engine, client, stripe_api, catalog, closed, in_stripe
):
    credit(engine, catalog, closed.id, "5.00")
    client.v1.invoices.pay(in_stripe["id"])  # paid in Stripe; the webhook not yet here
    assert sync_due(engine, client, LATER).credit_notes.failed == 1
    state = note_sync(engine)
    assert state.status == "sync_failed"
    assert "is paid" in state.last_error
    assert stripe_api.credit_notes == {}


# --- the emulator keeps Stripe's credit note rules --------------------------------------


def _open_invoice(client, amount=3500):
    customer = client.v1.customers.create(params={"name": "Acme"})
    draft = client.v1.invoices.create(
        params={
            "customer": customer.id,
            "currency": "usd",
            "collection_method": "send_invoice",
            "days_until_due": 30,
        }
    )
    client.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": draft.id, "currency": "usd", "amount": amount}
    )
    return client.v1.invoices.finalize_invoice(draft.id)


def _lines(unit_amount):
    return [
        {"type": "custom_line_item", "description": "x", "quantity": 1, "unit_amount": unit_amount}
    ]


def test_the_emulator_refuses_what_stripe_refuses(client, stripe_api):
    invoice = _open_invoice(client)
    with pytest.raises(stripe.InvalidRequestError, match="amount_remaining"):
        client.v1.credit_notes.create(params={"invoice": invoice.id, "lines": _lines(3501)})
    with pytest.raises(stripe.InvalidRequestError, match="post-payment amount"):
        client.v1.credit_notes.create(
            params={"invoice": invoice.id, "lines": _lines(100), "refund_amount": 100}
        )
    with pytest.raises(stripe.InvalidRequestError, match=r"unknown parameter: refund\b"):
        client.v1.credit_notes.preview(params={"invoice": invoice.id, "amount": 100, "refund": 1})
    client.v1.invoices.pay(invoice.id)
    with pytest.raises(stripe.InvalidRequestError, match="post-payment amount"):
        client.v1.credit_notes.create(
            params={"invoice": invoice.id, "amount": 1000, "refund_amount": 600}
        )
    note = client.v1.credit_notes.create(
        params={
            "invoice": invoice.id,
            "amount": 1000,
            "refund_amount": 600,
            "credit_amount": 400,
        }
    )
    assert (note.total, note.post_payment_amount) == (1000, 1000)
    assert [n.id for n in client.v1.credit_notes.list(params={"invoice": invoice.id}).data] == [
        note.id
    ]
    other = _open_invoice(client)
    client.v1.invoices.void_invoice(other.id)
    with pytest.raises(stripe.InvalidRequestError, match="open or paid"):
        client.v1.credit_notes.create(params={"invoice": other.id, "amount": 100})
    assert len(stripe_api.credit_notes) == 1


def test_a_sync_killed_while_stripe_creates_the_note_leaves_one_note(
    engine, catalog, client, stripe_api, closed, in_stripe, database_url
):
    """The drill for credit notes: SIGKILL `billing stripe sync` while Stripe is creating the
    note (the request still completes there, nothing of ours recorded it); the next run finds
    it by our id and creates no second one."""

    note = credit(engine, catalog, closed.id, "5.00")
    # held at the create, not the preview
    kill_sync_while(stripe_api, database_url, "/v1/credit_notes$", LATER)
    with engine.connect() as connection:
        table = table_of(CreditNoteSync)
        state = connection.execute(select(table).where(table.c.credit_note_id == note.id)).one()
    assert state.stripe_credit_note_id is None  # we never learned Stripe's id
    sync_due(engine, client, LATER + dt.timedelta(minutes=5))
    made = [n for n in stripe_api.credit_notes.values() if n["invoice"] == in_stripe["id"]]
    assert len(made) == 1
    assert made[0]["total"] == 500
    assert stripe_api.invoices[in_stripe["id"]]["amount_remaining"] == 3000
