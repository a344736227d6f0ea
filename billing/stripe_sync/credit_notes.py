"""Our credit notes pushed to Stripe, each exactly once, previewed before it is made.

A note is pushed once its invoice is in Stripe (`invoice_sync.stripe_invoice_id` set, status
synced, paid or payment_failed); until then it waits (docs/stripe.md, "Credit notes"). Its
lines go as `custom_line_item` lines (quantity 1, `unit_amount` = the line's amount, both in
Stripe's units through `to_stripe_amount`), and our outcome becomes Stripe's
(https://docs.stripe.com/api/credit_notes/create,
https://docs.stripe.com/invoicing/dashboard/credit-notes):

    reduce_due      on the open Stripe invoice: a plain note, which lowers its amount_due
    refund          Stripe invoice paid through Stripe: `refund_amount` (Stripe refunds the
                    charge); paid outside Stripe: `out_of_band_amount`
    credit_balance  `out_of_band_amount`: the credit is kept in our ledger and drawn by our
                    later invoices, which reach Stripe already net of it; Stripe's
                    `credit_amount` would credit the Stripe customer's balance as well, and
                    Stripe would apply it a second time when it finalizes the next invoice

"Paid outside Stripe": the Stripe invoice's `amount_paid_off_stripe` is not 0, or our invoice
is paid while Stripe's is still open, in which case the Stripe invoice is first marked paid
out of band (`POST /v1/invoices/{id}/pay`, `paid_out_of_band=true`), as Stripe has it for
invoices paid elsewhere, since a note on an open invoice can only lower what is due.

Every note is first looked for among the Stripe invoice's credit notes by our id in its
metadata; else previewed (`GET /v1/credit_notes/preview`), and a preview whose `total` or
`amount` differs from our total marks the note `mismatch` and creates nothing; else created
under an idempotency key from our note id (`billing-credit-note-<id>`, a new one per try as
for invoices, billing/stripe_sync/retry.py), and the created note's `total` is checked again.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, cast

import stripe
from sqlalchemy import Engine, insert, select, update
from stripe.params import (
    CreditNoteCreateParams,
    CreditNoteCreateParamsLine,
    CreditNotePreviewParams,
)

from billing.db import table_of
from billing.invoicing.credit_notes import SERIES
from billing.invoicing.models import (
    CreditNote,
    CreditNoteLine,
    CreditNoteOutcome,
    Invoice,
    InvoiceStatus,
)
from billing.invoicing.numbers import display_number
from billing.stripe_sync.amounts import StripeAmountError, to_stripe_amount
from billing.stripe_sync.models import CreditNoteSync, InvoiceSync, SyncStatus
from billing.stripe_sync.retry import failed_try, key, meta

logger = logging.getLogger(__name__)
# The invoice sync states in which the Stripe invoice exists and may be credited.
READY = (SyncStatus.SYNCED, SyncStatus.PAID, SyncStatus.PAYMENT_FAILED)

_NOTES = table_of(CreditNote)
_NOTE_LINES = table_of(CreditNoteLine)
_NOTE_SYNC = table_of(CreditNoteSync)
_INVOICE_SYNC = table_of(InvoiceSync)
_INVOICES = table_of(Invoice)


@dataclass
class CreditNoteReport:
    """What one run did with credit notes."""

    synced: int = 0
    waiting: int = 0  # their invoice is not in Stripe yet
    retrying: int = 0
    failed: int = 0
    mismatched: int = 0

    def __str__(self) -> str:
        return (
            f"{self.synced} synced, {self.waiting} waiting for their invoice, "
            f"{self.retrying} to retry, {self.failed} failed, {self.mismatched} mismatched"
        )


class NoteMismatch(Exception):
    """Stripe's preview (nothing created) or created note totals differently from ours."""


class NotCreditable(Exception):
    """The Stripe invoice is in a state our note cannot be pushed onto (e.g. a reduce_due
    note on a Stripe invoice already paid): finance decides."""


def _enqueue(engine: Engine, now: dt.datetime) -> None:
    """Every credit note of an invoice meant for Stripe (it has an invoice_sync row) gets a
    pending row, once."""
    with engine.begin() as connection:
        new = connection.execute(
            select(_NOTES.c.id, _NOTES.c.customer_id)
            .join(
                _INVOICE_SYNC,
                (_INVOICE_SYNC.c.customer_id == _NOTES.c.customer_id)
                & (_INVOICE_SYNC.c.invoice_id == _NOTES.c.invoice_id),
            )
            .where(_NOTES.c.id.not_in(select(_NOTE_SYNC.c.credit_note_id)))
        )
        rows = [
            {
                "customer_id": row.customer_id,
                "credit_note_id": row.id,
                "status": SyncStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "updated_at": now,
            }
            for row in new
        ]
        if rows:
            connection.execute(insert(_NOTE_SYNC), rows)


def _find(client: stripe.StripeClient, stripe_invoice: str, note_id: str) -> Any:
    """The Stripe credit note carrying our id, among the Stripe invoice's (listing: search
    has no credit notes, and listing is consistent at once)."""
    for found in client.v1.credit_notes.list(
        params={"invoice": stripe_invoice, "limit": 100}
    ).auto_paging_iter():
        if meta(found, "billing_credit_note_id") == note_id:
            return found
    return None


def _verify(found: Any, expected: int, note: Any, what: str) -> None:
    """Stripe's `total` and `amount` of a note (a preview or one made) must equal ours."""
    if found.total == expected and found.amount == expected:
        return
    raise NoteMismatch(
        f"Stripe's {what} for {note.id} totals {found.total} (amount {found.amount}), our "
        f"note totals {expected} ({note.currency} in Stripe's units)"
        + ("" if what == "preview" else f": {found.id} exists in Stripe, void it there")
    )


def _settlement(
    client: stripe.StripeClient,
    note: Any,
    expected: int,
    paid_here: bool,
    attempt: int,
) -> dict[str, int]:
    """Where the money of the note goes, in Stripe's terms ({} for a note that lowers what
    is due); marks the Stripe invoice paid out of band when ours is paid and Stripe's open."""
    invoice = client.v1.invoices.retrieve(note.stripe_invoice_id)
    outcome = CreditNoteOutcome(note.outcome)
    if outcome is CreditNoteOutcome.REDUCE_DUE:
        if invoice.status != "open":
            raise NotCreditable(
                f"{note.id} reduces what is due, but Stripe's invoice {invoice.id} is "
                f"{invoice.status}: nothing is left to reduce there"
            )
        return {}
    if invoice.status == "open" and paid_here:
        invoice = client.v1.invoices.pay(
            invoice.id,
            params={"paid_out_of_band": True},
            options={"idempotency_key": key(f"billing-paid-oob-{invoice.id}", attempt)},
        )
    if invoice.status != "paid":
        raise NotCreditable(
            f"{note.id} ({outcome}) is for a paid invoice, but Stripe's invoice {invoice.id} "
            f"is {invoice.status}"
        )
    through_stripe = not getattr(invoice, "amount_paid_off_stripe", None)
    if outcome is CreditNoteOutcome.REFUND and through_stripe:
        return {"refund_amount": expected}
    return {"out_of_band_amount": expected}


def push_note(client: stripe.StripeClient, note: Any, lines: list[Any], attempt: int = 0) -> str:
    """Find or create the Stripe credit note of our `note` (a row with its Stripe invoice id,
    `stripe_invoice_id`, and our invoice's `invoice_status`); return its id. Raises
    NoteMismatch, NotCreditable, and StripeAmountError before anything reaches Stripe."""
    units = [to_stripe_amount(line.amount, note.currency) for line in lines]
    expected = to_stripe_amount(note.total, note.currency)
    found = _find(client, note.stripe_invoice_id, note.id)
    if found is not None:
        _verify(found, expected, note, "credit note")
        return str(found.id)
    paid_here = note.invoice_status == InvoiceStatus.PAID
    settlement = _settlement(client, note, expected, paid_here, attempt)
    number = display_number(SERIES, note.number)
    stripe_lines: list[CreditNoteCreateParamsLine] = [
        {
            "type": "custom_line_item",
            "description": line.description,
            "quantity": 1,
            "unit_amount": amount,
        }
        for line, amount in zip(lines, units, strict=True)
    ]
    params: CreditNoteCreateParams = {
        "invoice": note.stripe_invoice_id,
        "lines": stripe_lines,
        "memo": f"{number}: {note.reason}"[:500],
        "metadata": {"billing_credit_note_id": note.id, "billing_credit_note": number},
    }
    if "refund_amount" in settlement:
        params["refund_amount"] = settlement["refund_amount"]
    if "out_of_band_amount" in settlement:
        params["out_of_band_amount"] = settlement["out_of_band_amount"]
    # the same parameters: only the TypedDicts' names differ
    preview = client.v1.credit_notes.preview(params=cast(CreditNotePreviewParams, dict(params)))
    _verify(preview, expected, note, "preview")
    created = client.v1.credit_notes.create(
        params=params,
        options={"idempotency_key": key(f"billing-credit-note-{note.id}", attempt)},
    )
    _verify(created, expected, note, "credit note")
    return str(created.id)


def _mark(engine: Engine, note_id: str, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(_NOTE_SYNC).where(_NOTE_SYNC.c.credit_note_id == note_id).values(**values)
        )


def sync_credit_notes(
    engine: Engine, client: stripe.StripeClient, now: dt.datetime
) -> CreditNoteReport:
    """Push every credit note due whose invoice is in Stripe, in number order."""
    _enqueue(engine, now)
    report = CreditNoteReport()
    with engine.begin() as connection:
        due = list(
            connection.execute(
                select(
                    _NOTES,
                    _NOTE_SYNC.c.attempts,
                    _INVOICE_SYNC.c.stripe_invoice_id,
                    _INVOICE_SYNC.c.status.label("invoice_sync_status"),
                    _INVOICES.c.status.label("invoice_status"),
                )
                .join(_NOTE_SYNC, _NOTE_SYNC.c.credit_note_id == _NOTES.c.id)
                .join(_INVOICE_SYNC, _INVOICE_SYNC.c.invoice_id == _NOTES.c.invoice_id)
                .join(_INVOICES, _INVOICES.c.id == _NOTES.c.invoice_id)
                .where(_NOTE_SYNC.c.status == SyncStatus.PENDING)
                .where(_NOTE_SYNC.c.next_attempt_at <= now)
                .order_by(_NOTES.c.number)
            )
        )
    for note in due:
        if note.stripe_invoice_id is None or note.invoice_sync_status not in READY:
            report.waiting += 1  # its invoice is not in Stripe (yet): nothing to credit there
            continue
        with engine.begin() as connection:
            lines = list(
                connection.execute(
                    select(_NOTE_LINES)
                    .where(_NOTE_LINES.c.credit_note_id == note.id)
                    .order_by(_NOTE_LINES.c.position)
                )
            )
        attempts = note.attempts + 1
        try:
            stripe_id = push_note(client, note, lines, note.attempts)
        except (NoteMismatch, NotCreditable, StripeAmountError) as error:
            logger.error("stripe sync of credit note %s: %s", note.id, error)
            final = (
                SyncStatus.MISMATCH if isinstance(error, NoteMismatch) else SyncStatus.SYNC_FAILED
            )
            counter, values = failed_try(error, attempts, now, final)
        except stripe.StripeError as error:
            counter, values = failed_try(error, attempts, now)
        else:
            counter = "synced"
            values = {
                "status": SyncStatus.SYNCED,
                "stripe_credit_note_id": stripe_id,
                "attempts": attempts,
                "last_error": None,
            }
        _mark(engine, note.id, updated_at=now, **values)
        setattr(report, counter, getattr(report, counter) + 1)
    return report
