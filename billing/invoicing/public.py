"""Invoices as the API and the pages show them: one builder per shape, money as strings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Literal, NamedTuple, Protocol

from pydantic import Field

from billing.customers.periods import Period
from billing.invoicing.calculate import read_detail
from billing.invoicing.credit_notes import NoteRecord
from billing.invoicing.models import CreditNoteOutcome, InvoiceStatus
from billing.invoicing.numbers import display_number
from billing.money import EXACT, ZERO, format_exact, format_quantity
from billing.public import Day, MoneyText, PublicModel, QuantityText, Timestamp


class LineRecord(Protocol):
    """What a line shows, stored (`InvoiceLine`) or drafted (`LineIn`)."""

    @property
    def kind(self) -> str: ...
    @property
    def product(self) -> str | None: ...
    @property
    def description(self) -> str: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def detail(self) -> str: ...


class StoredLineRecord(LineRecord, Protocol):
    """A line as stored, with its position on the invoice."""

    @property
    def position(self) -> int: ...


class InvoiceRecord(Protocol):
    """The stored invoice row an answer is built from."""

    @property
    def id(self) -> str: ...
    @property
    def series(self) -> str: ...
    @property
    def number(self) -> int: ...
    @property
    def customer_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def period_start(self) -> dt.datetime | None: ...
    @property
    def period_end(self) -> dt.datetime | None: ...
    @property
    def subtotal(self) -> Decimal: ...
    @property
    def discount_total(self) -> Decimal: ...
    @property
    def total(self) -> Decimal: ...
    @property
    def credits_applied(self) -> Decimal: ...
    @property
    def amount_due(self) -> Decimal: ...
    @property
    def issued_at(self) -> dt.datetime: ...
    @property
    def reference(self) -> str | None: ...
    @property
    def replaces(self) -> str | None: ...
    @property
    def voided_at(self) -> dt.datetime | None: ...
    @property
    def void_reason(self) -> str | None: ...
    @property
    def paid_at(self) -> dt.datetime | None: ...


class InvoiceTierPublic(PublicModel):
    """One tier of a usage line's breakdown, exact (rounded once, on the line)."""

    from_: QuantityText = Field(alias="from", description="exclusive lower bound")
    up_to: QuantityText | None = Field(description="inclusive upper bound; null for none")
    quantity: QuantityText
    unit_price: MoneyText = Field(description="exact, per unit")
    flat_fee: MoneyText = Field(description="exact")
    amount: MoneyText = Field(
        description="exact, not rounded: quantity x unit_price + flat_fee; the line's amount "
        "is the sum of its tiers rounded once, half-up, to the currency's minor unit"
    )


class BreakdownPartPublic(PublicModel):
    """One part of a usage line: its dimension values, the units accepted with them, and
    its share of the line's amount (largest remainder, in proportion to quantity)."""

    dimensions: dict[str, str] = Field(examples=[{"project": "web"}])
    quantity: QuantityText
    amount: MoneyText


class InvoiceLinePublic(PublicModel):
    position: int = Field(description="1, 2, ... in the order the lines are shown")
    kind: str = Field(description="usage | discount | credits | commitment")
    product: str | None
    description: str
    quantity: QuantityText
    amount: MoneyText
    tiers: list[InvoiceTierPublic] | None = Field(description="a usage line's tier breakdown")
    breakdown: list[BreakdownPartPublic] | None = Field(
        None,
        description="a usage line by dimension value (a product with dimensions): amounts sum "
        'to the line to the cent (docs/invoicing.md, "Breakdowns")',
    )


class InvoiceSummaryPublic(PublicModel):
    """An invoice without its lines, as a listing shows it."""

    id: str
    number: str = Field(examples=["INV-000123"])
    customer: str
    kind: str = Field(description="usage | commitment")
    status: str = Field(
        description="finalized (open, unpaid) | payment_failed (open) | paid | uncollectible | void"
    )
    currency: str
    period_start: Timestamp | None
    period_end: Timestamp | None
    subtotal: MoneyText = Field(description="usage lines at list price, after caps")
    discount_total: MoneyText = Field(description="percentage discount lines")
    total: MoneyText = Field(description="subtotal less discounts")
    credits_applied: MoneyText = Field(description="prepaid credit drawn")
    amount_due: MoneyText = Field(description="total less credits applied")
    issued_at: Timestamp
    reference: str | None = Field(description="what it sells, e.g. the commitment id")
    replaces: str | None = Field(description="the voided invoice this one re-issues")
    voided_at: Timestamp | None
    void_reason: str | None
    paid_at: Timestamp | None
    credited_total: MoneyText = Field(description="what its credit notes credit, in all")
    net_total: MoneyText = Field(description="total less its credit notes")
    amount_remaining: MoneyText = Field(
        description="what is still owed: amount_due less reduce_due credit notes (0 once "
        "paid, void or uncollectible)"
    )


class CreditNoteLinePublic(PublicModel):
    position: int
    invoice_line: int = Field(description="the position of the credited invoice line")
    description: str
    quantity: QuantityText | None = Field(description="units credited, when re-priced")
    amount: MoneyText


class CreditNotePublic(PublicModel):
    """A credit note: immutable, numbered CN-000001..., against one invoice."""

    id: str
    number: str = Field(examples=["CN-000001"])
    invoice: str = Field(description="the credited invoice's id")
    invoice_number: str
    customer: str
    currency: str
    reason: str
    outcome: str = Field(description="reduce_due | refund | credit_balance")
    total: MoneyText
    issued_at: Timestamp
    issued_by: str
    lines: list[CreditNoteLinePublic]


class CreditNoteListPublic(PublicModel):
    invoice: str
    credit_notes: list[CreditNotePublic] = Field(description="in number order")


class InvoicePublic(InvoiceSummaryPublic):
    """An invoice with its lines, their tier breakdown, its credit notes, when it is due, and
    the numbers of the invoices a void and its re-issue link."""

    lines: list[InvoiceLinePublic]
    credit_notes: list[CreditNotePublic] = Field(description="in number order")
    due_date: Day | None = Field(
        description="the day payment is due: the day of issue (UTC) plus the payment terms "
        '(docs/invoicing.md, "Due date"); null when void: nothing is due'
    )
    replaces_number: str | None = Field(
        description="the number of the voided invoice this one re-issues", examples=["INV-000041"]
    )
    replaced_by: str | None = Field(description="a void invoice's re-issue: its id")
    replaced_by_number: str | None = Field(
        description="a void invoice's re-issue: its number", examples=["INV-000043"]
    )
    catalog_digest: str | None = Field(
        default=None,
        description="SHA-256 of the tier files a period invoice was priced with (`billing "
        'invoices verify` re-derives it; docs/pricing-changes.md, "Verifiable invoices"); '
        "null on commitment invoices and invoices issued before it was kept",
    )


class InvoiceListPublic(PublicModel):
    customer: str
    invoices: list[InvoiceSummaryPublic] = Field(description="newest first")


class UpcomingInvoicePublic(PublicModel):
    """The running period's invoice as it would be if the period closed now."""

    customer: str
    status: Literal["draft"]
    currency: str
    period_start: Timestamp
    period_end: Timestamp
    subtotal: MoneyText
    discount_total: MoneyText
    total: MoneyText
    credits_applied: MoneyText
    amount_due: MoneyText
    lines: list[InvoiceLinePublic]


class VoidPublic(PublicModel):
    voided: InvoicePublic
    reissued: InvoicePublic | None = Field(description="the corrected invoice, when re-issued")


class InvoiceRef(NamedTuple):
    """Another invoice an invoice names: its id and its number."""

    id: str
    number: str


def due_date(issued_at: dt.datetime, status: str, due_days: int) -> dt.date | None:
    """The day an invoice is due: `due_days` after the day it was issued, in UTC (the terms:
    Settings.invoice_due_days); None for a void invoice, on which nothing is due."""
    if InvoiceStatus(status) is InvoiceStatus.VOID:
        return None
    return issued_at.astimezone(dt.UTC).date() + dt.timedelta(days=due_days)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def line_public(position: int, line: LineRecord, currency: str) -> InvoiceLinePublic:
    """A stored or drafted line as answers show it (its tiers from the JSON kept with it)."""
    tiers, parts = read_detail(line.detail)
    return InvoiceLinePublic(
        position=position,
        kind=line.kind,
        product=line.product,
        description=line.description,
        quantity=format_quantity(line.quantity),
        amount=format_exact(line.amount, currency),
        tiers=None if tiers is None else [InvoiceTierPublic.model_validate(t) for t in tiers],
        breakdown=None
        if parts is None
        else [
            BreakdownPartPublic(
                dimensions=p["dimensions"],
                quantity=p["quantity"],
                amount=format_exact(Decimal(p["amount"]), currency),
            )
            for p in parts
        ],
    )


def _summary_fields(row: InvoiceRecord) -> dict[str, object]:
    currency = row.currency
    return {
        "id": row.id,
        "number": display_number(row.series, row.number),
        "customer": row.customer_id,
        "kind": row.kind,
        "status": row.status,
        "currency": currency,
        "period_start": _iso(row.period_start),
        "period_end": _iso(row.period_end),
        "subtotal": format_exact(row.subtotal, currency),
        "discount_total": format_exact(row.discount_total, currency),
        "total": format_exact(row.total, currency),
        "credits_applied": format_exact(row.credits_applied, currency),
        "amount_due": format_exact(row.amount_due, currency),
        "issued_at": row.issued_at.isoformat(),
        "reference": row.reference,
        "replaces": row.replaces,
        "voided_at": _iso(row.voided_at),
        "void_reason": row.void_reason,
    }


def _net_fields(row: InvoiceRecord, notes: Sequence[NoteRecord]) -> dict[str, object]:
    currency = row.currency
    credited = EXACT.plus(sum((note.total for note in notes), ZERO))
    reduced = EXACT.plus(
        sum((n.total for n in notes if n.outcome is CreditNoteOutcome.REDUCE_DUE), ZERO)
    )
    status = InvoiceStatus(row.status)
    remaining = EXACT.subtract(row.amount_due, reduced) if status.open else ZERO
    return {
        "paid_at": _iso(row.paid_at),
        "credited_total": format_exact(credited, currency),
        "net_total": format_exact(EXACT.subtract(row.total, credited), currency),
        "amount_remaining": format_exact(remaining, currency),
    }


def invoice_summary(row: InvoiceRecord, notes: Sequence[NoteRecord] = ()) -> InvoiceSummaryPublic:
    """A stored invoice without its lines (`notes`: its credit notes)."""
    return InvoiceSummaryPublic.model_validate({**_summary_fields(row), **_net_fields(row, notes)})


def credit_note_public(note: NoteRecord, invoice_number: str) -> CreditNotePublic:
    """A stored credit note as answers show it."""
    currency = note.currency
    return CreditNotePublic(
        id=note.id,
        number=note.number,
        invoice=note.invoice_id,
        invoice_number=invoice_number,
        customer=note.customer_id,
        currency=currency,
        reason=note.reason,
        outcome=note.outcome,
        total=format_exact(note.total, currency),
        issued_at=note.issued_at.isoformat(),
        issued_by=note.issued_by,
        lines=[
            CreditNoteLinePublic(
                position=position,
                invoice_line=line.invoice_line,
                description=line.description,
                quantity=None if line.quantity is None else format_quantity(line.quantity),
                amount=format_exact(line.amount, currency),
            )
            for position, line in enumerate(note.lines, start=1)
        ],
    )


def invoice_public(
    row: InvoiceRecord,
    lines: Iterable[StoredLineRecord],
    notes: Sequence[NoteRecord] = (),
    *,
    due_days: int,
    replaces: InvoiceRef | None = None,
    replaced_by: InvoiceRef | None = None,
) -> InvoicePublic:
    """A stored invoice with its `lines`, in position order, its credit `notes`, due
    `due_days` after its day of issue, and the invoice it re-issues (`replaces`) or that
    re-issues it (`replaced_by`)."""
    shown = [line_public(line.position, line, row.currency) for line in lines]
    number = display_number(row.series, row.number)
    due = due_date(row.issued_at, row.status, due_days)
    return InvoicePublic.model_validate(
        {
            **_summary_fields(row),
            **_net_fields(row, notes),
            "lines": shown,
            "credit_notes": [credit_note_public(note, number) for note in notes],
            "due_date": None if due is None else due.isoformat(),
            "replaces_number": None if replaces is None else replaces.number,
            "replaced_by": None if replaced_by is None else replaced_by.id,
            "replaced_by_number": None if replaced_by is None else replaced_by.number,
            "catalog_digest": getattr(row, "catalog_digest", None),
        }
    )


def upcoming_public(
    *,
    customer_id: str,
    period: Period,
    currency: str,
    subtotal: Decimal,
    discount_total: Decimal,
    total: Decimal,
    credits_applied: Decimal,
    amount_due: Decimal,
    lines: Iterable[LineRecord],
) -> UpcomingInvoicePublic:
    """The running period's draft: figures and lines as the close would write them now."""

    def money(value: Decimal) -> str:
        return format_exact(value, currency)

    return UpcomingInvoicePublic(
        customer=customer_id,
        status="draft",
        currency=currency,
        period_start=period.start.isoformat(),
        period_end=period.end.isoformat(),
        subtotal=money(subtotal),
        discount_total=money(discount_total),
        total=money(total),
        credits_applied=money(credits_applied),
        amount_due=money(amount_due),
        lines=[line_public(i, line, currency) for i, line in enumerate(lines, start=1)],
    )
