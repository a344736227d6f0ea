"""Invoice tables. An invoice is finalized with its number in the transaction that makes it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from billing.db import ExactDecimal, UTCDateTime


class InvoiceStatus(StrEnum):
    """Where an invoice stands (docs/invoicing.md)."""

    FINALIZED = "finalized"  # issued, numbered, immutable
    VOID = "void"  # cancelled with a reason; its figures stay as issued


class InvoiceKind(StrEnum):
    USAGE = "usage"  # one billing period's usage
    COMMITMENT = "commitment"  # a contract year (or a top-up) of prepaid credit


class LineKind(StrEnum):
    """What an invoice line is; the invoice's figures are sums of its lines by kind."""

    USAGE = "usage"  # a product's billed quantity at list price, rounded once
    DISCOUNT = "discount"  # the percentage discount of a usage line (negative)
    CREDITS = "credits"  # prepaid credit applied to the invoice's total (negative)
    COMMITMENT = "commitment"  # prepaid credit bought


class InvoiceSeries(SQLModel, table=True):
    """The next number of a series; bumped under a row lock, so numbers have no gaps."""

    __tablename__ = "invoice_series"

    series: str = Field(primary_key=True, max_length=16)
    next_number: int


class Invoice(SQLModel, table=True):
    """Immutable once written: only finalized -> void may change it (service and trigger)."""

    __table_args__ = (UniqueConstraint("series", "number", name="uq_invoice_number"),)

    id: str = Field(primary_key=True, max_length=32)  # inv_...
    customer_id: str = Field(foreign_key="customer.id", max_length=64, index=True)
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


class InvoiceLine(SQLModel, table=True):
    __tablename__ = "invoice_line"

    id: int | None = Field(default=None, primary_key=True)
    invoice_id: str = Field(foreign_key="invoice.id", max_length=32, index=True)
    position: int
    kind: str = Field(max_length=16)  # a LineKind
    product: str | None = Field(default=None, max_length=64)
    description: str = Field(max_length=500)
    quantity: Decimal = Field(sa_type=ExactDecimal)
    unit_amount: Decimal = Field(sa_type=ExactDecimal)
    amount: Decimal = Field(sa_type=ExactDecimal)
    detail: str = ""  # JSON: the tier breakdown of a usage line
