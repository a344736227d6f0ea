"""An invoice as the API answers it (InvoicePublic), read in the caller's transaction: the
`data` of its billing events (billing/notifications/events.py), fixed when they happen."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, select

from billing.db import table_of
from billing.invoicing.credit_notes import notes_of
from billing.invoicing.models import Invoice, InvoiceLine
from billing.invoicing.public import invoice_public
from billing.notifications.events import emit
from billing.settings import get_settings

_INVOICES = table_of(Invoice)
_LINES = table_of(InvoiceLine)


def invoice_snapshot(connection: Connection, invoice_id: str) -> dict[str, Any]:
    """The invoice `invoice_id` as GET /v1/invoices/{id} answers it, as JSON values.
    LookupError when there is none (a caller's bug: events name invoices they just wrote)."""
    row = connection.execute(select(_INVOICES).where(_INVOICES.c.id == invoice_id)).first()
    if row is None:
        raise LookupError(invoice_id)
    lines = connection.execute(
        select(_LINES).where(_LINES.c.invoice_id == invoice_id).order_by(_LINES.c.position)
    )
    notes = notes_of(connection, [invoice_id]).get(invoice_id, [])
    # NOTE: due dates follow the payment terms of the settings in force (docs/invoicing.md,
    # "Due date"), as GET /v1/invoices/{id} shows them
    shown = invoice_public(row, list(lines), notes, due_days=get_settings().invoice_due_days)
    return shown.model_dump(mode="json", by_alias=True)


def emit_invoice_event(
    connection: Connection, event_type: str, invoice_id: str, customer: str, now: dt.datetime
) -> None:
    """Record `event_type` (invoice.finalized, .paid, .payment_failed, .voided) for the
    subscribers of `customer`, with the invoice as it stands in this transaction."""
    emit(
        connection,
        event_type,
        customer=customer,
        data=lambda: invoice_snapshot(connection, invoice_id),
        now=now,
    )
