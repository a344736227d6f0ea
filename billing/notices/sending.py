"""Working off the email outbox (billing/email) with the messages of `messages.py`.

Each email is composed at its first attempt from what the API answers at that moment: the
customer (its name, and its billing email: none, and the email is skipped with "no billing
email"), the alert as `GET /v1/customers/{id}/alerts` lists it, the invoice as `GET
/v1/invoices/{id}` shows it, with its due date (one voided or settled meanwhile is skipped).
The seller is BILLING_SELLER_NAME, as on the invoice PDF; the portal is linked when
BILLING_PUBLIC_URL is set.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, Engine

from billing.alerts.service import list_alerts
from billing.customers.service import get_customer
from billing.db import read_only
from billing.email import outbox
from billing.email.outbox import (
    NO_BILLING_EMAIL,
    Compose,
    Composed,
    EmailKind,
    NotSent,
    PendingEmail,
    SendReport,
)
from billing.errors import NotFound
from billing.invoicing.models import InvoiceStatus
from billing.invoicing.service import get_invoice
from billing.notices.messages import alert_email, endpoint_disabled_email, invoice_email
from billing.notifications import endpoints
from billing.notifications.public import endpoint_public
from billing.settings import Settings


def portal_url(settings: Settings) -> str | None:
    """Where the portal is, when BILLING_PUBLIC_URL is set (its default, a loopback address,
    is no link to send anyone)."""
    if "public_url" not in settings.model_fields_set:
        return None
    return settings.public_url.rstrip("/")


def composer(engine: Engine, settings: Settings) -> Compose:
    """What composes an outbox row: the alert or invoice email, or why none is sent."""
    portal = portal_url(settings)

    def compose(row: PendingEmail) -> Composed | NotSent:
        with read_only(engine) as connection:
            if row.kind == EmailKind.ENDPOINT_DISABLED:
                return _endpoint_disabled(connection, row, settings, portal)
            if row.customer_id is None:
                return NotSent(f"a {row.kind} email needs a customer")
            customer = get_customer(connection=connection, customer_id=row.customer_id)
            if not customer.email:
                return NotSent(NO_BILLING_EMAIL)
            if row.kind == EmailKind.USAGE_ALERT:
                alerts = list_alerts(connection, customer.id)
                alert = next((a for a in alerts if str(a.id) == row.reference), None)
                if alert is None:
                    return NotSent(f"no alert {row.reference}")
                return alert_email(
                    alert, to=customer.email, customer_name=customer.name, portal_url=portal
                )
            if row.kind == EmailKind.INVOICE:
                invoice = get_invoice(connection, row.reference, due_days=settings.invoice_due_days)
                if not InvoiceStatus(invoice.status).open:
                    return NotSent(f"invoice {invoice.status} before its notice was sent")
                return invoice_email(
                    invoice,
                    to=customer.email,
                    customer_name=customer.name,
                    seller=settings.seller_name,
                    due=None
                    if invoice.due_date is None
                    else dt.date.fromisoformat(invoice.due_date),
                    portal_url=portal,
                )
        return NotSent(f"unknown kind {row.kind!r}")

    return compose


def _endpoint_disabled(
    connection: Connection, row: PendingEmail, settings: Settings, portal: str | None
) -> Composed | NotSent:
    """The notice of an endpoint disabled after failing, to its customer's billing email or,
    for the operators' row, to BILLING_ADMIN_EMAIL; none when it was enabled again or
    deleted before the notice went out."""
    endpoint_id, _, stamp = row.reference.removeprefix("admin:").partition("@")
    try:
        found = endpoint_public(endpoints.get(connection, endpoint_id))
    except NotFound:
        return NotSent("the endpoint was deleted before its notice was sent")
    if found.status != "disabled":
        return NotSent("the endpoint was enabled again before its notice was sent")
    disabled_at = dt.datetime.fromtimestamp(int(stamp), dt.UTC)
    if row.customer_id is None:
        if not settings.admin_email:
            return NotSent("no BILLING_ADMIN_EMAIL")
        return endpoint_disabled_email(
            found,
            to=settings.admin_email,
            owner_name=None,
            disabled_at=disabled_at,
            portal_url=portal,
        )
    customer = get_customer(connection=connection, customer_id=row.customer_id)
    if not customer.email:
        return NotSent(NO_BILLING_EMAIL)
    return endpoint_disabled_email(
        found,
        to=customer.email,
        owner_name=customer.name,
        disabled_at=disabled_at,
        portal_url=portal,
    )


def send_due(engine: Engine, settings: Settings, now: dt.datetime | None = None) -> SendReport:
    """Send the usage-alert and invoice emails due at `now` (default: the clock)."""
    return outbox.send_due(engine, settings, composer(engine, settings), now=now)
