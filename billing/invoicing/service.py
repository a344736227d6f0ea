"""Reading invoices, the upcoming draft, and corrections (void, optionally re-issue)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, select, update

from billing.catalog import Catalog
from billing.credits import ledger
from billing.credits.models import EntryKind
from billing.customers.periods import period_for
from billing.customers.service import lock_customer, read_customer
from billing.db import table_of
from billing.errors import InvoiceNotFinalized, MissingReason, NotFound, NotReissuable
from billing.invoicing.close import draft, issue_period_invoice
from billing.invoicing.issue import Issued, display_number
from billing.invoicing.models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus
from billing.invoicing.public import (
    InvoicePublic,
    InvoiceSummaryPublic,
    UpcomingInvoicePublic,
    invoice_public,
    invoice_summary,
    upcoming_public,
)


def _invoice_row(connection: Connection, invoice_id: str, *, lock: bool = False) -> Any:
    table = table_of(Invoice)
    query = select(table).where(table.c.id == invoice_id)
    if lock and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise NotFound(f"no invoice {invoice_id!r}", field="invoice")
    return row


def _lines(connection: Connection, invoice_id: str) -> list[Any]:
    table = table_of(InvoiceLine)
    query = select(table).where(table.c.invoice_id == invoice_id).order_by(table.c.position)
    return list(connection.execute(query))


def get_invoice(connection: Connection, invoice_id: str) -> InvoicePublic:
    """One invoice with its lines; NotFound for an unknown id."""
    row = _invoice_row(connection, invoice_id)
    return invoice_public(row, _lines(connection, invoice_id))


def customer_of(connection: Connection, invoice_id: str) -> str:
    """The customer an invoice is addressed to; NotFound for an unknown id."""
    return str(_invoice_row(connection, invoice_id).customer_id)


def list_invoices(connection: Connection, customer_id: str) -> list[InvoiceSummaryPublic]:
    """A customer's invoices without their lines, newest number first."""
    table = table_of(Invoice)
    query = select(table).where(table.c.customer_id == customer_id).order_by(table.c.number.desc())
    return [invoice_summary(row) for row in connection.execute(query)]


def upcoming(
    connection: Connection, catalog: Catalog, customer_id: str, now: dt.datetime
) -> UpcomingInvoicePublic:
    """The running period's invoice as it would be if the period closed now (nothing written)."""
    customer = read_customer(connection, customer_id)
    period = period_for(customer.anchor_day, now)
    made = draft(connection, catalog, customer, period, now, record=False)
    totals = made.totals
    return upcoming_public(
        customer_id=made.customer_id,
        period=period,
        currency=catalog.currency,
        subtotal=totals.subtotal,
        discount_total=totals.discount_total,
        total=totals.total,
        credits_applied=totals.credits_applied,
        amount_due=totals.amount_due,
        lines=made.lines,
    )


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
    """Void a finalized invoice (credits drawn go back); optionally re-issue its period."""
    if not reason.strip():
        raise MissingReason("say why the invoice is voided", field="reason")
    customer_id = customer_of(connection, invoice_id)
    customer = lock_customer(connection, customer_id)
    row = _invoice_row(connection, invoice_id, lock=True)
    if row.status != InvoiceStatus.FINALIZED:
        raise InvoiceNotFinalized(
            f"invoice {display_number(row.series, row.number)} is {row.status}"
        )
    if reissue and (row.kind != InvoiceKind.USAGE or row.period_start is None):
        raise NotReissuable(
            "only usage invoices are re-issued; a commitment is changed by a new one",
            field="reissue",
        )
    table = table_of(Invoice)
    connection.execute(
        update(table)
        .where(table.c.id == invoice_id)
        .values(
            status=InvoiceStatus.VOID, voided_at=now, void_reason=reason.strip(), voided_by=actor
        )
    )
    if row.credits_applied:
        ledger.append(
            connection,
            customer_id,
            EntryKind.REVERSAL,
            row.credits_applied,
            now,
            reference=invoice_id,
            period_start=row.period_start,
            note=f"credits of voided {display_number(row.series, row.number)} returned",
        )
    if not reissue:
        return invoice_id, None
    period = period_for(customer.anchor_day, row.period_start)
    return invoice_id, issue_period_invoice(connection, catalog, customer, period, now, invoice_id)
