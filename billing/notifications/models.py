"""Webhook endpoints, the events written for them, and one delivery per endpoint and event."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from billing.db import UTCDateTime


class WebhookEndpoint(SQLModel, table=True):
    """Where events are posted: one customer's events, or every customer's (customer None,
    made by an admin). `events` is the comma-separated types it receives ("*": all)."""

    __tablename__ = "webhook_endpoint"

    id: str = Field(primary_key=True, max_length=32)  # we_...
    customer_id: str | None = Field(
        default=None, foreign_key="customer.id", max_length=64, index=True
    )
    url: str = Field(max_length=2000)
    events: str = Field(max_length=1000)
    description: str = Field(default="", max_length=200)
    secret: str = Field(max_length=100)
    # the secret before the last rotation, still signing until previous_secret_expires_at
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_expires_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(max_length=16)  # enabled | disabled
    disabled_reason: str | None = Field(default=None, max_length=300)
    failures_in_a_row: int = 0
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    created_by: str = Field(max_length=100)


class NotificationEvent(SQLModel, table=True):
    """One billing event: its JSON payload is fixed when the change is made."""

    __tablename__ = "notification_event"

    id: str = Field(primary_key=True, max_length=64)  # evt_...
    type: str = Field(max_length=64)
    customer_id: str | None = Field(default=None, max_length=64, index=True)
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
    payload: str  # {"id", "type", "created", "customer", "data"}


class WebhookDelivery(SQLModel, table=True):
    """An event owed to an endpoint: sent until a 2xx answer, or given up."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_delivery_once"),
        Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: str = Field(foreign_key="webhook_endpoint.id", max_length=32, index=True)
    event_id: str = Field(foreign_key="notification_event.id", max_length=64)
    event_created_at: dt.datetime = Field(sa_type=UTCDateTime)  # the order of sending
    status: str = Field(max_length=16)  # pending | delivered | failed
    attempts: int = 0
    next_attempt_at: dt.datetime = Field(sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)  # the detail (admins, logs)
    public_error: str | None = Field(default=None, max_length=200)  # what customers read
    last_status: int | None = None  # the endpoint's HTTP status, when it answered
    delivered_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: dt.datetime = Field(sa_type=UTCDateTime)
