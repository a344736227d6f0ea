"""Webhook endpoints and deliveries as the API answers them (docs/webhooks.md)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from billing.notifications.events import ALL, utc_text
from billing.public import PublicModel


class WebhookEndpointPublic(PublicModel):
    """A webhook endpoint; its secret is shown once, when made or rotated."""

    id: str = Field(examples=["we_3f2a9c1d5e6b7a80"])
    customer: str | None = Field(description="whose events it receives; null: every customer")
    url: str
    events: list[str] = Field(description='the event types it receives; ["*"]: all')
    description: str
    status: str = Field(description="enabled | disabled")
    disabled_reason: str | None
    failures_in_a_row: int
    previous_secret_expires_at: str | None = Field(
        description="until when the secret before the last rotation still signs"
    )
    created_at: str
    secret: str | None = Field(
        None, description="the signing secret (whsec_...), only when made or rotated"
    )


class WebhookEndpointDeletedPublic(PublicModel):
    """What deleting an endpoint answers (as Stripe does)."""

    id: str
    deleted: bool = Field(description="always true")


class WebhookEndpointListPublic(PublicModel):
    endpoints: list[WebhookEndpointPublic]


class WebhookDeliveryPublic(PublicModel):
    """One event owed to an endpoint and what became of it."""

    id: int
    event: str = Field(description="the event id (evt_...)")
    type: str
    status: str = Field(description="pending | delivered | failed")
    attempts: int
    next_attempt_at: str | None
    last_status: int | None = Field(description="the endpoint's HTTP status, when it answered")
    error: str | None = Field(
        description="why the last attempt failed (admins read the detail, customers a reason)"
    )
    delivered_at: str | None
    created_at: str


class WebhookDeliveryListPublic(PublicModel):
    endpoint: str
    deliveries: list[WebhookDeliveryPublic]


def endpoint_public(row: Any, secret: str | None = None) -> WebhookEndpointPublic:
    """A stored endpoint (with its new secret right after it is made or rotated)."""
    expires = row.previous_secret_expires_at
    return WebhookEndpointPublic(
        id=row.id,
        customer=row.customer_id,
        url=row.url,
        events=[ALL] if row.events == ALL else row.events.split(","),
        description=row.description,
        status=row.status,
        disabled_reason=row.disabled_reason,
        failures_in_a_row=row.failures_in_a_row,
        previous_secret_expires_at=None if expires is None else utc_text(expires),
        created_at=utc_text(row.created_at),
        secret=secret,
    )


def delivery_public(row: Any, *, detail: bool) -> WebhookDeliveryPublic:
    """A stored delivery; `detail` (admins) shows the failure's detail, else the reason a
    customer may read (no internal addresses or ports)."""
    return WebhookDeliveryPublic(
        id=row.id,
        event=row.event_id,
        type=row.type,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=utc_text(row.next_attempt_at) if row.status == "pending" else None,
        last_status=row.last_status,
        error=row.last_error if detail else row.public_error,
        delivered_at=None if row.delivered_at is None else utc_text(row.delivered_at),
        created_at=utc_text(row.created_at),
    )
