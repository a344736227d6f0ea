"""Reading invoices and the upcoming draft (corrections live in billing/corrections)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from billing.catalog import Catalog
from billing.customers.periods import period_for
from billing.customers.service import get_customer, read_customer
from billing.db import table_of
from billing.errors import NotFound
from billing.invoicing.close import draft
from billing.invoicing.credit_notes import notes_of
from billing.invoicing.models import Invoice
from billing.invoicing.party import Party
from billing.invoicing.public import (
    InvoicePublic,
    InvoiceSummaryPublic,
    UpcomingInvoicePublic,
    invoice_summary,
    upcoming_public,
)
from billing.invoicing.snapshot import read_invoice


def _invoice_row(connection: Connection, invoice_id: str, *, lock: bool = False) -> Any:
    table = table_of(Invoice)
    query = select(table).where(table.c.id == invoice_id)
    if lock and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise NotFound(f"no invoice {invoice_id!r}", field="invoice")
    return row


def get_invoice(connection: Connection, reference: str, *, due_days: int) -> InvoicePublic:
    """One invoice with its lines, named by its id (inv_...) or its number (INV-000123),
    due `due_days` after its day of issue (the terms: Settings.invoice_due_days); NotFound
    when none."""
    return read_invoice(connection, resolve_invoice_id(connection, reference), due_days=due_days)


@dataclass(frozen=True, slots=True)
class InvoiceFile:
    """A document of an invoice: the name to save it as, its media type and its bytes."""

    filename: str
    media_type: str
    content: bytes


def invoice_pdf(
    connection: Connection, invoice_id: str, *, due_days: int, seller: Party
) -> InvoiceFile:
    """The invoice `invoice_id` (our id) as a PDF, from `seller` to its customer (name, email,
    customer id), drawn from the same `InvoicePublic` the API answers; NotFound for an
    unknown id."""
    # NOTE: imported here, not at the top: fpdf2 (with Pillow and fontTools) takes a good
    # part of a second to import, which no command that never draws a PDF should pay.
    from billing.invoicing import pdf

    invoice = get_invoice(connection, invoice_id, due_days=due_days)
    customer = get_customer(connection=connection, customer_id=invoice.customer)
    buyer = Party(name=customer.name, email=customer.email, customer_id=customer.id)
    content = pdf.render_invoice_pdf(invoice, seller=seller, buyer=buyer)
    return InvoiceFile(pdf.filename(invoice), pdf.MEDIA_TYPE, content)


def resolve_invoice_id(connection: Connection, reference: str) -> str:
    """Our id of the invoice `reference` names: its id (inv_...) or its number
    (INV-000123); NotFound when none."""
    table = table_of(Invoice)
    series, _, digits = reference.partition("-")
    if digits.isdigit() and series.isalpha() and series.isupper():
        query = select(table.c.id).where(table.c.series == series, table.c.number == int(digits))
    else:
        query = select(table.c.id).where(table.c.id == reference)
    found = connection.execute(query).scalar()
    if found is None:
        raise NotFound(f"no invoice {reference!r}", field="invoice")
    return str(found)


def customer_of(connection: Connection, invoice_id: str) -> str:
    """The customer an invoice is addressed to; NotFound for an unknown id."""
    return str(_invoice_row(connection, invoice_id).customer_id)


def list_invoices(connection: Connection, customer_id: str) -> list[InvoiceSummaryPublic]:
    """A customer's invoices without their lines, newest number first."""
    table = table_of(Invoice)
    query = select(table).where(table.c.customer_id == customer_id).order_by(table.c.number.desc())
    rows = list(connection.execute(query))
    notes = notes_of(connection, [row.id for row in rows])
    return [invoice_summary(row, notes.get(row.id, ())) for row in rows]


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
