"""Issuing an invoice: numbered without gaps (invoicing/numbers.py), finalized in the
caller's transaction, its `invoice.finalized` event written in that transaction too."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert

from billing.db import insert_many, table_of
from billing.email.outbox import EmailKind, enqueue, enqueue_many
from billing.invoicing.calculate import LineIn, totals
from billing.invoicing.models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus
from billing.invoicing.numbers import SERIES, display_number, next_number, take_numbers
from billing.invoicing.snapshot import emit_invoice_event


@dataclass(frozen=True, slots=True)
class Issued:
    """An invoice just issued: its id, display number (INV-000001) and amount due."""

    id: str
    number: str
    amount_due: Decimal


_INVOICES = table_of(Invoice)
_LINES = table_of(InvoiceLine)
_INSERT_INVOICE = insert(_INVOICES)
_INSERT_LINES = insert(_LINES)


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
    invoice_id = invoice_id or "inv_" + secrets.token_hex(8)
    row, line_rows = _rows(
        customer_id=customer_id,
        kind=kind,
        currency=currency,
        lines=lines,
        now=now,
        reference=reference,
        period=period,
        replaces=replaces,
        invoice_id=invoice_id,
        discount_percent=discount_percent,
        catalog_digest=catalog_digest,
        priced_inputs=priced_inputs,
    )
    row["number"] = next_number(connection, customer_id=customer_id, document_id=invoice_id)
    connection.execute(_INSERT_INVOICE, row)
    if line_rows:
        connection.execute(_INSERT_LINES, line_rows)
    emit_invoice_event(connection, "invoice.finalized", invoice_id, customer_id, now)
    if row["amount_due"] > 0:
        # Email: the invoice notice to the customer's billing email (billing/email).
        enqueue(
            connection,
            customer_id=customer_id,
            kind=EmailKind.INVOICE,
            reference=invoice_id,
            now=now,
        )
    return Issued(invoice_id, display_number(SERIES, row["number"]), row["amount_due"])


@dataclass(frozen=True, slots=True)
class Queued:
    """An invoice queued in `InvoiceWrites`: its id and amount due (its number is taken when
    the queue is written)."""

    id: str
    amount_due: Decimal


class InvoiceWrites:
    """Invoices of one transaction written together (the period close: docs/invoicing.md,
    "Numbering without gaps"): `add` queues an invoice as `issue_invoice` would write it, `write`
    numbers every queued invoice and writes them, whatever their count, in one statement
    each: the numbers (and one for their `document_number` rows), the invoices, their
    lines and their emails; then their `invoice.finalized` events. Numbers follow the order
    of `add`, consecutive and without gaps (invoicing/numbers.py).

    Until `write` nothing of a queued invoice is in the database: the caller writes the
    queue before anything in its transaction reads invoices (a later period of the same
    customer, a commitment's steps), and before it commits."""

    def __init__(self) -> None:
        self._invoices: list[dict[str, Any]] = []
        self._lines: list[list[dict[str, Any]]] = []

    def add(
        self,
        *,
        customer_id: str,
        kind: InvoiceKind,
        currency: str,
        lines: Sequence[LineIn],
        now: dt.datetime,
        period: tuple[dt.datetime, dt.datetime],
        invoice_id: str,
        discount_percent: Decimal | None,
        catalog_digest: str | None,
        priced_inputs: str | None,
    ) -> Queued:
        """Queue an invoice (the arguments of `issue_invoice`, without a re-issue's
        `replaces`). ValueError if a line is not rounded."""
        row, line_rows = _rows(
            customer_id=customer_id,
            kind=kind,
            currency=currency,
            lines=lines,
            now=now,
            reference=None,
            period=period,
            replaces=None,
            invoice_id=invoice_id,
            discount_percent=discount_percent,
            catalog_digest=catalog_digest,
            priced_inputs=priced_inputs,
        )
        self._invoices.append(row)
        self._lines.append(line_rows)
        return Queued(invoice_id, row["amount_due"])

    def __len__(self) -> int:
        return len(self._invoices)

    def write(self, connection: Connection) -> list[Issued]:
        """Number and write every queued invoice, in the caller's transaction; the invoices
        issued, in the order queued. The queue is empty afterwards."""
        invoices, self._invoices = self._invoices, []
        lines, self._lines = self._lines, []
        if not invoices:
            return []
        numbers = take_numbers(connection, [(row["customer_id"], row["id"]) for row in invoices])
        for row, number in zip(invoices, numbers, strict=True):
            row["number"] = number
        insert_many(connection, _INVOICES, invoices)
        insert_many(connection, _LINES, [line for rows in lines for line in rows])
        owed = [row for row in invoices if row["amount_due"] > 0]
        enqueue_many(
            connection,
            [(row["customer_id"], EmailKind.INVOICE, row["id"]) for row in owed],
            now=invoices[0]["issued_at"],
        )
        for row in invoices:
            emit_invoice_event(
                connection, "invoice.finalized", row["id"], row["customer_id"], row["issued_at"]
            )
        return [
            Issued(row["id"], display_number(SERIES, row["number"]), row["amount_due"])
            for row in invoices
        ]


def _rows(
    *,
    customer_id: str,
    kind: InvoiceKind,
    currency: str,
    lines: Sequence[LineIn],
    now: dt.datetime,
    reference: str | None,
    period: tuple[dt.datetime, dt.datetime] | None,
    replaces: str | None,
    invoice_id: str,
    discount_percent: Decimal | None,
    catalog_digest: str | None,
    priced_inputs: str | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The invoice's row (without its number) and its lines' rows, figures summed from the
    rounded lines. ValueError if a line is not rounded."""
    figures = totals(lines, currency)
    row = {
        "id": invoice_id,
        "customer_id": customer_id,
        "kind": kind,
        "status": InvoiceStatus.FINALIZED,
        "series": SERIES,
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
    }
    line_rows = [
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
    ]
    return row, line_rows
