"""What the invoices already carry of a period's usage: the units billed, their amount and the
units shown capped, per product, summed from the standing invoices' lines
(docs/invoicing.md, "Late usage" and "Voiding an unpaid invoice").

An invoice *stands* for its lines unless it was voided and re-issued: an open or paid
invoice bills them, and a void without a replacement wrote them off (what it billed is not
billed again). A voided invoice that was re-issued stands for nothing: its replacement
carries the same scope, re-priced. Adjustments for late usage, and a re-issued invoice,
are then the exact difference between the period priced in full and what stands, so a
unit is billed once whatever was voided, re-issued or adjusted, and in which order.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import ColumnElement, Connection, Table, and_, exists, or_, select
from sqlalchemy.orm import aliased

from billing.db import table_of
from billing.invoicing.models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, LineKind
from billing.money import EXACT, ZERO

_INVOICES = table_of(Invoice)
_LINES = table_of(InvoiceLine)
_BILLED = (LineKind.USAGE, LineKind.ADJUSTMENT)
_PRICED = (LineKind.USAGE, LineKind.DISCOUNT, LineKind.ADJUSTMENT)


@dataclass(frozen=True, slots=True)
class Carried:
    """One product's period as the standing invoices carry it: `units` billed (usage and
    adjustment lines, in the product's units), their `amount` after the percentage
    discount (major units of the invoice currency), and `capped` units shown above the cap
    (not billed)."""

    units: Decimal = ZERO
    amount: Decimal = ZERO
    capped: Decimal = ZERO

    def __bool__(self) -> bool:
        return bool(self.units or self.amount or self.capped)


NOTHING = Carried()


def standing(invoices: Table = _INVOICES) -> ColumnElement[bool]:
    """The condition on `invoices` (the invoice table, or an alias of it) that an invoice
    stands for its lines: not void, or void without a replacement (written off)."""
    replacement = aliased(_INVOICES)
    replaced = exists().where(replacement.c.replaces == invoices.c.id)
    return or_(invoices.c.status != InvoiceStatus.VOID, ~replaced)


def carried(
    connection: Connection,
    customer_id: str,
    period_start: dt.datetime,
    *,
    excluding: str | None = None,
) -> dict[str, Carried]:
    """What the customer's standing usage invoices carry of the period starting at
    `period_start`, by product key (a product nothing carries is absent): its own
    invoice's usage, discount and capped lines, and the adjustment (and capped) lines of
    later invoices that correct it. `excluding` leaves one invoice out (the one being
    replaced)."""
    query = (
        select(_LINES.c.product, _LINES.c.kind, _LINES.c.quantity, _LINES.c.amount)
        .join(_INVOICES, _INVOICES.c.id == _LINES.c.invoice_id)
        .where(_INVOICES.c.customer_id == customer_id)
        .where(_INVOICES.c.kind == InvoiceKind.USAGE)
        .where(_LINES.c.product.is_not(None))
        .where(_LINES.c.kind.in_([*_PRICED, LineKind.CAPPED]))
        .where(
            or_(
                _LINES.c.corrects_period == period_start,
                and_(_LINES.c.corrects_period.is_(None), _INVOICES.c.period_start == period_start),
            )
        )
        .where(standing())
    )
    if excluding is not None:
        query = query.where(_INVOICES.c.id != excluding)
    units: dict[str, Decimal] = defaultdict(lambda: ZERO)
    amounts: dict[str, Decimal] = defaultdict(lambda: ZERO)
    capped: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for row in connection.execute(query):
        if row.kind in _BILLED:
            units[row.product] = EXACT.add(units[row.product], row.quantity)
        if row.kind in _PRICED:
            amounts[row.product] = EXACT.add(amounts[row.product], row.amount)
        if row.kind == LineKind.CAPPED:
            capped[row.product] = EXACT.add(capped[row.product], row.quantity)
    return {
        product: Carried(units[product], amounts[product], capped[product])
        for product in {*units, *amounts, *capped}
    }


def adjusted_by(connection: Connection, invoice_id: str) -> list[tuple[str, dt.datetime]]:
    """The (product, period start) of each earlier period an invoice adjusted (its
    adjustment and capped lines for periods other than its own), in period order."""
    query = (
        select(_LINES.c.product, _LINES.c.corrects_period)
        .join(_INVOICES, _INVOICES.c.id == _LINES.c.invoice_id)
        .where(_LINES.c.invoice_id == invoice_id)
        .where(_LINES.c.kind.in_([LineKind.ADJUSTMENT, LineKind.CAPPED]))
        .where(_LINES.c.product.is_not(None))
        .where(_LINES.c.corrects_period.is_not(None))
        .where(_LINES.c.corrects_period != _INVOICES.c.period_start)
        .distinct()
    )
    return sorted(
        ((row.product, row.corrects_period) for row in connection.execute(query)),
        key=lambda key: (key[1], key[0]),
    )
