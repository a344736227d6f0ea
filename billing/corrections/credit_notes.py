"""Issuing credit notes against issued invoices (docs/invoicing.md, "Credit notes").

Who: finance or admin, with a reason. Against what: an open invoice (finalized or
payment_failed) or a paid one; never a void or uncollectible one. How much: whole lines,
part of a line's amount, or a quantity re-priced by the pricing core (corrections/
calculate.py); the notes of an invoice never credit more than its total. Where the money
goes (`outcome`), following Stripe's rules for credit notes:

    reduce_due      an open invoice: less is owed (never more than is still due)
    refund          a paid invoice: the money goes back (through Stripe's refund of the
                    invoice where it was paid through Stripe; recorded otherwise)
    credit_balance  a paid invoice: the customer's credit balance, drawn by later invoices
                    after commitment credit, never expiring

A note against the invoice of a running commitment cancels the commitment; it may credit at
most the price of the credit still unused (available plus not yet released), at the rate
the commitment was bought at.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import Connection, select

from billing.catalog import Catalog
from billing.commitments import service as commitments
from billing.commitments.events import ledger_events
from billing.commitments.models import Commitment, CommitmentStatus
from billing.corrections.calculate import (
    Creditable,
    InvoiceLineView,
    LineRequest,
    credit_lines,
    creditable_lines,
)
from billing.credits import ledger
from billing.credits.models import EntryKind
from billing.customers.service import lock_customer
from billing.db import table_of
from billing.errors import (
    InvalidCreditNoteLine,
    InvoiceNotFinalized,
    MissingReason,
    OutcomeNotAllowed,
)
from billing.invoicing.credit_notes import NoteRecord, notes_of, write_note
from billing.invoicing.models import (
    CreditNoteOutcome,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
)
from billing.invoicing.numbers import display_number
from billing.invoicing.public import credit_note_public
from billing.invoicing.service import customer_of
from billing.money import EXACT, ZERO, format_amount, round_to_billing_unit
from billing.notifications.events import emit
from billing.pricing.charge import charge
from billing.pricing.plan import PricePlan

_INVOICES = table_of(Invoice)
_LINES = table_of(InvoiceLine)


def create_credit_note(
    connection: Connection,
    catalog: Catalog,
    invoice_id: str,
    *,
    reason: str,
    lines: Sequence[LineRequest],
    outcome: CreditNoteOutcome,
    actor: str,
    now: dt.datetime,
) -> NoteRecord:
    """Issue a credit note against an invoice, in the caller's transaction (the customer
    locked); amounts in the invoice's currency, major units.

    Raises MissingReason, InvoiceNotFinalized (void or uncollectible), OutcomeNotAllowed,
    InvalidCreditNoteLine, InvalidAmount and CreditExceedsInvoice.
    """
    if not reason.strip():
        raise MissingReason("say why the invoice is credited", field="reason")
    customer_id = customer_of(connection, invoice_id)
    lock_customer(connection, customer_id)
    query = select(_INVOICES).where(_INVOICES.c.id == invoice_id)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    invoice = connection.execute(query).one()
    number = display_number(invoice.series, invoice.number)
    status = InvoiceStatus(invoice.status)
    _check_outcome(status, outcome, number)
    issued = notes_of(connection, [invoice_id]).get(invoice_id, [])
    stored = [
        InvoiceLineView(
            position=row.position,
            kind=row.kind,
            product=row.product,
            description=row.description,
            quantity=row.quantity,
            amount=row.amount,
        )
        for row in connection.execute(
            select(_LINES).where(_LINES.c.invoice_id == invoice_id).order_by(_LINES.c.position)
        )
    ]
    creditable = creditable_lines(stored, (line for note in issued for line in note.lines))
    running = _running_commitment(connection, invoice)
    if running is not None:
        creditable = _held_to_unused(connection, running, creditable, invoice, now)
    plans = _plans(catalog, invoice, stored, lines)
    made = credit_lines(
        lines,
        creditable,
        plans=plans,
        discount_percent=invoice.discount_percent or ZERO,
        currency=invoice.currency,
        number=number,
    )
    total = EXACT.plus(sum((line.amount for line in made), ZERO))
    if outcome is CreditNoteOutcome.REDUCE_DUE:
        reduced = sum((n.total for n in issued if n.outcome is CreditNoteOutcome.REDUCE_DUE), ZERO)
        still_due = EXACT.subtract(invoice.amount_due, reduced)
        if total > still_due:
            raise OutcomeNotAllowed(
                f"{number} has {format_amount(still_due, invoice.currency)} "
                f"{invoice.currency} still due; this note is for "
                f"{format_amount(total, invoice.currency)}: reduce less",
                field="outcome",
            )
    note = write_note(
        connection,
        invoice_id=invoice_id,
        customer_id=customer_id,
        currency=invoice.currency,
        reason=reason.strip(),
        outcome=outcome,
        lines=made,
        actor=actor,
        now=now,
    )
    granted = None
    if outcome is CreditNoteOutcome.CREDIT_BALANCE:
        granted = ledger.append(
            connection,
            customer_id,
            EntryKind.CREDIT_NOTE,
            total,
            now,
            reference=note.id,
            note=f"credit note {note.number} on {number}",
        )
    if running is not None:
        commitments.cancel(
            connection,
            running,
            now,
            why=f"credit note {note.number} on {number}",
            allow_used=True,
            currency=invoice.currency,
        )
    emit(
        connection,
        "credit_note.created",
        customer=customer_id,
        data=lambda: credit_note_public(note, number).model_dump(mode="json", by_alias=True),
        now=now,
    )
    if granted is not None:  # the credit it put in the balance: after the note itself
        ledger_events(connection, customer_id, [granted], invoice.currency, now)
    return note


def _check_outcome(status: InvoiceStatus, outcome: CreditNoteOutcome, number: str) -> None:
    if status in (InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE):
        raise InvoiceNotFinalized(
            f"invoice {number} is {status}: only open or paid invoices are credited",
            field="invoice",
        )
    if status.open and outcome is not CreditNoteOutcome.REDUCE_DUE:
        raise OutcomeNotAllowed(
            f"{number} is not paid: a note on it reduces what is due (outcome reduce_due); "
            "refunds and credit balances are for paid invoices",
            field="outcome",
        )
    if status is InvoiceStatus.PAID and outcome is CreditNoteOutcome.REDUCE_DUE:
        raise OutcomeNotAllowed(
            f"{number} is paid: nothing is due to reduce; choose refund or credit_balance",
            field="outcome",
        )


def _running_commitment(connection: Connection, invoice: object) -> str | None:
    """The running commitment a commitment invoice sold, if it still runs."""
    if getattr(invoice, "kind", None) != InvoiceKind.COMMITMENT:
        return None
    reference = getattr(invoice, "reference", None)
    if not reference:
        return None
    table = table_of(Commitment)
    status = connection.execute(select(table.c.status).where(table.c.id == reference)).scalar()
    return str(reference) if status == CommitmentStatus.ACTIVE else None


def _held_to_unused(
    connection: Connection,
    commitment_id: str,
    creditable: dict[int, Creditable],
    invoice: object,
    now: dt.datetime,
) -> dict[int, Creditable]:
    """A running commitment's invoice is creditable up to the price of its unused credit."""
    table = table_of(Commitment)
    row = connection.execute(select(table).where(table.c.id == commitment_id)).one()
    unused = commitments.unused_credit(connection, commitment_id, now)
    currency = str(getattr(invoice, "currency", ""))
    price = round_to_billing_unit(
        EXACT.divide(EXACT.multiply(unused.total, row.price_per_year), row.credit), currency
    )
    held = {}
    for position, line in creditable.items():
        left = (
            min(line.amount_left, price) if line.kind == LineKind.COMMITMENT else line.amount_left
        )
        held[position] = Creditable(
            position=line.position,
            kind=line.kind,
            product=line.product,
            description=line.description,
            amount_left=left,
            quantity_left=line.quantity_left,
        )
        if line.kind == LineKind.COMMITMENT:
            price = EXACT.subtract(price, left)
    return held


def _plans(
    catalog: Catalog,
    invoice: object,
    stored: Sequence[InvoiceLineView],
    requests: Sequence[LineRequest],
) -> dict[str, PricePlan]:
    """The plans of the usage lines credited by quantity, at the invoice's period; refused
    when the tier files no longer price the line as it was issued (credit an amount then)."""
    by_position = {line.position: line for line in stored}
    plans: dict[str, PricePlan] = {}
    start = getattr(invoice, "period_start", None)
    currency = str(getattr(invoice, "currency", ""))
    for index, request in enumerate(requests):
        line = by_position.get(request.line)
        if request.quantity is None or line is None or line.product is None or start is None:
            continue
        if line.product not in catalog.products:
            raise InvalidCreditNoteLine(
                f"{line.product} is no longer in the tier files: credit line {line.position} "
                "by amount",
                field=f"lines.{index}.quantity",
            )
        customer = str(getattr(invoice, "customer_id", "")) or None
        plan = catalog.plan_for_period(line.product, start, customer)
        if round_to_billing_unit(charge(plan, line.quantity).amount, currency) != line.amount:
            raise InvalidCreditNoteLine(
                f"the tier files no longer price line {line.position} as it was issued: "
                "credit it by amount",
                field=f"lines.{index}.quantity",
            )
        plans[line.product] = plan
    return plans


def notes_for_invoice(connection: Connection, invoice_id: str) -> list[NoteRecord]:
    """The credit notes of one invoice, in number order."""
    return notes_of(connection, [invoice_id]).get(invoice_id, [])


def credited_total(notes: Sequence[NoteRecord]) -> Decimal:
    """What a set of notes credits in all."""
    return EXACT.plus(sum((note.total for note in notes), ZERO))
