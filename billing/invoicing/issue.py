"""Issuing an invoice: numbered without gaps, finalized in the caller's transaction.

The number comes from `invoice_series` with UPDATE ... RETURNING, which holds the series
row locked until the transaction ends: two transactions issuing at once take consecutive
numbers, and a transaction that rolls back gives its number back, so a series never has a
gap (docs/invoicing.md).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, insert, text

from billing.db import table_of
from billing.invoicing.models import Invoice, InvoiceLine
from billing.money import EXACT, ZERO, round_to_minor

SERIES = "INV"


@dataclass(frozen=True, slots=True)
class LineIn:
    description: str
    quantity: Decimal
    unit_amount: Decimal
    amount: Decimal  # rounded to the minor unit by the caller
    kind: str = "commitment"  # usage | discount | credits | commitment
    product: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Issued:
    id: str
    number: str  # INV-000001
    total: Decimal


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
    kind: str,
    currency: str,
    lines: list[LineIn],
    now: dt.datetime,
    reference: str | None = None,
    period: tuple[dt.datetime, dt.datetime] | None = None,
    replaces: str | None = None,
    invoice_id: str | None = None,
) -> Issued:
    """A finalized invoice. Its figures are sums of its rounded lines:

    subtotal = usage and commitment lines; discount_total = -(discount lines);
    total = subtotal - discount_total; credits_applied = -(credits lines);
    amount_due = total - credits_applied = the sum of every line.
    """
    for line in lines:
        if round_to_minor(line.amount, currency) != line.amount:
            raise ValueError(f"line amount {line.amount} is not rounded to {currency}")

    def sum_of(*kinds: str) -> Decimal:
        return EXACT.plus(sum((x.amount for x in lines if x.kind in kinds), ZERO))

    subtotal = sum_of("usage", "commitment")
    discount_total = -sum_of("discount")
    credits_applied = -sum_of("credits")
    total = EXACT.subtract(subtotal, discount_total)
    amount_due = EXACT.subtract(total, credits_applied)
    assert amount_due == sum_of("usage", "commitment", "discount", "credits")
    number = next_number(connection)
    invoice_id = invoice_id or "inv_" + secrets.token_hex(8)
    connection.execute(
        _INSERT_INVOICE,
        {
            "id": invoice_id,
            "customer_id": customer_id,
            "kind": kind,
            "status": "finalized",
            "series": SERIES,
            "number": number,
            "currency": currency,
            "period_start": None if period is None else period[0],
            "period_end": None if period is None else period[1],
            "subtotal": subtotal,
            "discount_total": discount_total,
            "total": total,
            "credits_applied": credits_applied,
            "amount_due": amount_due,
            "reference": reference,
            "replaces": replaces,
            "issued_at": now,
            "voided_at": None,
            "void_reason": None,
            "voided_by": None,
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
                }
                for position, line in enumerate(lines, start=1)
            ],
        )
    return Issued(invoice_id, display_number(SERIES, number), amount_due)
