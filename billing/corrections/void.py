"""Voiding an unpaid invoice, optionally re-issuing its period (docs/invoicing.md).

A void is for invoices nobody has paid: a paid invoice is corrected by a credit note
(`invoice_paid`). Voiding gives back the credit the invoice drew, to the pools it came from;
voiding the invoice of a running commitment cancels the commitment (its credit still
available is withdrawn; refused while some of it has been used, since that usage would then
be covered by credit nobody pays for). Stripe is told by the sync job, which voids there
before it sends any replacement.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, select, update

from billing.catalog import Catalog
from billing.commitments import service as commitments
from billing.credits import ledger
from billing.credits.models import EntryKind
from billing.customers.periods import period_for
from billing.customers.service import lock_customer
from billing.db import table_of
from billing.errors import InvoiceNotFinalized, InvoicePaid, MissingReason, NotReissuable
from billing.invoicing.close import issue_period_invoice
from billing.invoicing.issue import Issued
from billing.invoicing.models import Invoice, InvoiceKind, InvoiceStatus
from billing.invoicing.numbers import display_number
from billing.invoicing.service import customer_of
from billing.invoicing.snapshot import emit_invoice_event

_INVOICES = table_of(Invoice)


def void(
    connection: Connection,
    catalog: Catalog,
    invoice_id: str,
    *,
    reason: str,
    actor: str,
    now: dt.datetime,
    reissue: bool,
) -> tuple[str, Issued | None]:
    """Void an open invoice (finalized or payment_failed) with a reason; optionally re-issue
    its period. Returns the voided id and the replacement.

    Raises MissingReason, InvoicePaid (a paid invoice: issue a credit note),
    InvoiceNotFinalized (already void or uncollectible), NotReissuable (a commitment invoice
    with `reissue`), CommitmentCreditUsed (its commitment's credit was drawn).
    """
    if not reason.strip():
        raise MissingReason("say why the invoice is voided", field="reason")
    customer = lock_customer(connection, customer_of(connection, invoice_id))
    query = select(_INVOICES).where(_INVOICES.c.id == invoice_id)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = connection.execute(query).one()
    number = display_number(row.series, row.number)
    if row.status == InvoiceStatus.PAID:
        raise InvoicePaid(
            f"invoice {number} is paid: a paid invoice is not voided; issue a credit note "
            f"(POST /v1/invoices/{number}/credit-notes)",
            field="invoice",
        )
    if not InvoiceStatus(row.status).open:
        raise InvoiceNotFinalized(f"invoice {number} is {row.status}", field="invoice")
    if reissue and (row.kind != InvoiceKind.USAGE or row.period_start is None):
        raise NotReissuable(
            "only usage invoices are re-issued; a commitment is changed by a new one",
            field="reissue",
        )
    if row.kind == InvoiceKind.COMMITMENT and row.reference:
        commitments.cancel(
            connection,
            row.reference,
            now,
            why=f"its invoice {number} was voided",
            allow_used=False,
            currency=row.currency,
        )
    connection.execute(
        update(_INVOICES)
        .where(_INVOICES.c.id == invoice_id)
        .values(
            status=InvoiceStatus.VOID,
            voided_at=now,
            void_reason=reason.strip(),
            voided_by=actor,
            status_changed_at=now,
        )
    )
    emit_invoice_event(connection, "invoice.voided", invoice_id, customer.id, now)
    drawn = ledger.drawn_by(connection, customer.id, invoice_id)
    if drawn.total:
        ledger.append(
            connection,
            customer.id,
            EntryKind.REVERSAL,
            drawn.total,
            now,
            reference=invoice_id,
            period_start=row.period_start,
            note=f"credits of voided {number} returned",
            to_credit_notes=drawn.from_credit_notes,
        )
    if not reissue:
        return invoice_id, None
    period = period_for(customer.anchor_day, row.period_start)
    return invoice_id, issue_period_invoice(connection, catalog, customer, period, now, invoice_id)
