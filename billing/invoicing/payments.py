"""The payment state machine of an invoice, in one place (docs/invoicing.md, "Payment states").

    finalized ──▶ payment_failed ──▶ paid | uncollectible | void
        └──────────────────────────▶ paid | uncollectible | void

`finalized` is an issued, unpaid (open) invoice; `payment_failed` an open one whose last
payment attempt failed (it may still be paid). `paid`, `uncollectible` and `void` are
terminal: nothing moves an invoice out of them. Payment events (Stripe's webhooks) arrive in
any order, so each is applied by the time it happened (its `created`), not by when it
arrived: an event older than the one that set the current open state is stale, and any
event for an invoice in a terminal state is not applied. Neither is lost: the caller records
it with the reason `decide` gives.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, select, update

from billing.db import table_of
from billing.errors import NotFound
from billing.invoicing.models import Invoice, InvoiceStatus
from billing.invoicing.snapshot import emit_invoice_event


class PaymentEvent(StrEnum):
    """What a payment processor says happened to an invoice."""

    PAID = "paid"
    PAYMENT_FAILED = "payment_failed"
    VOIDED = "voided"
    MARKED_UNCOLLECTIBLE = "marked_uncollectible"


TARGET = {
    PaymentEvent.PAID: InvoiceStatus.PAID,
    PaymentEvent.PAYMENT_FAILED: InvoiceStatus.PAYMENT_FAILED,
    PaymentEvent.VOIDED: InvoiceStatus.VOID,
    PaymentEvent.MARKED_UNCOLLECTIBLE: InvoiceStatus.UNCOLLECTIBLE,
}


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether an event moves the invoice, to which status, and if not, why not."""

    applied: bool
    status: InvoiceStatus
    reason: str = ""


def decide(
    current: InvoiceStatus,
    changed_at: dt.datetime | None,
    event: PaymentEvent,
    at: dt.datetime,
) -> Decision:
    """What `event`, which happened `at`, does to an invoice in `current` status, whose
    status was last set by an event of `changed_at` (None: never by an event). Pure."""
    target = TARGET[event]
    if current.terminal:
        if current is target:
            return Decision(False, current, f"the invoice is already {current}")
        return Decision(
            False, current, f"the invoice is {current}, a final state: {event} cannot change it"
        )
    if not target.terminal and changed_at is not None and at < changed_at:
        return Decision(
            False,
            current,
            f"stale: {event} happened at {at.isoformat()}, before the event that made the "
            f"invoice {current} ({changed_at.isoformat()})",
        )
    return Decision(True, target)


_INVOICES = table_of(Invoice)


def apply_event(
    connection: Connection, *, invoice_id: str, event: PaymentEvent, at: dt.datetime
) -> Decision:
    """Apply a payment event (not a void: voids go through invoicing.service.void) to our
    invoice, its row locked; the decision. NotFound for an unknown invoice."""
    if event is PaymentEvent.VOIDED:
        raise ValueError("voids go through invoicing.service.void")
    query = select(
        _INVOICES.c.status, _INVOICES.c.status_changed_at, _INVOICES.c.customer_id
    ).where(_INVOICES.c.id == invoice_id)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = connection.execute(query).first()
    if row is None:
        raise NotFound(f"no invoice {invoice_id!r}", field="invoice")
    decision = decide(InvoiceStatus(row.status), row.status_changed_at, event, at)
    if decision.applied:
        values: dict[str, object] = {"status": decision.status, "status_changed_at": at}
        if decision.status is InvoiceStatus.PAID:
            values["paid_at"] = at
        connection.execute(update(_INVOICES).where(_INVOICES.c.id == invoice_id).values(**values))
        emit_invoice_event(connection, f"invoice.{event}", invoice_id, row.customer_id, at)
    return decision
