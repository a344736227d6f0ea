"""Pushing finalized invoices to Stripe, exactly once, and checking Stripe agrees.

For each finalized invoice with an amount due, in order:
  1. the Stripe customer: our mapping, else found by our id in its metadata (search), else
     created (idempotency key from our id; our id in its metadata);
  2. the Stripe invoice: first looked for among the customer's invoices by our id in its
     metadata (listing, not search: Stripe's search is only eventually consistent), so a
     crash after Stripe created it but before we recorded it never makes a second one;
     else created as a draft (idempotency key from our id);
  3. one invoice item per line (discounts and credits as negative items), skipping lines
     the draft already carries (found by their metadata), each with its own key;
  4. finalized, then **Stripe's total must equal our amount due**: otherwise the invoice is
     marked `mismatch` and logged as an error, never accepted.
Network errors, 429s and 5xx are retried later with exponential backoff and jitter; other
Stripe errors mark the invoice `sync_failed` with Stripe's message. Voided invoices are voided
in Stripe.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from dataclasses import dataclass
from typing import Any

import stripe
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from billing.db import session_scope, table_of
from billing.invoicing.models import Invoice, InvoiceLine
from billing.observability.metrics import record_sync
from billing.stripe_sync.amounts import StripeAmountError, to_stripe_amount
from billing.stripe_sync.models import InvoiceSync, StripeCustomer, SyncStatus

logger = logging.getLogger(__name__)
BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_MAX = dt.timedelta(hours=2)
TRANSIENT = (stripe.APIConnectionError, stripe.RateLimitError)

_INVOICES = table_of(Invoice)
_LINES = table_of(InvoiceLine)
_SYNC = table_of(InvoiceSync)
_CUSTOMERS = table_of(StripeCustomer)


def make_client(api_key: str, api_base: str | None) -> stripe.StripeClient:
    """The official SDK's client; `api_base` points it elsewhere (a local Stripe stand-in)."""
    addresses: Any = {"api": api_base} if api_base else None
    # NOTE: retries are ours (backoff across runs); the SDK's own would hide failures.
    return stripe.StripeClient(api_key, base_addresses=addresses, max_network_retries=0)


@dataclass
class SyncReport:
    synced: int = 0
    retrying: int = 0
    failed: int = 0
    mismatched: int = 0
    voided: int = 0

    def __str__(self) -> str:
        return (
            f"{self.synced} synced, {self.retrying} to retry, {self.failed} failed, "
            f"{self.mismatched} mismatched, {self.voided} voided"
        )


class Mismatch(Exception):
    """Stripe's total differs from our amount due."""


def _transient(error: Exception) -> bool:
    if isinstance(error, TRANSIENT):
        return True
    status = getattr(error, "http_status", None)
    return isinstance(error, stripe.StripeError) and status is not None and status >= 500


def backoff(attempts: int) -> dt.timedelta:
    """30 s, 1 min, 2 min, ... up to 2 h, with up to 20 % jitter."""
    delay: dt.timedelta = min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)
    jitter = dt.timedelta(
        microseconds=random.randrange(int(delay / dt.timedelta(microseconds=1)) // 5 + 1)
    )
    return delay + jitter  # jitter spreads retries, it is not a secret


def _enqueue(engine: Engine, now: dt.datetime) -> None:
    """Every finalized invoice with an amount due gets a pending sync row, once."""
    with session_scope(engine) as session:
        connection = session.connection()
        known = select(_SYNC.c.invoice_id)
        # NOTE: amounts are compared in Python: on SQLite they are stored as exact text.
        new = connection.execute(
            select(_INVOICES.c.id, _INVOICES.c.amount_due)
            .where(_INVOICES.c.status == "finalized")
            .where(_INVOICES.c.id.not_in(known))
        )
        rows = [
            {
                "invoice_id": row.id,
                "status": SyncStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "updated_at": now,
            }
            for row in new
            if row.amount_due > 0
        ]
        if rows:
            connection.execute(insert(_SYNC), rows)


def _customer_id(client: stripe.StripeClient, engine: Engine, customer: str) -> str:
    with session_scope(engine) as session:
        found = (
            session.connection()
            .execute(select(_CUSTOMERS.c.stripe_id).where(_CUSTOMERS.c.customer_id == customer))
            .scalar()
        )
    if found:
        return str(found)
    # NOTE: a run that died after Stripe created the customer left no mapping: look for our
    # id first (search lags by seconds at most; the idempotency key covers a day).
    query = f"metadata['billing_customer_id']:'{customer}'"
    existing = client.v1.customers.search(params={"query": query}).data
    if existing:
        _remember(engine, customer, existing[0].id)
        return str(existing[0].id)
    created = client.v1.customers.create(
        params={"name": customer, "metadata": {"billing_customer_id": customer}},
        options={"idempotency_key": f"billing-customer-{customer}"},
    )
    _remember(engine, customer, created.id)
    return str(created.id)


def _remember(engine: Engine, customer: str, stripe_id: str) -> None:
    """Record the mapping; if another process recorded it first, theirs stands (both found
    the same Stripe customer by metadata, or this one is an orphan nobody will use)."""
    with session_scope(engine) as session:
        connection = session.connection()
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        connection.execute(
            dialect.insert(_CUSTOMERS)
            .values(customer_id=customer, stripe_id=stripe_id)
            .on_conflict_do_nothing(index_elements=["customer_id"])
        )


def _meta(obj: Any, key: str) -> str | None:
    metadata: Any = getattr(obj, "metadata", None)
    if not metadata:
        return None
    value = metadata.to_dict().get(key) if hasattr(metadata, "to_dict") else metadata.get(key)
    return None if value is None else str(value)


def _find_invoice(client: stripe.StripeClient, stripe_customer: str, invoice_id: str) -> Any:
    for found in client.v1.invoices.list(
        params={"customer": stripe_customer, "limit": 100}
    ).auto_paging_iter():
        if _meta(found, "billing_invoice_id") == invoice_id:
            return found
    return None


def push(client: stripe.StripeClient, engine: Engine, invoice: Any, lines: list[Any]) -> str:
    """Create (or find) and finalize the Stripe invoice; return its id. Raises Mismatch, and
    StripeAmountError (before any call to Stripe) for an amount Stripe cannot carry."""
    currency = invoice.currency.lower()
    # Stripe's integers (billing/stripe_sync/amounts.py), all converted before Stripe is called
    amounts = {line.position: to_stripe_amount(line.amount, invoice.currency) for line in lines}
    expected = to_stripe_amount(invoice.amount_due, invoice.currency)
    stripe_customer = _customer_id(client, engine, invoice.customer_id)
    found = _find_invoice(client, stripe_customer, invoice.id)
    if found is None:
        found = client.v1.invoices.create(
            params={
                "customer": stripe_customer,
                "currency": currency,
                "collection_method": "send_invoice",
                "days_until_due": 30,
                "auto_advance": False,
                "pending_invoice_items_behavior": "exclude",
                "metadata": {"billing_invoice_id": invoice.id},
            },
            options={"idempotency_key": f"billing-invoice-{invoice.id}"},
        )
    if found.status == "draft":
        present = {
            _meta(item, "billing_line")
            for item in client.v1.invoices.line_items.list(
                found.id, params={"limit": 100}
            ).auto_paging_iter()
        }
        for line in lines:
            if str(line.position) in present:
                continue
            client.v1.invoice_items.create(
                params={
                    "customer": stripe_customer,
                    "invoice": found.id,
                    "currency": currency,
                    "amount": amounts[line.position],
                    "description": line.description,
                    "metadata": {
                        "billing_invoice_id": invoice.id,
                        "billing_line": str(line.position),
                    },
                },
                options={"idempotency_key": f"billing-line-{invoice.id}-{line.position}"},
            )
        found = client.v1.invoices.finalize_invoice(
            found.id, options={"idempotency_key": f"billing-finalize-{invoice.id}"}
        )
    if found.total != expected:
        raise Mismatch(
            f"Stripe invoice {found.id} totals {found.total}, our amount due is {expected} "
            f"({invoice.currency} in Stripe's units)"
        )
    return str(found.id)


def _mark(engine: Engine, invoice_id: str, **values: Any) -> None:
    with session_scope(engine) as session:
        session.connection().execute(
            update(_SYNC).where(_SYNC.c.invoice_id == invoice_id).values(**values)
        )


def retry_now(engine: Engine, invoice_id: str, now: dt.datetime) -> bool:
    """Put a failed or waiting invoice first in line for the next sync run; False when it is
    in a state that is not retried (synced, paid, voided) or unknown."""
    with session_scope(engine) as session:
        changed = session.connection().execute(
            update(_SYNC)
            .where(_SYNC.c.invoice_id == invoice_id)
            .where(
                _SYNC.c.status.in_(
                    (SyncStatus.PENDING, SyncStatus.SYNC_FAILED, SyncStatus.MISMATCH)
                )
            )
            .values(status=SyncStatus.PENDING, next_attempt_at=now, updated_at=now)
        )
        return bool(changed.rowcount)


def sync_due(
    engine: Engine, client: stripe.StripeClient, now: dt.datetime | None = None
) -> SyncReport:
    """Push every invoice due for sync, and void in Stripe what we voided."""
    at = now or dt.datetime.now(dt.UTC)
    _enqueue(engine, at)
    report = SyncReport()
    with session_scope(engine) as session:
        due = list(
            session.connection().execute(
                select(_SYNC, _INVOICES)
                .join(_INVOICES, _INVOICES.c.id == _SYNC.c.invoice_id)
                .where(_SYNC.c.status == SyncStatus.PENDING, _SYNC.c.next_attempt_at <= at)
                .where(_INVOICES.c.status == "finalized")
                .order_by(_SYNC.c.next_attempt_at)
            )
        )
        to_void = list(
            session.connection().execute(
                select(_SYNC.c.invoice_id, _SYNC.c.stripe_invoice_id)
                .join(_INVOICES, _INVOICES.c.id == _SYNC.c.invoice_id)
                .where(_INVOICES.c.status == "void")
                .where(_SYNC.c.status.in_((SyncStatus.SYNCED, SyncStatus.PAYMENT_FAILED)))
            )
        )
    for row in due:
        with session_scope(engine) as session:
            lines = list(
                session.connection().execute(
                    select(_LINES).where(_LINES.c.invoice_id == row.id).order_by(_LINES.c.position)
                )
            )
        try:
            stripe_id = push(client, engine, row, lines)
        except Mismatch as error:
            logger.error("stripe sync of %s: %s", row.id, error)
            _mark(
                engine,
                row.id,
                status=SyncStatus.MISMATCH,
                last_error=str(error)[:500],
                updated_at=at,
            )
            report.mismatched += 1
        except StripeAmountError as error:
            logger.error("stripe sync of %s: %s", row.id, error)
            _mark(
                engine,
                row.id,
                status=SyncStatus.SYNC_FAILED,
                attempts=row.attempts + 1,
                last_error=str(error)[:500],
                updated_at=at,
            )
            report.failed += 1
        except stripe.StripeError as error:
            attempts = row.attempts + 1
            message = f"{type(error).__name__}: {getattr(error, 'user_message', None) or error}"
            if _transient(error):
                _mark(
                    engine,
                    row.id,
                    attempts=attempts,
                    next_attempt_at=at + backoff(attempts),
                    last_error=message[:500],
                    updated_at=at,
                )
                report.retrying += 1
            else:
                _mark(
                    engine,
                    row.id,
                    status=SyncStatus.SYNC_FAILED,
                    attempts=attempts,
                    last_error=message[:500],
                    updated_at=at,
                )
                report.failed += 1
        else:
            _mark(
                engine,
                row.id,
                status=SyncStatus.SYNCED,
                stripe_invoice_id=stripe_id,
                attempts=row.attempts + 1,
                last_error=None,
                updated_at=at,
            )
            report.synced += 1
    with session_scope(engine) as session:  # voided before it ever reached Stripe
        never_sent = session.connection().execute(
            update(_SYNC)
            .where(_SYNC.c.status == SyncStatus.PENDING)
            .where(
                _SYNC.c.invoice_id.in_(select(_INVOICES.c.id).where(_INVOICES.c.status == "void"))
            )
            .values(status=SyncStatus.VOIDED, updated_at=at)
        )
        report.voided += never_sent.rowcount
    for row in to_void:
        try:
            client.v1.invoices.void_invoice(
                row.stripe_invoice_id, options={"idempotency_key": f"billing-void-{row.invoice_id}"}
            )
        except stripe.StripeError as error:
            logger.warning("voiding %s in Stripe: %s", row.invoice_id, error)
            continue
        _mark(engine, row.invoice_id, status=SyncStatus.VOIDED, updated_at=at)
        report.voided += 1
    record_sync(report)
    return report
