"""Firing alerts inside the ingesting transaction, and reading them back.

An alert is a row of its own (once per customer, product, period and kind, enforced by a
unique constraint) and, when the customer has a webhook URL, an outbox row written in the
same transaction: the webhook is sent later by `billing.alerts.delivery`, so an alert is
never lost to a crash and never delivered for usage that was rolled back.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Connection, insert, select

from billing.alerts.models import Alert, Outbox
from billing.alerts.public import AlertPublic, alert_public, utc_text
from billing.caps.accounts import Account
from billing.caps.quota import AlertDue, QuotaState, QuotaTerms, alerts_due, with_alerts
from billing.db import table_of
from billing.email.outbox import EmailKind, enqueue
from billing.money import format_amount
from billing.notifications.events import emit


def fire_due_alerts(
    connection: Connection,
    *,
    account: Account,
    product: str,
    period_start: dt.datetime,
    state: QuotaState,
    terms: QuotaTerms,
    now: dt.datetime,
) -> QuotaState:
    """Record the alerts `state` has reached since it last fired; the state with them fired."""
    due = alerts_due(
        state,
        terms,
        thresholds=account.thresholds,
        free_allowance_alert=account.free_allowance_alert,
    )
    if not due:
        return state
    alert_table = table_of(Alert)
    outbox_table = table_of(Outbox)
    for item in due:
        if item.silent:  # the cap is reached: an event for integrators, no alert
            emit(
                connection,
                "spend_cap.reached",
                customer=account.id,
                data=_quota_data(product, period_start, state, terms),
                now=now,
            )
            continue
        alert_id = connection.execute(
            insert(alert_table)
            .values(
                customer_id=account.id,
                product=product,
                period_start=period_start,
                kind=item.kind,
                message=item.message,
                fired_at=now,
                delivery="pending" if account.webhook_url else "none",
            )
            .returning(alert_table.c.id)
        ).scalar_one()
        if account.webhook_url:
            body = webhook_body(
                alert_id, account.id, product, period_start, item, now, state, terms
            )
            connection.execute(
                insert(outbox_table).values(
                    customer_id=account.id,
                    alert_id=alert_id,
                    url=account.webhook_url,
                    body=body,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        emit(
            connection,
            "usage.alert",
            customer=account.id,
            data=_alert_data(alert_id, account.id, product, period_start, item, now, state, terms),
            now=now,
        )
        # Email: the customer's billing email is told too (billing/email, docs/email.md).
        enqueue(
            connection,
            customer_id=account.id,
            kind=EmailKind.USAGE_ALERT,
            reference=str(alert_id),
            now=now,
        )
    return with_alerts(state, due)


def _alert_data(*args: Any) -> Any:
    """usage.alert's data: the alert and the quota, as the alert webhook carries them."""

    def build() -> dict[str, Any]:
        document = json.loads(webhook_body(*args))
        return {"alert": document["alert"], "quota": document["quota"]}

    return build


def _quota_data(
    product: str, period_start: dt.datetime, state: QuotaState, terms: QuotaTerms
) -> dict[str, Any]:
    """spend_cap.reached's data: the product, its period and its quota at the cap."""
    cap = terms.cap
    return {
        "product": product,
        "period_start": utc_text(period_start),
        "cap": None if cap is None else format_amount(cap, terms.plan.currency),
        "limit_quantity": _text(state.limit_quantity),
        "accepted_quantity": format(state.accepted, "f"),
        "billed_quantity": format(state.billed, "f"),
    }


def webhook_body(
    alert_id: int,
    customer: str,
    product: str,
    period_start: dt.datetime,
    alert: AlertDue,
    now: dt.datetime,
    state: QuotaState,
    terms: QuotaTerms,
) -> str:
    """The JSON a webhook carries (docs/spend-caps.md), fixed when the alert fires."""
    cap = terms.cap
    document = {
        "type": "usage.alert",
        "alert": {
            "id": alert_id,
            "customer": customer,
            "product": product,
            "period_start": utc_text(period_start),
            "kind": alert.kind,
            "passed": list(alert.passed),
            "message": alert.message,
            "fired_at": utc_text(now),
        },
        "quota": {
            "cap": None if cap is None else format_amount(cap, terms.plan.currency),
            "limit_quantity": _text(state.limit_quantity),
            "accepted_quantity": format(state.accepted, "f"),
            "billed_quantity": format(state.billed, "f"),
        },
    }
    return json.dumps(document, separators=(",", ":"))


def _text(value: Any) -> str | None:
    return None if value is None else format(value, "f")


def list_alerts(
    connection: Connection,
    customer_id: str,
    period_start: dt.datetime | None = None,
    *,
    detail: bool = False,
) -> list[AlertPublic]:
    """A customer's alerts, newest first, with their delivery state. A failed delivery says
    what the customer may see, or with `detail` (admin and finance keys) what went wrong."""
    alert_table = table_of(Alert)
    outbox_table = table_of(Outbox)
    joined = alert_table.outerjoin(
        outbox_table,
        (outbox_table.c.customer_id == alert_table.c.customer_id)
        & (outbox_table.c.alert_id == alert_table.c.id),
    )
    error = outbox_table.c.last_error if detail else outbox_table.c.public_error
    query = (
        select(
            alert_table,
            outbox_table.c.attempts,
            error.label("last_error"),
            outbox_table.c.delivered_at,
        )
        .select_from(joined)
        .where(alert_table.c.customer_id == customer_id)
        .order_by(alert_table.c.fired_at.desc(), alert_table.c.id.desc())
    )
    if period_start is not None:
        query = query.where(alert_table.c.period_start == period_start)
    return [alert_public(row) for row in connection.execute(query)]
