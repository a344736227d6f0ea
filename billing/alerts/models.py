"""Alerts fired at ingestion, and the outbox their webhooks are delivered from."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKeyConstraint, Index, PrimaryKeyConstraint, UniqueConstraint
from sqlmodel import Field, SQLModel

from billing.db import AUTOINCREMENT, UTCDateTime


class Alert(SQLModel, table=True):
    """One alert: fires once per customer, product, period and kind."""

    __table_args__ = (
        PrimaryKeyConstraint("customer_id", "id"),  # docs/operations.md, "Distribute by customer"
        UniqueConstraint("customer_id", "product", "period_start", "kind", name="uq_alert_once"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_column_kwargs=AUTOINCREMENT)
    customer_id: str = Field(primary_key=True, foreign_key="customer.id", max_length=64)
    product: str = Field(max_length=64)
    period_start: dt.datetime = Field(sa_type=UTCDateTime)
    kind: str = Field(max_length=32)  # cap_50, cap_80, cap_100, free_allowance
    message: str = Field(max_length=500)
    fired_at: dt.datetime = Field(sa_type=UTCDateTime)
    delivery: str = Field(max_length=16)  # none | pending | delivered | failed


class Outbox(SQLModel, table=True):
    """A webhook to send, written in the transaction that fired its alert."""

    __table_args__ = (
        PrimaryKeyConstraint("customer_id", "id"),
        ForeignKeyConstraint(["customer_id", "alert_id"], ["alert.customer_id", "alert.id"]),
        Index("ix_outbox_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_column_kwargs=AUTOINCREMENT)
    customer_id: str = Field(primary_key=True, max_length=64)  # the alert's
    alert_id: int
    url: str = Field(max_length=2000)
    body: str  # the JSON sent, fixed when the alert fired
    status: str = Field(max_length=16)  # pending | delivered | failed
    attempts: int = 0
    next_attempt_at: dt.datetime = Field(sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)  # the detail: admins, logs
    public_error: str | None = Field(default=None, max_length=500)  # what the customer sees
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    delivered_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
