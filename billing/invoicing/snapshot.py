"""An invoice as the API answers it (InvoicePublic), read in the caller's transaction: what
GET /v1/invoices/{id} answers, and the `data` of its billing events
(billing/notifications/events.py), fixed when they happen. One reading for both, so an
event's invoice is the API's invoice."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, select

from billing.db import table_of
from billing.errors import NotFound
from billing.invoicing.credit_notes import notes_of
from billing.invoicing.models import Invoice, InvoiceLine, InvoiceStatus
from billing.invoicing.numbers import display_number
from billing.invoicing.public import InvoicePublic, InvoiceRef, invoice_public
from billing.notifications.events import emit
from billing.settings import get_settings

_INVOICES = table_of(Invoice)
_LINES = table_of(InvoiceLine)


def _ref(row: Any) -> InvoiceRef:
    return InvoiceRef(str(row.id), display_number(row.series, row.number))


def _replaces(connection: Connection, row: Any) -> InvoiceRef | None:
    """The voided invoice `row` re-issues, if any."""
    if row.replaces is None:
        return None
    query = select(_INVOICES.c.id, _INVOICES.c.series, _INVOICES.c.number).where(
        _INVOICES.c.id == row.replaces
    )
    found = connection.execute(query).first()
    return None if found is None else _ref(found)


def _replaced_by(connection: Connection, row: Any) -> InvoiceRef | None:
    """The invoice that re-issues `row`, when `row` is void and was re-issued."""
    if row.status != InvoiceStatus.VOID:
        return None
    query = (
        select(_INVOICES.c.id, _INVOICES.c.series, _INVOICES.c.number)
        .where(_INVOICES.c.replaces == row.id)
        .order_by(_INVOICES.c.number)
    )
    found = connection.execute(query).first()
    return None if found is None else _ref(found)


def read_invoice(connection: Connection, invoice_id: str, *, due_days: int) -> InvoicePublic:
    """The invoice `invoice_id` (our id) with its lines, credit notes and the invoices it
    replaces or is replaced by, due `due_days` after its day of issue: what GET
    /v1/invoices/{id} answers. NotFound(field="invoice") when there is none."""
    row = connection.execute(select(_INVOICES).where(_INVOICES.c.id == invoice_id)).first()
    if row is None:
        raise NotFound(f"no invoice {invoice_id!r}", field="invoice")
    lines = connection.execute(
        select(_LINES).where(_LINES.c.invoice_id == invoice_id).order_by(_LINES.c.position)
    )
    notes = notes_of(connection, [invoice_id]).get(invoice_id, [])
    return invoice_public(
        row,
        list(lines),
        notes,
        due_days=due_days,
        replaces=_replaces(connection, row),
        replaced_by=_replaced_by(connection, row),
    )


def invoice_snapshot(connection: Connection, invoice_id: str) -> dict[str, Any]:
    """The invoice `invoice_id` as GET /v1/invoices/{id} answers it, as JSON values."""
    # NOTE: due dates follow the payment terms of the settings in force (docs/invoicing.md,
    # "Due date"), as GET /v1/invoices/{id} shows them
    shown = read_invoice(connection, invoice_id, due_days=get_settings().invoice_due_days)
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
