"""Sending the outbox: signed webhook POSTs, several receivers at once, with exponential backoff.

Each due message is first claimed (its next attempt moved a lease ahead, in a short
transaction of its own), then sent outside any transaction, then recorded. Two delivery
runs at once therefore never send the same message at the same time; a run that dies
after sending but before recording leaves the message to be sent again when its lease
ends. Delivery is at least once: receivers deduplicate by the alert id (docs/spend-caps.md).

A message is sent by `billing.webhooks_out.send`: its host resolved once, every address
checked, the connection made to the checked address, no redirects, and one deadline
(`timeout`, BILLING_WEBHOOK_TIMEOUT_SECONDS) for the whole attempt. A run groups what it
claimed by URL: one URL's messages go out one after another in claim order, different URLs
at once (WORKERS threads), so a slow receiver delays only its own messages. When a URL does
not answer at all (a refused address, no connection, the deadline), its other messages of
the run are not tried: a later run sends them once their lease ends, so a dead endpoint
costs one deadline per run, not one per message. Only the sending runs in the threads;
claiming and recording stay on the calling thread, which records each result as it comes.

A 2xx answer delivers. Anything else schedules another attempt after BACKOFF[attempts - 1];
after the last one the message and its alert are marked `failed`. A failed attempt keeps two
reasons: `last_error`, the detail (the log, and GET /v1/customers/{id}/alerts with an admin
or finance key), and `public_error`, what the customer's own key is shown there: the status
their endpoint answered, or one generic sentence that never tells what sits at an address.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update

from billing import __version__
from billing.alerts.models import Alert, Outbox
from billing.alerts.signing import HEADER, signature
from billing.customers.models import Customer
from billing.db import table_of
from billing.webhooks_out.send import Outcome, no_answer_reason, send

logger = logging.getLogger(__name__)
BACKOFF = tuple(
    dt.timedelta(seconds=s) for s in (30, 60, 120, 300, 600, 1800, 3600)
)  # then give up: 8 attempts over about 1 h 50 min
MAX_ATTEMPTS = len(BACKOFF) + 1
LEASE = dt.timedelta(minutes=2)
BATCH = 100
WORKERS = 8  # receivers sent to at once


@dataclass
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return f"{self.delivered} delivered, {self.retrying} to retry, {self.failed} failed"


def _claim(engine: Engine, now: dt.datetime) -> list[Any]:
    outbox = table_of(Outbox)
    customer = table_of(Customer)
    query = (
        select(outbox, customer.c.webhook_secret)
        .join(customer, customer.c.id == outbox.c.customer_id)
        .where(outbox.c.status == "pending", outbox.c.next_attempt_at <= now)
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(BATCH)
    )
    claimed = []
    with engine.begin() as connection:
        for row in connection.execute(query).all():
            moved = connection.execute(
                update(outbox)
                .where(outbox.c.customer_id == row.customer_id, outbox.c.id == row.id)
                .where(outbox.c.next_attempt_at == row.next_attempt_at)
                .where(outbox.c.status == "pending")
                .values(next_attempt_at=now + LEASE)
            )
            if moved.rowcount == 1:
                claimed.append(row)
    return claimed


def _record(engine: Engine, row: Any, outcome: Outcome, now: dt.datetime) -> str:
    outbox = table_of(Outbox)
    alert = table_of(Alert)
    attempts = row.attempts + 1
    values: dict[str, Any]
    if outcome.delivered:
        status = "delivered"
        values = {"delivered_at": now, "last_error": None, "public_error": None}
    else:
        status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
        values = {"last_error": outcome.detail[:500], "public_error": outcome.public_reason[:500]}
        if status == "pending":
            values["next_attempt_at"] = now + BACKOFF[attempts - 1]
    with engine.begin() as connection:
        connection.execute(
            update(outbox)
            .where(outbox.c.customer_id == row.customer_id, outbox.c.id == row.id)
            .values(status=status, attempts=attempts, **values)
        )
        if status != "pending":
            connection.execute(
                update(alert)
                .where(alert.c.customer_id == row.customer_id, alert.c.id == row.alert_id)
                .values(delivery=status)
            )
    return status


def _send_one(
    row: Any,
    now: dt.datetime | None,
    timeout: float,  # float-ok: seconds
    allow_private: bool,
) -> Outcome:
    body = row.body.encode()
    sent_at = dt.datetime.now(dt.UTC) if now is None else now
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"billing-webhooks/{__version__}",
        "Billing-Alert-Id": str(row.alert_id),
        HEADER: signature(row.webhook_secret or "", int(sent_at.timestamp()), body),
    }
    return send(row.url, body, headers, deadline=timeout, allow_private=allow_private)


Results = queue.SimpleQueue[tuple[Any, Outcome | None]]


def _send_group(
    rows: Sequence[Any],
    results: Results,
    now: dt.datetime | None,
    timeout: float,  # float-ok: seconds
    allow_private: bool,
) -> None:
    """Send one URL's messages in order, each result put in `results` as it comes; after
    an attempt nothing answered, the rest are put with no outcome (left to a later run)."""
    for index, row in enumerate(rows):
        try:
            outcome = _send_one(row, now, timeout, allow_private)
        except Exception as error:  # a bug, not the network: recorded as a failed attempt
            logger.exception("webhook %s could not be sent", row.id)
            outcome = Outcome(
                False, None, f"{type(error).__name__}: {error}", no_answer_reason(timeout)
            )
        results.put((row, outcome))
        if outcome.status is None and not outcome.delivered:
            for left in rows[index + 1 :]:
                results.put((left, None))
            return


def _by_url(rows: Sequence[Any]) -> list[list[Any]]:
    groups: dict[str, list[Any]] = {}
    for row in rows:
        groups.setdefault(row.url, []).append(row)
    return list(groups.values())


def deliver_due(
    engine: Engine,
    *,
    now: dt.datetime | None = None,
    timeout: float = 5.0,  # float-ok: seconds
    allow_private: bool = False,
) -> DeliveryReport:
    """Send every message due at `now` (default: the clock); report what became of them.
    A message left for a later run (its URL did not answer this run) counts as to retry."""
    report = DeliveryReport()
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="webhooks") as pool:
        while True:
            claimed = _claim(engine, now or dt.datetime.now(dt.UTC))
            if not claimed:
                return report
            results: Results = queue.SimpleQueue()
            for rows in _by_url(claimed):
                pool.submit(_send_group, rows, results, now, timeout, allow_private)
            for _ in claimed:
                row, outcome = results.get()
                if outcome is None:
                    report.retrying += 1
                    continue
                status = _record(engine, row, outcome, now or dt.datetime.now(dt.UTC))
                if status == "delivered":
                    report.delivered += 1
                elif status == "failed":
                    report.failed += 1
                    logger.warning("webhook %s failed for good: %s", row.id, outcome.detail)
                else:
                    report.retrying += 1
                    logger.info("webhook %s to retry: %s", row.id, outcome.detail)
            if now is not None and len(claimed) < BATCH:
                return report
