"""Stripe's webhook: payment events applied to our invoices, in the order they happened.

The signature (`Stripe-Signature`, BILLING_STRIPE_WEBHOOK_SECRET) is checked by the official
SDK on the raw body; a bad one is a 400. Stripe does not promise delivery order, so each
event is applied through the invoice's state machine (invoicing/payments.py) by its own
`created` time: a terminal state (paid, void, uncollectible) never moves again, and an
older event never undoes a newer one. Every event received is recorded once with what it
did (docs/stripe.md, "Events consumed"): `recorded` (applied), `not_applied` (with the
reason), `replayed` (the same event id again: nothing changes), `unknown_invoice`, or
`ignored` (a type we do not use, or a shape we do not expect).

Stripe signs what it sends, but a signed body may still be any JSON object: every field is
read defensively (`_field`, `_id`), and an id that is not one Stripe could have made (not a
string, empty, over 255 characters, or with characters Stripe ids never have, such as NUL,
which PostgreSQL cannot store) makes the event `ignored`, never an error.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from billing.catalog import Catalog
from billing.corrections.void import void
from billing.db import table_of
from billing.errors import Conflict
from billing.invoicing import payments
from billing.invoicing.models import Invoice
from billing.invoicing.payments import PaymentEvent
from billing.stripe_sync.models import InvoiceSync, StripeEvent, SyncStatus

EVENTS = {
    "invoice.paid": PaymentEvent.PAID,
    "invoice.payment_failed": PaymentEvent.PAYMENT_FAILED,
    "invoice.voided": PaymentEvent.VOIDED,
    "invoice.marked_uncollectible": PaymentEvent.MARKED_UNCOLLECTIBLE,
}
# What the sync table shows once a payment event is applied (finance sees it beside sync).
_SYNC_SHOWS = {
    PaymentEvent.PAID: SyncStatus.PAID,
    PaymentEvent.PAYMENT_FAILED: SyncStatus.PAYMENT_FAILED,
    PaymentEvent.VOIDED: SyncStatus.VOIDED,
}
_SYNC = table_of(InvoiceSync)
_EVENTS = table_of(StripeEvent)
_INVOICES = table_of(Invoice)
# Stripe's ids (evt_..., in_...) are printable ASCII without spaces; their columns hold 255.
_STRIPE_ID = re.compile(r"[\x21-\x7e]{1,255}")
_OUR_ID = re.compile(r"[\x21-\x7e]{1,32}")  # our invoice ids (inv_...), as in metadata


@dataclass(frozen=True, slots=True)
class Receipt:
    """What one event did, in a word, and why when it changed nothing."""

    outcome: str
    reason: str = ""


def _field(obj: Any, name: str) -> Any:
    try:
        return obj[name]
    except (KeyError, TypeError, IndexError):
        return getattr(obj, name, None)


def _id(value: Any, shape: re.Pattern[str]) -> str | None:
    """`value` when it is an id of that shape; None for anything else."""
    return value if isinstance(value, str) and shape.fullmatch(value) else None


def _our_invoice(connection: Connection, stripe_invoice: Any, stripe_id: str) -> str | None:
    """Our invoice for Stripe's: by the id we recorded, else by our id in its metadata when
    such an invoice exists."""
    found = connection.execute(
        select(_SYNC.c.invoice_id).where(_SYNC.c.stripe_invoice_id == stripe_id)
    ).scalar()
    if found is not None:
        return str(found)
    ours = _id(_field(_field(stripe_invoice, "metadata"), "billing_invoice_id"), _OUR_ID)
    if ours is None:
        return None
    known = connection.execute(select(_INVOICES.c.id).where(_INVOICES.c.id == ours)).scalar()
    return None if known is None else str(known)


def apply_event(connection: Connection, catalog: Catalog, event: Any, now: dt.datetime) -> Receipt:
    """Apply one verified event in the caller's transaction; what it did. `event` may be any
    JSON value: a shape this service cannot use is `ignored`, never an exception."""
    event_type = _field(event, "type")
    kind = EVENTS.get(event_type) if isinstance(event_type, str) else None
    event_id = _id(_field(event, "id"), _STRIPE_ID)
    stripe_invoice = _field(_field(event, "data"), "object")
    created = _field(event, "created")
    stripe_id = _id(_field(stripe_invoice, "id"), _STRIPE_ID)
    if kind is None:
        return Receipt("ignored", "not an event this service uses")
    if event_id is None or stripe_id is None:
        return Receipt("ignored", "not the shape of a Stripe invoice event")
    seen = connection.execute(select(_EVENTS.c.id).where(_EVENTS.c.id == event_id)).first()
    if seen is not None:
        return Receipt("replayed")
    at = (
        dt.datetime.fromtimestamp(created, dt.UTC)
        if type(created) is int and 0 < created < 2**37
        else now
    )
    invoice_id = _our_invoice(connection, stripe_invoice, stripe_id)
    receipt = (
        Receipt("unknown_invoice", f"no invoice of ours is Stripe's {stripe_id}")
        if invoice_id is None
        else _apply(connection, catalog, invoice_id, kind, at)
    )
    connection.execute(
        insert(_EVENTS),
        {
            "id": event_id,
            "type": event_type,
            "received_at": now,
            "stripe_invoice_id": stripe_id,
            "created": at,
            "outcome": receipt.outcome,
            "reason": receipt.reason[:300],
        },
    )
    return receipt


def _apply(
    connection: Connection, catalog: Catalog, invoice_id: str, kind: PaymentEvent, at: dt.datetime
) -> Receipt:
    if kind is PaymentEvent.VOIDED:
        try:
            with connection.begin_nested():
                void(
                    connection,
                    catalog,
                    invoice_id,
                    reason="voided in Stripe",
                    actor="stripe",
                    now=at,
                    reissue=False,
                )
        except Conflict as refused:
            return Receipt("not_applied", refused.message)
    else:
        decision = payments.apply_event(connection, invoice_id=invoice_id, event=kind, at=at)
        if not decision.applied:
            return Receipt("not_applied", decision.reason)
    shows = _SYNC_SHOWS.get(kind)
    if shows is not None:
        connection.execute(
            update(_SYNC)
            .where(_SYNC.c.invoice_id == invoice_id)
            .values(status=shows, updated_at=at)
        )
    return Receipt("recorded")
