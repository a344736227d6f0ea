"""Invoice tables. An invoice is finalized with its number in the transaction that makes it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import ForeignKeyConstraint, Index, PrimaryKeyConstraint, Text
from sqlmodel import Field, SQLModel

from billing.db import AUTOINCREMENT, ExactDecimal, UTCDateTime


class InvoiceStatus(StrEnum):
    """Where an invoice stands (docs/invoicing.md, "Payment states"): issued `finalized`
    (open, unpaid), then `paid`, `void` or `uncollectible`, which are terminal;
    `payment_failed` is an open invoice whose last payment attempt failed."""

    FINALIZED = "finalized"
    PAYMENT_FAILED = "payment_failed"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"
    VOID = "void"

    @property
    def terminal(self) -> bool:
        """Paid, void and uncollectible invoices never change status again."""
        return self in (InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE, InvoiceStatus.VOID)

    @property
    def open(self) -> bool:
        """Issued and not settled: payment is still expected."""
        return self in (InvoiceStatus.FINALIZED, InvoiceStatus.PAYMENT_FAILED)


class InvoiceKind(StrEnum):
    USAGE = "usage"  # one billing period's usage
    COMMITMENT = "commitment"  # a contract year (or a top-up) of prepaid credit


class LineKind(StrEnum):
    """What an invoice line is; the invoice's figures are sums of its lines by kind."""

    USAGE = "usage"  # a product's billed quantity at list price, rounded once
    DISCOUNT = "discount"  # the percentage discount of a usage line (negative)
    CREDITS = "credits"  # prepaid credit applied to the invoice's total (negative)
    COMMITMENT = "commitment"  # prepaid credit bought
    ADJUSTMENT = "adjustment"  # late usage of an earlier period: the exact difference
    CAPPED = "capped"  # units above what the cap buys at close: shown, not billed (0.00)


class InvoiceSeries(SQLModel, table=True):
    """The next number of a series; bumped under a row lock, so numbers have no gaps."""

    __tablename__ = "invoice_series"

    series: str = Field(primary_key=True, max_length=16)
    next_number: int


class DocumentNumber(SQLModel, table=True):
    """Every number taken from a series, once: the global uniqueness of legal numbering.
    Invoices and credit notes are keyed by customer (docs/operations.md, "Distribute by
    customer"), so (series, number) is unique here, written in the document's transaction."""

    __tablename__ = "document_number"

    series: str = Field(primary_key=True, max_length=16)
    number: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    customer_id: str = Field(foreign_key="customer.id", max_length=64)
    document_id: str = Field(max_length=32)  # inv_... or cn_...


class Invoice(SQLModel, table=True):
    """Immutable once written: only its status moves, as InvoiceStatus allows (service and
    trigger); its figures and lines never change."""

    # NOTE: the key leads with the customer (docs/operations.md, "Distribute by customer");
    # ix_invoice_id serves the lookups by id alone (API, Stripe, triggers).
    __table_args__ = (PrimaryKeyConstraint("customer_id", "id"), Index("ix_invoice_id", "id"))

    id: str = Field(primary_key=True, max_length=32)  # inv_...
    customer_id: str = Field(primary_key=True, foreign_key="customer.id", max_length=64)
    kind: str = Field(max_length=16)  # an InvoiceKind
    status: str = Field(max_length=16)  # an InvoiceStatus
    series: str = Field(max_length=16)
    number: int
    currency: str = Field(max_length=3)
    period_start: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    period_end: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    subtotal: Decimal = Field(sa_type=ExactDecimal)  # usage lines at list (after caps)
    discount_total: Decimal = Field(sa_type=ExactDecimal)  # percentage discount lines
    total: Decimal = Field(sa_type=ExactDecimal)  # subtotal - discount_total
    credits_applied: Decimal = Field(sa_type=ExactDecimal)  # prepaid credit drawn
    amount_due: Decimal = Field(sa_type=ExactDecimal)  # total - credits_applied
    reference: str | None = Field(default=None, max_length=64)  # e.g. the commitment id
    replaces: str | None = Field(default=None, max_length=32)  # the voided invoice re-issued
    issued_at: dt.datetime = Field(sa_type=UTCDateTime)
    voided_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    void_reason: str | None = Field(default=None, max_length=500)
    voided_by: str | None = Field(default=None, max_length=64)
    line_count: int = 0  # the lines it was issued with: no line is ever added (trigger)
    # the percentage discount its usage lines were priced with (None: issued before it was kept)
    discount_percent: Decimal | None = Field(default=None, sa_type=ExactDecimal)
    paid_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # when the payment event that set `status` happened (Stripe's `created`): older ones
    # never move it
    status_changed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # what a period invoice was priced with, for `billing invoices verify`: the SHA-256 of
    # the tier files (catalog/loader.catalog_digest) and the priced inputs (JSON: discount,
    # billed quantity per product, credits drawn); None on other invoices and older ones
    catalog_digest: str | None = Field(default=None, max_length=64)
    priced_inputs: str | None = Field(default=None, sa_type=Text)


class InvoiceLine(SQLModel, table=True):
    __tablename__ = "invoice_line"
    __table_args__ = (
        PrimaryKeyConstraint("customer_id", "id"),
        ForeignKeyConstraint(["customer_id", "invoice_id"], ["invoice.customer_id", "invoice.id"]),
    )

    id: int | None = Field(default=None, primary_key=True, sa_column_kwargs=AUTOINCREMENT)
    customer_id: str = Field(primary_key=True, max_length=64)  # the invoice's
    invoice_id: str = Field(max_length=32, index=True)
    position: int
    kind: str = Field(max_length=16)  # a LineKind
    product: str | None = Field(default=None, max_length=64)
    description: str = Field(max_length=500)
    quantity: Decimal = Field(sa_type=ExactDecimal)
    unit_amount: Decimal = Field(sa_type=ExactDecimal)
    amount: Decimal = Field(sa_type=ExactDecimal)
    detail: str = ""  # JSON: the tier breakdown of a usage line
    corrects_period: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class CreditNoteOutcome(StrEnum):
    """What a credit note does with the money it credits (docs/invoicing.md)."""

    REDUCE_DUE = "reduce_due"  # an unpaid invoice: less is owed
    CREDIT_BALANCE = "credit_balance"  # the customer's credit balance, drawn by later invoices
    REFUND = "refund"  # a paid invoice: the money goes back (through Stripe when paid there)


class CreditNote(SQLModel, table=True):
    """A correction of an issued invoice, immutable once written, numbered CN-000001..."""

    __tablename__ = "credit_note"
    __table_args__ = (
        PrimaryKeyConstraint("customer_id", "id"),
        ForeignKeyConstraint(["customer_id", "invoice_id"], ["invoice.customer_id", "invoice.id"]),
        Index("ix_credit_note_id", "id"),
    )

    id: str = Field(primary_key=True, max_length=32)  # cn_...
    series: str = Field(max_length=16)
    number: int
    invoice_id: str = Field(max_length=32, index=True)
    customer_id: str = Field(primary_key=True, foreign_key="customer.id", max_length=64)
    currency: str = Field(max_length=3)
    reason: str = Field(max_length=500)
    outcome: str = Field(max_length=16)  # a CreditNoteOutcome
    total: Decimal = Field(sa_type=ExactDecimal)  # the sum of its lines, positive
    line_count: int
    issued_at: dt.datetime = Field(sa_type=UTCDateTime)
    issued_by: str = Field(max_length=64)


class CreditNoteLine(SQLModel, table=True):
    """What a credit note credits from one invoice line."""

    __tablename__ = "credit_note_line"
    __table_args__ = (
        PrimaryKeyConstraint("customer_id", "id"),
        ForeignKeyConstraint(
            ["customer_id", "credit_note_id"], ["credit_note.customer_id", "credit_note.id"]
        ),
    )

    id: int | None = Field(default=None, primary_key=True, sa_column_kwargs=AUTOINCREMENT)
    customer_id: str = Field(primary_key=True, max_length=64)  # the credit note's
    credit_note_id: str = Field(max_length=32, index=True)
    position: int
    invoice_line: int  # the position of the credited line on the invoice
    description: str = Field(max_length=500)
    quantity: Decimal | None = Field(default=None, sa_type=ExactDecimal)  # units credited
    amount: Decimal = Field(sa_type=ExactDecimal)  # positive, rounded to the billing unit
