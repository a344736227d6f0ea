"""Issuing an invoice: numbered without gaps (invoicing/numbers.py), finalized in the
caller's transaction, its `invoice.finalized` event written in that transaction too."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, insert

from billing.db import table_of
from billing.email.outbox import EmailKind, enqueue
from billing.invoicing.calculate import LineIn, totals
from billing.invoicing.models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus
from billing.invoicing.numbers import SERIES, display_number, next_number
from billing.invoicing.snapshot import emit_invoice_event


@dataclass(frozen=True, slots=True)
class Issued:
    """An invoice just issued: its id, display number (INV-000001) and amount due."""

    id: str
    number: str
    amount_due: Decimal


_INSERT_INVOICE = insert(table_of(Invoice))
_INSERT_LINES = insert(table_of(InvoiceLine))


def issue_invoice(
    connection: Connection,
    *,
    customer_id: str,
    kind: InvoiceKind,
    currency: str,
    lines: Sequence[LineIn],
    now: dt.datetime,
    reference: str | None = None,
    period: tuple[dt.datetime, dt.datetime] | None = None,
    replaces: str | None = None,
    invoice_id: str | None = None,
    discount_percent: Decimal | None = None,
    catalog_digest: str | None = None,
    priced_inputs: str | None = None,
) -> Issued:
    """A finalized, numbered invoice in the caller's transaction; its figures are sums of
    its rounded lines (invoicing/calculate.py). ValueError if a line is not rounded."""
    figures = totals(lines, currency)
    invoice_id = invoice_id or "inv_" + secrets.token_hex(8)
    number = next_number(connection, customer_id=customer_id, document_id=invoice_id)
    connection.execute(
        _INSERT_INVOICE,
        {
            "id": invoice_id,
            "customer_id": customer_id,
            "kind": kind,
            "status": InvoiceStatus.FINALIZED,
            "series": SERIES,
            "number": number,
            "currency": currency,
            "period_start": None if period is None else period[0],
            "period_end": None if period is None else period[1],
            "subtotal": figures.subtotal,
            "discount_total": figures.discount_total,
            "total": figures.total,
            "credits_applied": figures.credits_applied,
            "amount_due": figures.amount_due,
            "reference": reference,
            "replaces": replaces,
            "issued_at": now,
            "voided_at": None,
            "void_reason": None,
            "voided_by": None,
            "line_count": len(lines),
            "discount_percent": discount_percent,
            "catalog_digest": catalog_digest,
            "priced_inputs": priced_inputs,
        },
    )
    if lines:
        connection.execute(
            _INSERT_LINES,
            [
                {
                    "customer_id": customer_id,
                    "invoice_id": invoice_id,
                    "position": position,
                    "kind": line.kind,
                    "product": line.product,
                    "description": line.description,
                    "quantity": line.quantity,
                    "unit_amount": line.unit_amount,
                    "amount": line.amount,
                    "detail": line.detail,
                    "corrects_period": line.corrects_period,
                }
                for position, line in enumerate(lines, start=1)
            ],
        )
    emit_invoice_event(connection, "invoice.finalized", invoice_id, customer_id, now)
    if figures.amount_due > 0:
        # Email: the invoice notice to the customer's billing email (billing/email).
        enqueue(
            connection,
            customer_id=customer_id,
            kind=EmailKind.INVOICE,
            reference=invoice_id,
            now=now,
        )
    return Issued(invoice_id, display_number(SERIES, number), figures.amount_due)
