"""Invoices as the API and the pages show them: one builder per shape, money as strings."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Literal, Protocol

from pydantic import Field

from billing.customers.periods import Period
from billing.invoicing.issue import display_number
from billing.money import format_exact, format_quantity
from billing.public import MoneyText, PublicModel, QuantityText, Timestamp


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


class InvoiceTierPublic(PublicModel):
    """One tier of a usage line's breakdown, exact (rounded once, on the line)."""

    from_: QuantityText = Field(alias="from", description="exclusive lower bound")
    up_to: QuantityText | None = Field(description="inclusive upper bound; null for none")
    quantity: QuantityText
    unit_price: MoneyText
    flat_fee: MoneyText
    amount: MoneyText


class InvoiceLinePublic(PublicModel):
    position: int = Field(description="1, 2, ... in the order the lines are shown")
    kind: str = Field(description="usage | discount | credits | commitment")
    product: str | None
    description: str
    quantity: QuantityText
    amount: MoneyText
    tiers: list[InvoiceTierPublic] | None = Field(description="a usage line's tier breakdown")


class InvoiceSummaryPublic(PublicModel):
    """An invoice without its lines, as a listing shows it."""

    id: str
    number: str = Field(examples=["INV-000123"])
    customer: str
    kind: str = Field(description="usage | commitment")
    status: str = Field(description="finalized | void")
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


class InvoicePublic(InvoiceSummaryPublic):
    """An invoice with its lines and their tier breakdown."""

    lines: list[InvoiceLinePublic]


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


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def line_public(position: int, line: LineRecord, currency: str) -> InvoiceLinePublic:
    """A stored or drafted line as answers show it (its tiers from the JSON kept with it)."""
    tiers = json.loads(line.detail) if line.detail else None
    return InvoiceLinePublic(
        position=position,
        kind=line.kind,
        product=line.product,
        description=line.description,
        quantity=format_quantity(line.quantity),
        amount=format_exact(line.amount, currency),
        tiers=None if tiers is None else [InvoiceTierPublic.model_validate(t) for t in tiers],
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


def invoice_summary(row: InvoiceRecord) -> InvoiceSummaryPublic:
    """A stored invoice without its lines."""
    return InvoiceSummaryPublic.model_validate(_summary_fields(row))


def invoice_public(row: InvoiceRecord, lines: Iterable[StoredLineRecord]) -> InvoicePublic:
    """A stored invoice with its `lines`, in position order."""
    shown = [line_public(line.position, line, row.currency) for line in lines]
    return InvoicePublic.model_validate({**_summary_fields(row), "lines": shown})


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
