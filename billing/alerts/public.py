"""Alerts and alert settings as the API and the portal show them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from billing.caps.accounts import parse_thresholds
from billing.customers.service import CustomerRow
from billing.public import PercentText, PublicModel, Timestamp


class AlertPublic(PublicModel):
    """One alert fired, with the state of its webhook delivery."""

    id: int
    product: str
    period_start: Timestamp
    kind: str = Field(
        description="cap_50, cap_80, cap_100 (a percentage of the cap), free_allowance"
    )
    message: str
    fired_at: Timestamp
    delivery: str = Field(description="none (no webhook URL) | pending | delivered | failed")
    attempts: int
    last_error: str | None = Field(
        description="why the last attempt failed: for the customer's own key, the status "
        "their endpoint answered or a generic reason; for admin and finance keys, the detail "
        "(the address, a timeout, a refused connection)"
    )
    delivered_at: Timestamp | None


class AlertListPublic(PublicModel):
    customer: str
    alerts: list[AlertPublic] = Field(description="newest first")


class AlertSettingsPublic(PublicModel):
    customer: str
    thresholds: list[PercentText] = Field(description="percentages of a cap that fire an alert")
    free_allowance: bool = Field(description="alert when a product's free allowance is used up")
    webhook_url: str | None
    signing_secret: str | None = Field(description="the secret webhook deliveries are signed with")


def utc_text(at: dt.datetime) -> str:
    """An instant as alerts show it: ISO 8601 in UTC with a Z."""
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def alert_public(row: Any) -> AlertPublic:
    """An alert row joined with its outbox row (absent without a webhook URL)."""
    return AlertPublic(
        id=row.id,
        product=row.product,
        period_start=utc_text(row.period_start),
        kind=row.kind,
        message=row.message,
        fired_at=utc_text(row.fired_at),
        delivery=row.delivery,
        attempts=row.attempts or 0,
        last_error=row.last_error,
        delivered_at=None if row.delivered_at is None else utc_text(row.delivered_at),
    )


def alert_settings_public(customer: CustomerRow) -> AlertSettingsPublic:
    """A customer's thresholds, free-allowance alert, webhook URL and signing secret."""
    return AlertSettingsPublic(
        customer=customer.id,
        thresholds=[f"{t.normalize():f}" for t in parse_thresholds(customer.alert_thresholds)],
        free_allowance=customer.alert_free_allowance,
        webhook_url=customer.alert_webhook_url,
        signing_secret=customer.webhook_secret,
    )
