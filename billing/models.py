"""Every table, imported in one place so that metadata (and Alembic) sees them all."""

from billing.alerts.models import Alert, Outbox
from billing.auth.models import ApiKey
from billing.caps.models import SpendCap, SpendCapChange
from billing.commitments.models import Commitment
from billing.credits.models import CreditEntry
from billing.customers.models import Customer
from billing.email.models import EmailOutbox
from billing.idempotency.models import IdempotencyKey
from billing.invoicing.models import (
    CreditNote,
    CreditNoteLine,
    DocumentNumber,
    Invoice,
    InvoiceLine,
    InvoiceSeries,
)
from billing.jobs.models import JobRun
from billing.metering.models import Event, EventKey, Usage
from billing.notifications.models import NotificationEvent, WebhookDelivery, WebhookEndpoint
from billing.stripe_sync.models import CreditNoteSync, InvoiceSync, StripeCustomer, StripeEvent
from billing.web.models import WebLink, WebSecret, WebSession

__all__ = [
    "Alert",
    "ApiKey",
    "Commitment",
    "CreditEntry",
    "CreditNote",
    "CreditNoteLine",
    "CreditNoteSync",
    "Customer",
    "DocumentNumber",
    "EmailOutbox",
    "Event",
    "EventKey",
    "IdempotencyKey",
    "Invoice",
    "InvoiceLine",
    "InvoiceSeries",
    "InvoiceSync",
    "JobRun",
    "NotificationEvent",
    "Outbox",
    "SpendCap",
    "SpendCapChange",
    "StripeCustomer",
    "StripeEvent",
    "Usage",
    "WebLink",
    "WebSecret",
    "WebSession",
    "WebhookDelivery",
    "WebhookEndpoint",
]
