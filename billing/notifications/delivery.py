"""Delivering billing events to webhook endpoints (docs/webhooks.md, "Delivery").

- Each endpoint gets its events in the order they were created, one at a time: a delivery
  waits while an older one of the same endpoint is still owed (it is retried first).
- Endpoints are served concurrently (a pool of WORKERS threads), each on its own: a slow or
  dead endpoint delays only itself. Every attempt has a total deadline.
- A 2xx answer delivers. Anything else is retried after BACKOFF (30 s doubling up to 6 h);
  after MAX_ATTEMPTS the delivery is `failed` and the endpoint's next one goes.
- An endpoint that fails DISABLE_AFTER attempts in a row (whatever the deliveries) is
  disabled, said in the log at error level, in a `webhook_endpoint.disabled` event to
  admin endpoints and by email to its customer's billing email and to BILLING_ADMIN_EMAIL;
  its deliveries wait, in order, until it is enabled again.
- At least once: a run that dies after sending and before recording sends again after its
  lease; receivers deduplicate by the event id.

Each claim is a short transaction of its own; sending happens outside any transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine, select, update

from billing import __version__
from billing.db import table_of
from billing.email.outbox import EmailKind, enqueue
from billing.notifications.events import emit
from billing.notifications.models import NotificationEvent, WebhookDelivery, WebhookEndpoint
from billing.notifications.signing import HEADER, signature

logger = logging.getLogger(__name__)

WORKERS = 8
BATCH = 20  # deliveries of one endpoint claimed at a time
LEASE = dt.timedelta(minutes=2)
MAX_ATTEMPTS = 12  # 30 s, 1, 2, 4, 8, 16, 32 min, 1 h 4, 2 h 8, 4 h 16, 6 h: about 20 h
DISABLE_AFTER = 50  # attempts failed in a row, across deliveries


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the `attempts`-th failed attempt: 30 s doubling, at most 6 hours."""
    wait: dt.timedelta = dt.timedelta(seconds=30) * 2 ** max(attempts - 1, 0)
    return min(wait, dt.timedelta(hours=6))


class Outcome(Protocol):
    """What one attempt came to (billing/webhooks_out.send.Outcome)."""

    @property
    def delivered(self) -> bool: ...
    @property
    def status(self) -> int | None: ...
    @property
    def detail(self) -> str: ...
    @property
    def public_reason(self) -> str: ...


Sender = Callable[[str, bytes, Mapping[str, str]], Outcome]


@dataclass
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    disabled: int = 0

    def __str__(self) -> str:
        return (
            f"{self.delivered} delivered, {self.retrying} to retry, {self.failed} failed, "
            f"{self.disabled} endpoints disabled"
        )


_ENDPOINTS = table_of(WebhookEndpoint)
_EVENTS = table_of(NotificationEvent)
_DELIVERIES = table_of(WebhookDelivery)


def secrets_of(endpoint: Any, now: dt.datetime) -> list[str]:
    """The secrets a request is signed with now: the current one, and the previous one
    while its rotation overlap lasts."""
    keys = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and now < expires:
        keys.append(endpoint.previous_secret)
    return keys


def headers_for(endpoint: Any, event_id: str, body: bytes, now: dt.datetime) -> dict[str, str]:
    """The headers of a delivery: JSON, who we are, the event id, the signature."""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"billing-webhooks/{__version__}",
        "Billing-Event-Id": event_id,
        HEADER: signature(secrets_of(endpoint, now), int(now.timestamp()), body),
    }


def _claim(engine: Engine, now: dt.datetime) -> dict[str, list[Any]]:
    """Per enabled endpoint whose oldest owed delivery is due: its owed deliveries in
    order (up to BATCH), leased so no other run sends them meanwhile."""
    query = (
        select(_DELIVERIES, _EVENTS.c.payload)
        .join(_EVENTS, _EVENTS.c.id == _DELIVERIES.c.event_id)
        .join(_ENDPOINTS, _ENDPOINTS.c.id == _DELIVERIES.c.endpoint_id)
        .where(_DELIVERIES.c.status == "pending", _ENDPOINTS.c.status == "enabled")
        .order_by(_DELIVERIES.c.endpoint_id, _DELIVERIES.c.event_created_at, _DELIVERIES.c.id)
    )
    claimed: dict[str, list[Any]] = {}
    with engine.begin() as connection:
        owed: dict[str, list[Any]] = {}
        for row in connection.execute(query):
            owed.setdefault(row.endpoint_id, []).append(row)
        for endpoint_id, rows in owed.items():
            if rows[0].next_attempt_at > now:  # the oldest waits: so do the others
                continue
            taken = []
            for row in rows[:BATCH]:
                moved = connection.execute(
                    update(_DELIVERIES)
                    .where(
                        _DELIVERIES.c.id == row.id,
                        _DELIVERIES.c.status == "pending",
                        _DELIVERIES.c.next_attempt_at == row.next_attempt_at,
                    )
                    .values(next_attempt_at=now + LEASE)
                )
                if moved.rowcount != 1:
                    break  # another run has it: leave the rest to it, in order
                taken.append(row)
            if taken:
                claimed[endpoint_id] = taken
    return claimed


def _endpoint(engine: Engine, endpoint_id: str) -> Any:
    with engine.connect() as connection:
        return connection.execute(select(_ENDPOINTS).where(_ENDPOINTS.c.id == endpoint_id)).first()


def _serve(
    engine: Engine, endpoint_id: str, rows: list[Any], send: Sender, now: Callable[[], dt.datetime]
) -> DeliveryReport:
    """Send one endpoint's claimed deliveries in order; stop at the first failure (the rest
    wait behind it)."""
    report = DeliveryReport()
    endpoint = _endpoint(engine, endpoint_id)
    for index, row in enumerate(rows):
        if endpoint is None or endpoint.status != "enabled":
            _release(engine, rows[index:], now())
            return report
        body = row.payload.encode()
        at = now()
        outcome = send(endpoint.url, body, headers_for(endpoint, row.event_id, body, at))
        endpoint = _record(engine, endpoint, row, outcome, now(), report)
        if not outcome.delivered:
            _release(engine, rows[index + 1 :], None)
            return report
    return report


def _release(engine: Engine, rows: list[Any], at: dt.datetime | None) -> None:
    """Give claimed deliveries back: due at `at`, or behind the failed one (which now
    carries the endpoint's next attempt) when None."""
    if not rows:
        return
    with engine.begin() as connection:
        for row in rows:
            connection.execute(
                update(_DELIVERIES)
                .where(_DELIVERIES.c.id == row.id, _DELIVERIES.c.status == "pending")
                .values(next_attempt_at=at or row.next_attempt_at)
            )


def _record(
    engine: Engine, endpoint: Any, row: Any, outcome: Outcome, at: dt.datetime, report: Any
) -> Any:
    """Store an attempt's result on its delivery and its endpoint; the endpoint after it."""
    attempts = row.attempts + 1
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_status": outcome.status,
        "last_error": None if outcome.delivered else outcome.detail[:500],
        "public_error": None if outcome.delivered else outcome.public_reason[:200],
    }
    if outcome.delivered:
        values.update(status="delivered", delivered_at=at)
        report.delivered += 1
    elif attempts >= MAX_ATTEMPTS:
        values.update(status="failed")
        report.failed += 1
        logger.warning(
            "webhook delivery %s of %s to %s failed for good: %s",
            row.id,
            row.event_id,
            endpoint.id,
            outcome.detail,
        )
    else:
        values.update(next_attempt_at=at + backoff(attempts))
        report.retrying += 1
    failures = 0 if outcome.delivered else endpoint.failures_in_a_row + 1
    endpoint_values: dict[str, Any] = {"failures_in_a_row": failures}
    disable = failures >= DISABLE_AFTER
    in_a_row = f"{failures} attempts failed in a row; the last: "
    reason = (in_a_row + outcome.detail)[:300]  # for the log and the operators
    if disable:
        # NOTE: the endpoint's owner reads disabled_reason: the reason without internal
        # addresses or ports, as its deliveries show them (docs/webhooks.md)
        public = (in_a_row + outcome.public_reason)[:300]
        endpoint_values.update(status="disabled", disabled_reason=public)
        report.disabled += 1
        logger.error("webhook endpoint %s (%s) disabled: %s", endpoint.id, endpoint.url, reason)
    with engine.begin() as connection:
        connection.execute(update(_DELIVERIES).where(_DELIVERIES.c.id == row.id).values(**values))
        connection.execute(
            update(_ENDPOINTS).where(_ENDPOINTS.c.id == endpoint.id).values(**endpoint_values)
        )
        if disable:
            emit(
                connection,
                "webhook_endpoint.disabled",
                customer=None,
                data={
                    "id": endpoint.id,
                    "customer": endpoint.customer_id,
                    "url": endpoint.url,
                    "disabled_reason": reason,
                },
                now=at,
            )
            # The owner and the operators are told by email too (docs/email.md); once per
            # disabling: an endpoint enabled and disabled again is a new notice.
            notice = f"{endpoint.id}@{int(at.timestamp())}"
            if endpoint.customer_id is not None:
                enqueue(
                    connection,
                    customer_id=endpoint.customer_id,
                    kind=EmailKind.ENDPOINT_DISABLED,
                    reference=notice,
                    now=at,
                )
            enqueue(
                connection,
                customer_id=None,
                kind=EmailKind.ENDPOINT_DISABLED,
                reference="admin:" + notice,
                now=at,
            )
        return connection.execute(select(_ENDPOINTS).where(_ENDPOINTS.c.id == endpoint.id)).one()


def deliver_due(
    engine: Engine,
    send: Sender,
    *,
    now: dt.datetime | None = None,
) -> DeliveryReport:
    """Send every delivery due at `now` (default: the clock), endpoints concurrently, each
    in order; what became of them. `send` posts one request with its own deadline."""

    def clock() -> dt.datetime:
        return now or dt.datetime.now(dt.UTC)

    report = DeliveryReport()
    while True:
        claimed = _claim(engine, clock())
        if not claimed:
            return report
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(claimed))) as pool:
            done = [
                pool.submit(_serve, engine, endpoint_id, rows, send, clock)
                for endpoint_id, rows in claimed.items()
            ]
            for future in done:
                part = future.result()
                report.delivered += part.delivered
                report.retrying += part.retrying
                report.failed += part.failed
                report.disabled += part.disabled
        if now is not None and all(len(rows) < BATCH for rows in claimed.values()):
            return report


def payload_of(raw: str) -> dict[str, Any]:
    """An event's stored payload as JSON values."""
    loaded: dict[str, Any] = json.loads(raw)
    return loaded
