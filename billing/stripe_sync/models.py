"""Where each invoice stands with Stripe. Kept apart from `invoice`, which is immutable."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKeyConstraint, PrimaryKeyConstraint
from sqlmodel import Field, SQLModel

from billing.db import UTCDateTime


class SyncStatus(StrEnum):
    """Where an invoice stands with Stripe (docs/stripe.md)."""

    PENDING = "pending"  # to be sent (or retried after a transient failure)
    SYNCED = "synced"  # in Stripe: totals checked on the draft, finalized, sent (or charged)
    PAID = "paid"  # Stripe says so (webhook)
    PAYMENT_FAILED = "payment_failed"  # Stripe says so (webhook); still open
    VOIDED = "voided"  # voided in Stripe
    # we voided it, Stripe refused to void it (it was paid there meanwhile): shown to finance,
    # never retried; correct it with a credit note
    VOID_REFUSED = "void_refused"
    # it re-issues an invoice that is `void_refused` (paid in Stripe): never sent, so the
    # customer is not asked to pay the period twice; shown to finance with the reason
    HELD = "held"
    SYNC_FAILED = "sync_failed"  # Stripe refused it: shown to finance with its message
    # Stripe's total or amount due differed from ours: the draft deleted (or the open invoice
    # voided), loud, never silently fixed; last_error has both figures
    MISMATCH = "mismatch"


class StripeCustomer(SQLModel, table=True):
    __tablename__ = "stripe_customer"

    customer_id: str = Field(primary_key=True, foreign_key="customer.id", max_length=64)
    stripe_id: str = Field(max_length=255)


class InvoiceSync(SQLModel, table=True):
    """pending -> synced -> paid | payment_failed | voided; or sync_failed / mismatch (loud)."""

    __tablename__ = "invoice_sync"
    __table_args__ = (
        PrimaryKeyConstraint("customer_id", "invoice_id"),
        ForeignKeyConstraint(["customer_id", "invoice_id"], ["invoice.customer_id", "invoice.id"]),
    )

    customer_id: str = Field(primary_key=True, max_length=64)  # the invoice's
    invoice_id: str = Field(primary_key=True, max_length=32, index=True)
    status: str = Field(max_length=16, index=True)  # a SyncStatus
    stripe_invoice_id: str | None = Field(default=None, max_length=255, index=True)
    attempts: int = 0
    next_attempt_at: dt.datetime = Field(sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    updated_at: dt.datetime = Field(sa_type=UTCDateTime)


class StripeEvent(SQLModel, table=True):
    """Every webhook event received, once: what it did (applied, or ignored and why); a
    replay of the same id changes nothing."""

    __tablename__ = "stripe_event"

    id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=64)
    received_at: dt.datetime = Field(sa_type=UTCDateTime)
    stripe_invoice_id: str | None = Field(default=None, max_length=255)
    created: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)  # Stripe's time
    outcome: str = Field(default="", max_length=32)  # applied | ignored | ...
    reason: str = Field(default="", max_length=300)  # why it was ignored


class CreditNoteSync(SQLModel, table=True):
    """Where each of our credit notes stands with Stripe (docs/stripe.md, "Credit notes"):
    pending (waiting for its invoice to be in Stripe, or a transient failure to retry) ->
    synced; or sync_failed / mismatch (loud, with `last_error`). The note itself is immutable."""

    __tablename__ = "credit_note_sync"
    __table_args__ = (
        PrimaryKeyConstraint("customer_id", "credit_note_id"),
        ForeignKeyConstraint(
            ["customer_id", "credit_note_id"], ["credit_note.customer_id", "credit_note.id"]
        ),
    )

    customer_id: str = Field(primary_key=True, max_length=64)  # the credit note's
    credit_note_id: str = Field(primary_key=True, max_length=32, index=True)
    status: str = Field(max_length=16, index=True)  # pending | synced | sync_failed | mismatch
    stripe_credit_note_id: str | None = Field(default=None, max_length=255)
    attempts: int = 0
    next_attempt_at: dt.datetime = Field(sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    updated_at: dt.datetime = Field(sa_type=UTCDateTime)
