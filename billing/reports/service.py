"""Invoice listings and revenue, read straight from invoices and their lines.

Every figure is a sum of the amounts stored on invoices and credit notes (never recomputed
from usage), so a report reconciles with the invoices to the cent. Voided invoices are listed
(with their status) but left out of revenue. Listings stream: rows are fetched in chunks from a
server-side cursor, so a CSV of 100,000 invoices never sits in memory.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, case, func, literal, select

from billing.catalog import Catalog
from billing.catalog.models import NONE
from billing.db import read_only, table_of
from billing.errors import (
    InvalidMonth,
    MissingField,
    ReversedRange,
    UnknownDimension,
    UnknownProduct,
    UnknownStatus,
)
from billing.invoicing.calculate import read_detail
from billing.invoicing.models import (
    CreditNote,
    CreditNoteLine,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
)
from billing.invoicing.numbers import display_number
from billing.metering.store import usage_table
from billing.money import ZERO, billing_unit, format_exact, format_quantity
from billing.pricing.allocate import largest_remainder
from billing.reports.public import CapHitRow, InvoiceReportRow
from billing.stripe_sync.models import InvoiceSync

_INVOICES = table_of(Invoice)
_LINES = table_of(InvoiceLine)
_SYNC = table_of(InvoiceSync)
_NOTES = table_of(CreditNote)
_NOTE_LINES = table_of(CreditNoteLine)
CHUNK = 1000


@dataclass(frozen=True, slots=True)
class InvoiceFilter:
    start: dt.datetime | None = None  # periods starting on or after (issued on or after)
    end: dt.datetime | None = None  # periods starting before (issued before)
    status: str | None = None
    customer: str | None = None
    sync_status: str | None = None
    # what `start`/`end` bound: the billing period's start ("service") or the issue ("issued")
    basis: str = "service"


# The two months an invoice can be reported in (docs/finance.md, "Billings"): the month its
# billing period starts (the service it charges for) or the month it was issued.
BASES = ("service", "issued")


def _query(filters: InvoiceFilter) -> Any:
    query = (
        select(_INVOICES, _SYNC.c.status.label("sync_status"))
        .select_from(_INVOICES.outerjoin(_SYNC, _SYNC.c.invoice_id == _INVOICES.c.id))
        .order_by(_INVOICES.c.series, _INVOICES.c.number)
    )
    dated = _INVOICES.c.issued_at if filters.basis == "issued" else _INVOICES.c.period_start
    if filters.start is not None:
        query = query.where(dated >= filters.start)
    if filters.end is not None:
        query = query.where(dated < filters.end)
    if filters.status:
        query = query.where(_INVOICES.c.status == filters.status)
    if filters.customer:
        query = query.where(_INVOICES.c.customer_id == filters.customer)
    if filters.sync_status in _NO_SYNC_ROW:  # told apart by amount due (stream_invoices)
        query = query.where(_SYNC.c.status.is_(None))
    elif filters.sync_status:
        query = query.where(_SYNC.c.status == filters.sync_status)
    return query


def invoice_filter(
    start: dt.datetime | None,
    end: dt.datetime | None,
    status: str | None,
    customer: str | None,
    sync_status: str | None,
) -> InvoiceFilter:
    """The listing's filters, each accepting exactly the values its column shows; one
    UnknownStatus naming every refused filter (the first as `field`)."""
    problems = []
    if status and status not in INVOICE_STATUSES:
        problems.append(
            ("status", f"status is one of {', '.join(INVOICE_STATUSES)}, got {status!r}")
        )
    if sync_status and sync_status not in SYNC_FILTERS:
        allowed = ", ".join(SYNC_FILTERS)
        problems.append(("sync_status", f"sync_status is one of {allowed}, got {sync_status!r}"))
    if problems:
        raise UnknownStatus("; ".join(text for _, text in problems), field=problems[0][0])
    return InvoiceFilter(start, end, status or None, customer or None, sync_status or None)


def invoice_row(row: Any, credited: Decimal = ZERO) -> InvoiceReportRow:
    """One invoice as the listing shows it, with what its credit notes credit (`credited`,
    major units): money as exact strings."""

    def money(value: Decimal) -> str:
        return format_exact(value, row.currency)

    return InvoiceReportRow.model_validate(
        {
            "number": display_number(row.series, row.number),
            "id": row.id,
            "customer": row.customer_id,
            "kind": row.kind,
            "status": row.status,
            "period_start": "" if row.period_start is None else row.period_start.date().isoformat(),
            "period_end": "" if row.period_end is None else row.period_end.date().isoformat(),
            "currency": row.currency,
            "subtotal": money(row.subtotal),
            "discount_total": money(row.discount_total),
            "total": money(row.total),
            "credits_applied": money(row.credits_applied),
            "amount_due": money(row.amount_due),
            "credited": money(credited),
            "paid_at": "" if row.paid_at is None else row.paid_at.isoformat(),
            "sync_status": row.sync_status
            or ("not_synced" if row.amount_due > 0 else "nothing_due"),
            "issued_at": row.issued_at.isoformat(),
        }
    )


def stream_invoices(engine: Engine, filters: InvoiceFilter) -> Iterator[InvoiceReportRow]:
    """The invoices matching `filters`, oldest number first, fetched CHUNK at a time."""
    with read_only(engine) as connection:
        credited = _credited(connection)
        connection = connection.execution_options(stream_results=True, yield_per=CHUNK)
        for row in connection.execute(_query(filters)):
            shown = invoice_row(row, credited.get(row.id, ZERO))
            if filters.sync_status in _NO_SYNC_ROW and shown.sync_status != filters.sync_status:
                continue  # amounts are compared here, exactly (SQLite stores them as text)
            yield shown


def _credited(connection: Connection) -> dict[str, Decimal]:
    """What credit notes credit per invoice, summed exactly here (SQLite would sum the
    stored text as floats); notes are few beside invoices."""
    found: dict[str, Decimal] = defaultdict(Decimal)
    for invoice_id, total in connection.execute(select(_NOTES.c.invoice_id, _NOTES.c.total)):
        found[invoice_id] += total
    return found


@dataclass
class Revenue:
    """One group's figures; all sums of invoice amounts."""

    list_amount: Decimal = ZERO  # usage lines
    discounts: Decimal = ZERO
    adjustments: Decimal = ZERO  # late usage of earlier periods (docs/invoicing.md)
    commitments: Decimal = ZERO  # commitment (prepaid credit) lines
    credits_applied: Decimal = ZERO
    amount_due: Decimal = ZERO  # as invoiced
    credited: Decimal = ZERO  # credit notes against those invoices (positive)
    invoices: set[str] = field(default_factory=set)

    @property
    def net(self) -> Decimal:
        """What the invoices still claim after their credit notes: amount_due - credited."""
        return self.amount_due - self.credited


def revenue(
    connection: Connection,
    group_by: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    basis: str = "service",
) -> tuple[dict[str, Revenue], Revenue]:
    """Revenue of issued invoices (every status but void: open, paid, payment failed,
    uncollectible) by product, customer or month, and the grand total.

    By product, usage, discount and adjustment lines fall to their product, commitment lines
    to "(commitments)" and credits lines to "(credits)"; a credit note's lines fall where the
    lines they credit do; by customer or month, whole invoices. `basis` says which month an
    invoice belongs to, for `start`/`end` and the month groups: "service", the month its
    billing period starts; "issued", the month it was issued. Every group's amount_due =
    list - discounts + adjustments + commitments - credits_applied, and net = amount_due -
    credited, to the cent.
    """
    month_key = _issue_month_key if basis == "issued" else _month_key
    key_of = {"product": _product_key, "customer": _customer_key, "month": month_key}[group_by]
    groups: dict[str, Revenue] = defaultdict(Revenue)
    total = Revenue()
    for invoice, line in _issued_lines(connection, start, end, basis):
        for target in (groups[key_of(invoice, line)], total):
            _add(target, invoice.id, line)
    return dict(sorted(groups.items())), total


def revenue_by_month_and_product(
    connection: Connection,
    start: dt.datetime | None,
    end: dt.datetime | None,
    basis: str = "service",
) -> dict[str, dict[str, Revenue]]:
    """Revenue per month (as `basis` dates it, see `revenue`) and product, for the finance
    chart; keys sorted."""
    month_key = _issue_month_key if basis == "issued" else _month_key
    months_: dict[str, dict[str, Revenue]] = defaultdict(lambda: defaultdict(Revenue))
    for invoice, line in _issued_lines(connection, start, end, basis):
        _add(months_[month_key(invoice, line)][_product_key(invoice, line)], invoice.id, line)
    return {month: dict(sorted(row.items())) for month, row in sorted(months_.items())}


def _issued_lines(
    connection: Connection,
    start: dt.datetime | None,
    end: dt.datetime | None,
    basis: str = "service",
) -> Iterator[tuple[Any, Any]]:
    """(invoice, line) for every line of every issued invoice in the range, then one
    (invoice, line) per credit note line, as kind "credit_note" with the credited line's
    product and the credited amount."""
    filters = InvoiceFilter(start=start, end=end, basis=basis)
    invoices = {row.id: row for row in connection.execute(_query(filters)) if row.status != "void"}
    lines = connection.execute(
        select(
            _LINES.c.invoice_id,
            _LINES.c.kind,
            _LINES.c.product,
            _LINES.c.amount,
            _LINES.c.detail,
            _LINES.c.position,
        )
        .join(_INVOICES, _INVOICES.c.id == _LINES.c.invoice_id)
        .where(_INVOICES.c.status != "void")
    )
    for line in lines:
        invoice = invoices.get(line.invoice_id)
        if invoice is not None:
            yield invoice, line
    credited = connection.execute(
        select(
            _NOTES.c.invoice_id,
            literal("credit_note").label("kind"),
            _LINES.c.product,
            _NOTE_LINES.c.amount,
            _LINES.c.detail,
            _LINES.c.position,
        )
        .join(_NOTES, _NOTES.c.id == _NOTE_LINES.c.credit_note_id)
        .join(
            _LINES,
            (_LINES.c.invoice_id == _NOTES.c.invoice_id)
            & (_LINES.c.position == _NOTE_LINES.c.invoice_line),
        )
    )
    for line in credited:
        invoice = invoices.get(line.invoice_id)
        if invoice is not None:
            yield invoice, line


def dimension_of(catalog: Catalog, product: str | None, dimension: str | None) -> tuple[str, str]:
    """The product and dimension a by-dimension report names, checked against the tier
    files (missing_field, unknown_product, unknown_dimension naming the parameter)."""
    if not product:
        raise MissingField("group_by=dimension needs product=<key>", field="product")
    found = catalog.products.get(product)
    if found is None:
        raise UnknownProduct(f"unknown product {product!r}", field="product")
    if not dimension:
        raise MissingField("group_by=dimension needs dimension=<name>", field="dimension")
    if dimension not in found.dimensions:
        has = ", ".join(found.dimensions) or "none"
        raise UnknownDimension(
            f"{product} has no dimension {dimension!r}; its dimensions: {has}", field="dimension"
        )
    return product, dimension


NOT_BROKEN_DOWN = "(not broken down)"  # adjustments of late usage: billed without parts


@dataclass(frozen=True, slots=True)
class _Share:
    kind: str
    amount: Decimal


def revenue_by_dimension(
    connection: Connection,
    product: str,
    dimension: str,
    currency: str,
    start: dt.datetime | None,
    end: dt.datetime | None,
    basis: str = "service",
) -> tuple[dict[str, Revenue], Revenue]:
    """`product`'s revenue by the value of one of its dimensions (docs/finance.md,
    "By dimension"): each usage line as its breakdown splits it (the parts stored with the
    line, which the invoice shows); its discount line and the credit notes against it split
    in the same proportions by the largest-remainder rule, so every group and the total are
    exact and the total equals the product's row of `revenue(group_by="product")`. A usage
    line without a breakdown (issued before the product had dimensions) counts as "(none)";
    adjustments for late usage as "(not broken down)". Values are those of `dimension` alone:
    parts that differ in another dimension add up."""
    unit = billing_unit(currency)
    lines = [(i, line) for i, line in _issued_lines(connection, start, end, basis)]
    parts: dict[str, list[tuple[str, Decimal]]] = {}  # invoice id -> usage line's parts
    for invoice, line in lines:
        if line.product == product and line.kind == "usage":
            parts[invoice.id] = _parts_of(line.detail, dimension) or [(NONE, line.amount)]
    groups: dict[str, Revenue] = defaultdict(Revenue)
    total = Revenue()
    for invoice, line in lines:
        if line.product != product:
            continue
        if line.kind == "adjustment":
            shares = [(NOT_BROKEN_DOWN, line.amount)]
        elif line.kind == "usage":
            shares = parts[invoice.id]
        else:  # its discount line, a credit note's line: as the usage line splits
            weights = parts.get(invoice.id) or [(NONE, Decimal(1))]
            if not any(w for _, w in weights):
                weights = [(NONE, Decimal(1))]
            amounts = largest_remainder(line.amount, [abs(w) for _, w in weights], unit)
            shares = [(key, amount) for (key, _), amount in zip(weights, amounts, strict=True)]
        for key, amount in shares:
            share = _Share(line.kind, amount)
            _add(groups[key], invoice.id, share)
        _add(total, invoice.id, _Share(line.kind, line.amount))
    return dict(sorted(groups.items())), total


def _parts_of(detail: str, dimension: str) -> list[tuple[str, Decimal]]:
    """A usage line's parts by the value of `dimension`: (value, amount), values merged,
    in order of first appearance; [] for a line without a breakdown."""
    merged: dict[str, Decimal] = {}
    for part in read_detail(detail)[1] or []:
        value = str(part["dimensions"].get(dimension, NONE))
        merged[value] = merged.get(value, ZERO) + Decimal(part["amount"])
    return list(merged.items())


def _product_key(invoice: Any, line: Any) -> str:
    return str(line.product or ("(commitments)" if line.kind == "commitment" else "(credits)"))


def _customer_key(invoice: Any, line: Any) -> str:
    return str(invoice.customer_id)


def _month_key(invoice: Any, line: Any) -> str:
    start_at = invoice.period_start or invoice.issued_at
    return f"{start_at.year:04d}-{start_at.month:02d}"


def _issue_month_key(invoice: Any, line: Any) -> str:
    issued_at = invoice.issued_at
    return f"{issued_at.year:04d}-{issued_at.month:02d}"


def _add(target: Revenue, invoice_id: str, line: Any) -> None:
    target.invoices.add(invoice_id)
    if line.kind == "credit_note":
        target.credited += line.amount
        return
    if line.kind == "usage":
        target.list_amount += line.amount
    elif line.kind == "discount":
        target.discounts -= line.amount
    elif line.kind == "adjustment":
        target.adjustments += line.amount
    elif line.kind == "commitment":
        target.commitments += line.amount
    elif line.kind == "credits":
        target.credits_applied -= line.amount
    target.amount_due += line.amount


def months(start: str | None, end: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """`from`/`to` labels YYYY-MM as [first day of `start`, first day after `end`)."""

    def first(label: str, name: str) -> dt.datetime:
        match = re.fullmatch(r"(\d{4})-(\d{2})", label)
        if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
            raise InvalidMonth(f"{name}: a month is YYYY-MM, got {label!r}", field=name)
        return dt.datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=dt.UTC)

    lower = None if start is None else first(start, "from")
    upper = None
    if end is not None:
        last = first(end, "to")
        if (last.year, last.month) != (9999, 12):  # else: no month after it, no bound
            upper = last.replace(year=last.year + last.month // 12, month=last.month % 12 + 1)
    if lower is not None and upper is not None and upper <= lower:
        raise ReversedRange(f"to ({end}) is before from ({start})", field="to")
    return lower, upper


def caps_hit(connection: Connection, now: dt.datetime) -> list[CapHitRow]:
    """Customer x product pairs limited in their current period, with the cap."""
    table = usage_table()
    rows = connection.execute(
        select(
            table.c.customer_id,
            table.c.product,
            table.c.period_start,
            table.c.cap_amount,
            table.c.limit_quantity,
            table.c.quantity,
            table.c.over_limit_events,
        )
        .where(table.c.limited, table.c.period_end > now)
        .order_by(table.c.customer_id, table.c.product)
    )
    return [
        CapHitRow(
            customer=r.customer_id,
            product=r.product,
            period_start=r.period_start.date().isoformat(),
            cap="" if r.cap_amount is None else format_quantity(r.cap_amount),
            limit_quantity=format_quantity(r.limit_quantity),
            accepted_quantity=format_quantity(r.quantity),
            over_limit_events=str(r.over_limit_events),
        )
        for r in rows
    ]


RETRYABLE = ("pending", "sync_failed", "mismatch")
INVOICE_STATUSES = tuple(InvoiceStatus)
SYNC_ORDER = (
    "sync_failed",
    "mismatch",
    "void_refused",
    "held",
    "pending",
    "payment_failed",
    "synced",
    "paid",
    "voided",
)
# what the listing's sync_status column shows: a sync row's state, or why there is none
_NO_SYNC_ROW = ("not_synced", "nothing_due")
SYNC_FILTERS = (*SYNC_ORDER, *_NO_SYNC_ROW)


def sync_panel(connection: Connection, limit: int = 200) -> list[dict[str, str]]:
    """Invoices' Stripe sync state, failures first, then waiting, then done; newest first
    within each state."""
    order = {status: index for index, status in enumerate(SYNC_ORDER)}
    found = connection.execute(
        select(_SYNC, _INVOICES.c.series, _INVOICES.c.number, _INVOICES.c.customer_id)
        .join(_INVOICES, _INVOICES.c.id == _SYNC.c.invoice_id)
        .order_by(
            case(order, value=_SYNC.c.status, else_=len(order)),
            _SYNC.c.updated_at.desc(),
            _SYNC.c.invoice_id,
        )
        .limit(limit)
    )
    return [
        {
            "invoice": r.invoice_id,
            "number": display_number(r.series, r.number),
            "customer": r.customer_id,
            "status": r.status,
            "stripe_invoice": r.stripe_invoice_id or "",
            "attempts": str(r.attempts),
            "next_attempt_at": r.next_attempt_at.isoformat(),
            "last_error": r.last_error or "",
            "updated_at": r.updated_at.isoformat(),
            "retryable": "yes" if r.status in RETRYABLE else "",
        }
        for r in found
    ]


def sync_counts(connection: Connection) -> dict[str, int]:
    """How many invoices are in each sync state."""
    rows = connection.execute(select(_SYNC.c.status, func.count()).group_by(_SYNC.c.status))
    return {status: int(count) for status, count in rows}
