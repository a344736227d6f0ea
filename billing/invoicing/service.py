"""Reading invoices, the upcoming draft, and corrections (void, optionally re-issue)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select, update

from billing.catalog import Catalog
from billing.credits import ledger
from billing.credits.models import EntryKind
from billing.customers.periods import Period, period_for
from billing.customers.service import lock_customer, read_customer
from billing.db import table_of
from billing.errors import InvoiceNotFinalized, MissingReason, NotFound, NotReissuable
from billing.invoicing.close import Draft, draft, issue_period_invoice
from billing.invoicing.issue import Issued, display_number
from billing.invoicing.models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus
from billing.money import format_exact, format_quantity


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


def line_json(line: Any, currency: str) -> dict[str, Any]:
    return {
        "position": line.position,
        "kind": line.kind,
        "product": line.product,
        "description": line.description,
        "quantity": format_quantity(line.quantity),
        "amount": format_exact(line.amount, currency),
        "tiers": json.loads(line.detail) if line.detail else None,
    }


def invoice_json(connection: Connection, row: Any, *, with_lines: bool = True) -> dict[str, Any]:
    def money(value: Decimal) -> str:
        return format_exact(value, row.currency)

    answer: dict[str, Any] = {
        "id": row.id,
        "number": display_number(row.series, row.number),
        "customer": row.customer_id,
        "kind": row.kind,
        "status": row.status,
        "currency": row.currency,
        "period_start": None if row.period_start is None else row.period_start.isoformat(),
        "period_end": None if row.period_end is None else row.period_end.isoformat(),
        "subtotal": money(row.subtotal),
        "discount_total": money(row.discount_total),
        "total": money(row.total),
        "credits_applied": money(row.credits_applied),
        "amount_due": money(row.amount_due),
        "issued_at": row.issued_at.isoformat(),
        "reference": row.reference,
        "replaces": row.replaces,
        "voided_at": None if row.voided_at is None else row.voided_at.isoformat(),
        "void_reason": row.void_reason,
    }
    if with_lines:
        answer["lines"] = [line_json(line, row.currency) for line in _lines(connection, row.id)]
    return answer


def get_invoice(connection: Connection, invoice_id: str) -> dict[str, Any]:
    return invoice_json(connection, _invoice_row(connection, invoice_id))


def customer_of(connection: Connection, invoice_id: str) -> str:
    return str(_invoice_row(connection, invoice_id).customer_id)


def list_invoices(connection: Connection, customer_id: str) -> list[dict[str, Any]]:
    table = table_of(Invoice)
    query = select(table).where(table.c.customer_id == customer_id).order_by(table.c.number.desc())
    return [invoice_json(connection, row, with_lines=False) for row in connection.execute(query)]


def upcoming(
    connection: Connection, catalog: Catalog, customer_id: str, now: dt.datetime
) -> dict[str, Any]:
    """The running period's invoice as it would be if the period closed now (nothing written)."""
    customer = read_customer(connection, customer_id)
    period = period_for(customer.anchor_day, now)
    made = draft(connection, catalog, customer, period, now, record=False)
    return _draft_json(made, period, catalog.currency)


def _draft_json(made: Draft, period: Period, currency: str) -> dict[str, Any]:
    def money(value: Decimal) -> str:
        return format_exact(value, currency)

    d = made.totals
    return {
        "customer": made.customer_id,
        "status": "draft",
        "currency": currency,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
        "subtotal": money(d.subtotal),
        "discount_total": money(d.discount_total),
        "total": money(d.total),
        "credits_applied": money(d.credits_applied),
        "amount_due": money(d.amount_due),
        "lines": [
            {
                "position": index,
                "kind": line.kind,
                "product": line.product,
                "description": line.description,
                "quantity": format_quantity(line.quantity),
                "amount": money(line.amount),
                "tiers": json.loads(line.detail) if line.detail else None,
            }
            for index, line in enumerate(made.lines, start=1)
        ],
    }


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
