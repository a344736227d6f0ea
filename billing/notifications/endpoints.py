"""Webhook endpoints: made, listed, disabled, enabled, deleted, their secrets rotated, a
test event sent, deliveries listed and replayed (docs/webhooks.md). Callers check who may
act on which endpoint (billing/api/routes/webhook_endpoints.py); this module keeps the
rules of the endpoints themselves."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from billing.db import table_of
from billing.errors import MissingField, NotFound, TextTooLong, TooManyItems, UnknownEventType
from billing.notifications.events import ALL, EVENT_TYPES, emit
from billing.notifications.models import NotificationEvent, WebhookDelivery, WebhookEndpoint
from billing.notifications.signing import new_secret

_ENDPOINTS = table_of(WebhookEndpoint)
_EVENTS = table_of(NotificationEvent)
_DELIVERIES = table_of(WebhookDelivery)
# How long a rotated secret keeps signing beside the new one, unless told otherwise.
DEFAULT_OVERLAP = dt.timedelta(hours=24)
MAX_OVERLAP = dt.timedelta(days=7)
MAX_ENDPOINTS_PER_OWNER = 20
MAX_DESCRIPTION = 200  # characters
SUBSCRIBABLE = tuple(t for t in EVENT_TYPES if t != "ping")


def check_events(events: Sequence[str]) -> str:
    """The stored form of an event-type filter ("*" or comma-separated types), or
    UnknownEventType(field="events.N") naming the unknown type (MissingField for none)."""
    if not events:
        raise MissingField('events: name at least one event type, or "*" for all', field="events")
    chosen = []
    for index, name in enumerate(events):
        if name != ALL and name not in SUBSCRIBABLE:
            raise UnknownEventType(
                f"events.{index}: unknown event type {name!r}; the types are "
                + ", ".join(SUBSCRIBABLE),
                field=f"events.{index}",
            )
        if name not in chosen:
            chosen.append(name)
    return ALL if ALL in chosen else ",".join(chosen)


def create(
    connection: Connection,
    *,
    url: str,
    events: Sequence[str],
    customer: str | None,
    description: str,
    actor: str,
    now: dt.datetime,
) -> tuple[Any, str]:
    """A new enabled endpoint (the URL already checked by the caller) and its secret.
    TooManyItems past MAX_ENDPOINTS_PER_OWNER, TextTooLong for a description over
    MAX_DESCRIPTION characters, UnknownEventType/MissingField for the events."""
    if len(description) > MAX_DESCRIPTION:
        raise TextTooLong(f"description: at most {MAX_DESCRIPTION} characters", field="description")
    owned = select(_ENDPOINTS.c.id).where(
        _ENDPOINTS.c.customer_id.is_(None)
        if customer is None
        else _ENDPOINTS.c.customer_id == customer
    )
    if len(connection.execute(owned).all()) >= MAX_ENDPOINTS_PER_OWNER:
        raise TooManyItems(
            f"at most {MAX_ENDPOINTS_PER_OWNER} endpoints per customer (and for admins); "
            "delete one first",
            field="url",
        )
    endpoint_id = "we_" + secrets.token_hex(8)
    secret = new_secret()
    connection.execute(
        insert(_ENDPOINTS).values(
            id=endpoint_id,
            customer_id=customer,
            url=url,
            events=check_events(events),
            description=description,
            secret=secret,
            status="enabled",
            failures_in_a_row=0,
            created_at=now,
            created_by=actor,
        )
    )
    return get(connection, endpoint_id), secret


def get(connection: Connection, endpoint_id: str) -> Any:
    """The endpoint row; NotFound(field="endpoint") when there is none."""
    row = connection.execute(select(_ENDPOINTS).where(_ENDPOINTS.c.id == endpoint_id)).first()
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id!r}", field="endpoint")
    return row


def listed(connection: Connection, customer: str | None, everyone: bool) -> list[Any]:
    """Endpoints, oldest first: every one (`everyone`, an admin), or the customer's own."""
    query = select(_ENDPOINTS).order_by(_ENDPOINTS.c.created_at, _ENDPOINTS.c.id)
    if not everyone or customer is not None:
        query = query.where(_ENDPOINTS.c.customer_id == customer)
    return list(connection.execute(query))


def set_status(connection: Connection, endpoint_id: str, enabled: bool) -> Any:
    """Enable (its failures forgotten; what it is owed goes out in order) or disable."""
    get(connection, endpoint_id)
    values: dict[str, Any] = (
        {"status": "enabled", "disabled_reason": None, "failures_in_a_row": 0}
        if enabled
        else {"status": "disabled", "disabled_reason": "disabled on request"}
    )
    connection.execute(update(_ENDPOINTS).where(_ENDPOINTS.c.id == endpoint_id).values(**values))
    return get(connection, endpoint_id)


def remove(connection: Connection, endpoint_id: str) -> None:
    """Delete an endpoint and its deliveries (the events stay for other endpoints)."""
    get(connection, endpoint_id)
    connection.execute(delete(_DELIVERIES).where(_DELIVERIES.c.endpoint_id == endpoint_id))
    connection.execute(delete(_ENDPOINTS).where(_ENDPOINTS.c.id == endpoint_id))


def rotate(
    connection: Connection, endpoint_id: str, overlap: dt.timedelta, now: dt.datetime
) -> tuple[Any, str]:
    """A new secret; the current one keeps signing beside it for `overlap` (0 to 7 days),
    so receivers can switch without missing a request. The endpoint and the new secret."""
    if not dt.timedelta(0) <= overlap <= MAX_OVERLAP:
        raise ValueError("overlap from 0 to 168 hours")  # the API's schema bounds it first
    row = get(connection, endpoint_id)
    secret = new_secret()
    connection.execute(
        update(_ENDPOINTS)
        .where(_ENDPOINTS.c.id == endpoint_id)
        .values(
            secret=secret,
            previous_secret=row.secret if overlap else None,
            previous_secret_expires_at=now + overlap if overlap else None,
        )
    )
    return get(connection, endpoint_id), secret


def test_event(connection: Connection, endpoint_id: str, now: dt.datetime) -> str:
    """A `ping` event owed to this endpoint only (sent by the next delivery run, or at once
    by the caller); its id."""
    row = get(connection, endpoint_id)
    event_id = emit(
        connection,
        "ping",
        customer=row.customer_id,
        data={"endpoint": row.id, "message": "a test event, sent on request"},
        now=now,
        endpoints=[row.id],
    )
    assert event_id is not None
    return event_id


def deliveries(connection: Connection, endpoint_id: str, limit: int = 100) -> list[Any]:
    """The endpoint's deliveries, newest first, with their event's type."""
    query = (
        select(_DELIVERIES, _EVENTS.c.type)
        .join(_EVENTS, _EVENTS.c.id == _DELIVERIES.c.event_id)
        .where(_DELIVERIES.c.endpoint_id == endpoint_id)
        .order_by(_DELIVERIES.c.event_created_at.desc(), _DELIVERIES.c.id.desc())
        .limit(limit)
    )
    return list(connection.execute(query))


def replay(connection: Connection, endpoint_id: str, delivery_id: int, now: dt.datetime) -> Any:
    """Send a delivery again (delivered or failed): owed again, due now, in its place in
    the endpoint's order. NotFound when the delivery is not this endpoint's."""
    found = connection.execute(
        select(_DELIVERIES.c.id).where(
            _DELIVERIES.c.id == delivery_id, _DELIVERIES.c.endpoint_id == endpoint_id
        )
    ).first()
    if found is None:
        raise NotFound(f"no delivery {delivery_id} of this endpoint", field="delivery")
    connection.execute(
        update(_DELIVERIES)
        .where(_DELIVERIES.c.id == delivery_id)
        .values(status="pending", next_attempt_at=now, delivered_at=None)
    )
    return connection.execute(select(_DELIVERIES).where(_DELIVERIES.c.id == delivery_id)).one()
