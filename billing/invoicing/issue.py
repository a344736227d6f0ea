"""Issuing an invoice: numbered without gaps, finalized in the caller's transaction.

The number comes from `invoice_series` with UPDATE ... RETURNING, which holds the series
row locked until the transaction ends: two transactions issuing at once take consecutive
numbers, and a transaction that rolls back gives its number back, so a series never has a
gap (docs/invoicing.md).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, insert, text

from billing.db import table_of
from billing.invoicing.calculate import LineIn, totals
from billing.invoicing.models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus

SERIES = "INV"


@dataclass(frozen=True, slots=True)
class Issued:
    """An invoice just issued: its id, display number (INV-000001) and amount due."""

    id: str
    number: str
    amount_due: Decimal


def display_number(series: str, number: int) -> str:
    return f"{series}-{number:06d}"


def next_number(connection: Connection, series: str = SERIES) -> int:
    """Take the next number of `series` (locked until the transaction ends)."""
    taken = connection.execute(_BUMP, {"series": series}).scalar()
    if taken is None:  # the series' first invoice
        connection.execute(_FIRST, {"series": series})
        taken = connection.execute(_BUMP, {"series": series}).scalar_one()
    return int(taken)


# NOTE: statements built once: building one per invoice cost more than running it.
_BUMP = text(
    "UPDATE invoice_series SET next_number = next_number + 1 WHERE series = :series "
    "RETURNING next_number - 1"
)
_FIRST = text(
    "INSERT INTO invoice_series (series, next_number) VALUES (:series, 1) "
    "ON CONFLICT (series) DO NOTHING"
)
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
) -> Issued:
    """A finalized, numbered invoice in the caller's transaction; its figures are sums of
    its rounded lines (invoicing/calculate.py). ValueError if a line is not rounded."""
    figures = totals(lines, currency)
    number = next_number(connection)
    invoice_id = invoice_id or "inv_" + secrets.token_hex(8)
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
        },
    )
    if lines:
        connection.execute(
            _INSERT_LINES,
            [
                {
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
    return Issued(invoice_id, display_number(SERIES, number), figures.amount_due)
