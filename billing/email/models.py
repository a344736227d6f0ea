"""The email outbox: one row per email to send, written in the transaction of what it is about."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from billing.db import UTCDateTime


class EmailOutbox(SQLModel, table=True):
    """An email to a customer about one thing (`kind`, `reference`): at most one per thing;
    with no customer, a notice to the operators (BILLING_ADMIN_EMAIL).

    The address, subject and bodies are empty until the message is first composed, just
    before its first attempt; every later attempt sends what was composed then.
    """

    __tablename__ = "email_outbox"
    __table_args__ = (
        UniqueConstraint("kind", "reference", name="uq_email_outbox_once"),
        Index("ix_email_outbox_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: str | None = Field(default=None, foreign_key="customer.id", max_length=64)
    kind: str = Field(max_length=32)  # usage_alert | invoice | endpoint_disabled
    reference: str = Field(max_length=64)  # the alert's id, the invoice's id, the endpoint's
    to_address: str | None = Field(default=None, max_length=320)
    subject: str | None = Field(default=None, max_length=500)
    body_text: str | None = None
    body_html: str | None = None
    status: str = Field(max_length=16)  # pending | sent | failed | skipped
    attempts: int = 0
    next_attempt_at: dt.datetime = Field(sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    sent_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
