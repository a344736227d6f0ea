"""Billing events, written in the transaction of the change they report (docs/webhooks.md).

`emit` records an event for the enabled webhook endpoints subscribed to its type and
customer, with one delivery per endpoint, in the caller's transaction: an event is never
sent for a change that was rolled back, and never lost to a crash after the change
committed. When no endpoint wants the event nothing is written (and `data` is not even
built): events are kept for delivery, not as an audit log.

The payload is fixed when the change is made, as Stripe's events are:

    {"id": "evt_...", "type": "invoice.paid", "created": "2026-11-30T12:00:00Z",
     "customer": "acme", "data": <the object as the API returns it>}
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, insert, or_, select

from billing.db import recalled, remember, table_of
from billing.notifications.models import NotificationEvent, WebhookDelivery, WebhookEndpoint

# Every type an endpoint may subscribe to, with what it reports (docs/webhooks.md).
EVENT_TYPES: Mapping[str, str] = {
    "invoice.finalized": "an invoice was issued (numbered, final)",
    "invoice.paid": "an invoice was paid",
    "invoice.payment_failed": "a payment of an invoice failed",
    "invoice.voided": "an invoice was voided",
    "invoice.marked_uncollectible": "an invoice was marked uncollectible",
    "credit_note.created": "a credit note was issued",
    "credits.granted": "usage credit became available (a grant, a release, a top-up)",
    "credits.expiring": "a commitment ends within 30 days with credit unused",
    "credits.expired": "unused credit expired",
    "commitment.started": "a commitment started",
    "commitment.ended": "a commitment ended (its term, or cancelled)",
    "spend_cap.reached": "a product reached its spend cap: usage is no longer accepted",
    "spend_cap.changed": "a spend cap was set, changed or removed",
    "usage.alert": "a usage alert fired (a cap threshold, the free allowance used up)",
    "webhook_endpoint.disabled": "an endpoint was disabled after failing (admin endpoints)",
    "ping": "a test event sent on request (to one endpoint only)",
}
ALL = "*"

_ENDPOINTS = table_of(WebhookEndpoint)
_EVENTS = table_of(NotificationEvent)
_DELIVERIES = table_of(WebhookDelivery)


def utc_text(at: dt.datetime) -> str:
    """A timestamp as the payload carries it: UTC, to the second, with Z."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_CACHED = "billing.enabled_endpoints"
_ENABLED = (
    select(_ENDPOINTS.c.id, _ENDPOINTS.c.customer_id, _ENDPOINTS.c.events)
    .where(_ENDPOINTS.c.status == "enabled")
    .order_by(_ENDPOINTS.c.id)
)


def cache_subscribers(connection: Connection) -> None:
    """Read the enabled endpoints once for the rest of the caller's transaction: the
    events it emits then find their subscribers without a statement each (the close
    emits one per invoice, and most deployments have a handful of endpoints or none). An
    endpoint enabled by another transaction meanwhile is seen by the next one."""
    rows = [(str(r.id), r.customer_id, r.events) for r in connection.execute(_ENABLED)]
    remember(connection, _CACHED, rows)


def subscribed(connection: Connection, event_type: str, customer: str | None) -> list[str]:
    """The ids of the enabled endpoints that receive `event_type` for `customer`: the
    customer's own and every admin endpoint (customer None); an event of no customer goes
    to admin endpoints only. Read once per transaction after `cache_subscribers`."""
    rows = recalled(connection, _CACHED)
    if rows is None:
        query = _ENABLED
        if customer is None:
            query = query.where(_ENDPOINTS.c.customer_id.is_(None))
        else:
            query = query.where(
                or_(_ENDPOINTS.c.customer_id.is_(None), _ENDPOINTS.c.customer_id == customer)
            )
        rows = [(str(r.id), r.customer_id, r.events) for r in connection.execute(query)]
    wanted = []
    for endpoint, owner, events in rows:
        if owner is not None and owner != customer:
            continue
        types = events.split(",")
        if ALL in types or event_type in types:
            wanted.append(endpoint)
    return wanted


def emit(
    connection: Connection,
    event_type: str,
    *,
    customer: str | None,
    data: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    now: dt.datetime,
    key: str | None = None,
    endpoints: list[str] | None = None,
) -> str | None:
    """Record an event for its subscribers in the caller's transaction; its id, or None when
    no endpoint wants it. `data` (or a function building it, called only when needed) is the
    object as the API returns it. `key` makes the id deterministic (`evt_<key>`): an event
    that must be sent once ever (credits.expiring) is recorded once however often it is
    emitted. `endpoints` sends to those endpoints only (a test event). KeyError for a type
    not in EVENT_TYPES."""
    if event_type not in EVENT_TYPES:
        raise KeyError(event_type)
    targets = endpoints if endpoints is not None else subscribed(connection, event_type, customer)
    if not targets:
        return None
    event_id = f"evt_{key}" if key is not None else "evt_" + secrets.token_hex(12)
    if key is not None:
        exists = select(_EVENTS.c.id).where(_EVENTS.c.id == event_id)
        if connection.execute(exists).first() is not None:
            return None
    body = data() if callable(data) else data
    payload = {
        "id": event_id,
        "type": event_type,
        "created": utc_text(now),
        "customer": customer,
        "data": dict(body),
    }
    connection.execute(
        insert(_EVENTS).values(
            id=event_id,
            type=event_type,
            customer_id=customer,
            created_at=now,
            payload=json.dumps(payload, separators=(",", ":"), sort_keys=False),
        )
    )
    connection.execute(
        insert(_DELIVERIES),
        [
            {
                "endpoint_id": endpoint,
                "event_id": event_id,
                "event_created_at": now,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for endpoint in targets
        ],
    )
    return event_id
