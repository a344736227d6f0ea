"""Stripe's webhook: paid, failed and voided states recorded against our invoices.

The signature (`Stripe-Signature`, BILLING_STRIPE_WEBHOOK_SECRET) is checked by the official
SDK on the raw body; a bad one is a 400. Each event id is applied once: a replay answers
200 and changes nothing. Event types we do not use are acknowledged and ignored.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, insert, select, update

from billing.db import table_of
from billing.stripe_sync.models import InvoiceSync, StripeEvent, SyncStatus

STATES = {
    "invoice.paid": SyncStatus.PAID,
    "invoice.payment_failed": SyncStatus.PAYMENT_FAILED,
    "invoice.voided": SyncStatus.VOIDED,
}
_SYNC = table_of(InvoiceSync)
_EVENTS = table_of(StripeEvent)


def apply_event(connection: Connection, event: Any, now: dt.datetime) -> str:
    """Record one verified event; what it did, in a word."""
    state = STATES.get(event.type)
    if state is None:
        return "ignored"
    seen = connection.execute(select(_EVENTS.c.id).where(_EVENTS.c.id == event.id)).first()
    if seen is not None:
        return "replayed"
    connection.execute(insert(_EVENTS), {"id": event.id, "type": event.type, "received_at": now})
    stripe_invoice = event.data.object
    moved = connection.execute(
        update(_SYNC)
        .where(_SYNC.c.stripe_invoice_id == stripe_invoice.id)
        .values(status=state, updated_at=now)
    )
    return "recorded" if moved.rowcount else "unknown_invoice"
