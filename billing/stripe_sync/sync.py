"""Pushing finalized invoices to Stripe, exactly once, checked before anything is payable.

For each finalized invoice with an amount due, in order (docs/stripe.md, "What is synced"):
  0. every amount is converted to Stripe's integer (billing/stripe_sync/amounts.py) before
     Stripe is called: one Stripe cannot carry is refused, never rounded;
  1. the Stripe customer: our mapping, else found by our id in its metadata (search), else
     created with our customer's `name` and `email` (idempotency key from our id; our id in
     its metadata);
  2. the Stripe invoice: first looked for among the customer's invoices by our id in its
     metadata (listing, not search: Stripe's search is only eventually consistent), so a
     crash after Stripe created it but before we recorded it never makes a second one;
     else created as a draft with the configured collection method (`Collection`);
  3. one invoice item per line (discounts and credits as negative items), skipping lines
     the draft already carries (found by listing the draft's invoice items and reading their
     metadata), each with its own key;
  4. **the draft's `total` and `amount_due` must equal our amount due** before it is
     finalized: otherwise the draft is deleted and the invoice marked `mismatch` with both
     figures, never left payable;
  5. finalized (and checked again: Stripe applies a customer's balance on finalizing; an
     open invoice that differs is voided and marked `mismatch`), then sent to the customer
     (`send_invoice`) or left to Stripe to charge (`charge_automatically`, auto-advance on).
Network errors, 429s, 409s (an idempotency key in use) and 5xx are retried later with
exponential backoff and jitter, each try under new idempotency keys (`_key`); other Stripe
errors mark the invoice `sync_failed` with Stripe's message. Voided invoices are voided
in Stripe. Every request names the Stripe API version we are written for, STRIPE_API_VERSION.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import stripe
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from stripe.params import CustomerCreateParams, InvoiceCreateParams

from billing.customers.models import Customer
from billing.db import table_of
from billing.invoicing.models import Invoice, InvoiceLine
from billing.observability.metrics import record_sync
from billing.stripe_sync.amounts import StripeAmountError, to_stripe_amount
from billing.stripe_sync.calls import RecordingClient, forget
from billing.stripe_sync.credit_notes import CreditNoteReport, sync_credit_notes
from billing.stripe_sync.models import InvoiceSync, StripeCustomer, SyncStatus
from billing.stripe_sync.retry import describe, failed_try
from billing.stripe_sync.retry import key as _key
from billing.stripe_sync.retry import meta as _meta
from billing.stripe_sync.retry import transient as _transient

logger = logging.getLogger(__name__)
# The Stripe API version every request names (the Stripe-Version header): the one the
# installed SDK's types describe (https://docs.stripe.com/api/versioning). Upgrading the SDK
# to another version is a change of its own: tests/stripe_sync/test_sync.py fails until this
# line is changed with it, after reading Stripe's changelog.
STRIPE_API_VERSION = "2026-10-28.endive"

_INVOICES = table_of(Invoice)
_LINES = table_of(InvoiceLine)
_SYNC = table_of(InvoiceSync)
_CUSTOMERS = table_of(StripeCustomer)
_OUR_CUSTOMERS = table_of(Customer)


def make_client(api_key: str, api_base: str | None) -> stripe.StripeClient:
    """The official SDK's client, pinned to STRIPE_API_VERSION; `api_base` points it elsewhere
    (a local Stripe stand-in)."""
    addresses: Any = {"api": api_base} if api_base else None
    # NOTE: retries are ours (backoff across runs); the SDK's own would hide failures.
    return stripe.StripeClient(
        api_key,
        base_addresses=addresses,
        max_network_retries=0,
        stripe_version=STRIPE_API_VERSION,
        http_client=RecordingClient(),  # names the failing call on the row (calls.py)
    )


@dataclass(frozen=True, slots=True)
class Collection:
    """How Stripe collects our invoices (settings: BILLING_STRIPE_COLLECTION_METHOD and
    BILLING_STRIPE_DAYS_UNTIL_DUE; docs/stripe.md, "Collection"): `send_invoice` emails the
    invoice, payable within `days_until_due` days; `charge_automatically` has Stripe charge
    the customer's default payment method (auto-advance on)."""

    method: Literal["send_invoice", "charge_automatically"] = "send_invoice"
    days_until_due: int = 30


@dataclass
class SyncReport:
    synced: int = 0
    retrying: int = 0
    failed: int = 0
    mismatched: int = 0
    voided: int = 0
    credit_notes: CreditNoteReport = field(default_factory=CreditNoteReport)

    def __str__(self) -> str:
        return (
            f"{self.synced} synced, {self.retrying} to retry, {self.failed} failed, "
            f"{self.mismatched} mismatched, {self.voided} voided; credit notes: "
            f"{self.credit_notes}"
        )


class Mismatch(Exception):
    """Stripe's total or amount due differs from our amount due (the Stripe invoice was
    deleted as a draft, or voided once open: nothing is left payable)."""


def _enqueue(engine: Engine, now: dt.datetime) -> None:
    """Every finalized invoice with an amount due gets a pending sync row, once."""
    with engine.begin() as connection:
        known = select(_SYNC.c.invoice_id)
        # NOTE: amounts are compared in Python: on SQLite they are stored as exact text.
        new = connection.execute(
            select(_INVOICES.c.id, _INVOICES.c.customer_id, _INVOICES.c.amount_due)
            .where(_INVOICES.c.status == "finalized")
            .where(_INVOICES.c.id.not_in(known))
        )
        rows = [
            {
                "customer_id": row.customer_id,
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


def _customer_id(
    client: stripe.StripeClient, engine: Engine, customer: str, attempt: int = 0
) -> str:
    with engine.begin() as connection:
        found = connection.execute(
            select(_CUSTOMERS.c.stripe_id).where(_CUSTOMERS.c.customer_id == customer)
        ).scalar()
        ours = connection.execute(
            select(_OUR_CUSTOMERS.c.name, _OUR_CUSTOMERS.c.email).where(
                _OUR_CUSTOMERS.c.id == customer
            )
        ).one()
    if found:
        return str(found)
    # NOTE: a run that died after Stripe created the customer left no mapping: look for our
    # id first (search lags by seconds at most; the idempotency key covers a day).
    query = f"metadata['billing_customer_id']:'{customer}'"
    existing = client.v1.customers.search(params={"query": query}).data
    if existing:
        _remember(engine, customer, existing[0].id)
        return str(existing[0].id)
    params: CustomerCreateParams = {
        "name": ours.name,
        "metadata": {"billing_customer_id": customer},
    }
    if ours.email:
        params["email"] = ours.email  # where Stripe sends the invoice
    created = client.v1.customers.create(
        params=params, options={"idempotency_key": _key(f"billing-customer-{customer}", attempt)}
    )
    _remember(engine, customer, created.id)
    return str(created.id)


def _remember(engine: Engine, customer: str, stripe_id: str) -> None:
    """Record the mapping; if another process recorded it first, theirs stands (both found
    the same Stripe customer by metadata, or this one is an orphan nobody will use)."""
    with engine.begin() as connection:
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        connection.execute(
            dialect.insert(_CUSTOMERS)
            .values(customer_id=customer, stripe_id=stripe_id)
            .on_conflict_do_nothing(index_elements=["customer_id"])
        )


def _find_invoice(client: stripe.StripeClient, stripe_customer: str, invoice_id: str) -> Any:
    """The customer's Stripe invoice carrying our id, not voided (a voided one was a mismatch:
    the next try makes a new one); deleted drafts are gone from Stripe's list."""
    for found in client.v1.invoices.list(
        params={"customer": stripe_customer, "limit": 100}
    ).auto_paging_iter():
        if _meta(found, "billing_invoice_id") == invoice_id and found.status != "void":
            return found
    return None


def _check(
    client: stripe.StripeClient,
    found: Any,
    expected: int,
    currency: str,
    invoice_id: str,
    attempt: int,
) -> None:
    """Stripe's `total` and `amount_due` must both equal our amount due (`expected`, in
    Stripe's units); otherwise the Stripe invoice is deleted (a draft) or voided (open), so
    nothing differing is ever payable, and Mismatch says both figures."""
    if found.total == expected and found.amount_due == expected:
        return
    if found.status == "draft":
        client.v1.invoices.delete(found.id)
        done = "the draft was deleted"
    elif found.status == "open":
        client.v1.invoices.void_invoice(
            found.id, options={"idempotency_key": _key(f"billing-void-{found.id}", attempt)}
        )
        done = "the open invoice was voided"
    else:
        done = f"it is {found.status}"
    raise Mismatch(
        f"Stripe's {found.status} invoice {found.id} for {invoice_id} totals {found.total}, "
        f"our amount due is {expected}; Stripe's amount due is {found.amount_due} ({currency} "
        f"in Stripe's units): {done}"
    )


def push(
    client: stripe.StripeClient,
    engine: Engine,
    invoice: Any,
    lines: list[Any],
    collection: Collection | None = None,
    attempt: int = 0,
) -> str:
    """Create (or find), check, finalize and send the Stripe invoice; return its id. Raises
    Mismatch, and StripeAmountError (before any call to Stripe) for an amount Stripe cannot
    carry. `attempt` (how many tries went before) makes every idempotency key of this try
    new (`_key`): a key Stripe answered with a 500, or whose draft a mismatch deleted, would
    replay that answer for 24 hours."""
    how = collection or Collection()
    currency = invoice.currency.lower()
    # Stripe's integers (billing/stripe_sync/amounts.py), all converted before Stripe is called
    amounts = {line.position: to_stripe_amount(line.amount, invoice.currency) for line in lines}
    expected = to_stripe_amount(invoice.amount_due, invoice.currency)
    stripe_customer = _customer_id(client, engine, invoice.customer_id, attempt)
    found = _find_invoice(client, stripe_customer, invoice.id)
    if found is None:
        draft: InvoiceCreateParams = {
            "customer": stripe_customer,
            "currency": currency,
            "collection_method": how.method,
            "auto_advance": False,  # nothing happens to it before it is checked
            "pending_invoice_items_behavior": "exclude",
            "metadata": {"billing_invoice_id": invoice.id},
        }
        if how.method == "send_invoice":
            draft["days_until_due"] = how.days_until_due
        key = _key(f"billing-invoice-{invoice.id}", attempt)
        found = client.v1.invoices.create(params=draft, options={"idempotency_key": key})
    if found.status == "draft":
        present = {
            _meta(item, "billing_line")
            for item in client.v1.invoice_items.list(
                params={"invoice": found.id, "limit": 100}
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
                options={
                    "idempotency_key": _key(f"billing-line-{found.id}-{line.position}", attempt)
                },
            )
        found = client.v1.invoices.retrieve(found.id)  # the draft's totals, items included
        _check(client, found, expected, invoice.currency, invoice.id, attempt)
        charge = found.collection_method == "charge_automatically"
        found = client.v1.invoices.finalize_invoice(
            found.id,
            params={"auto_advance": charge},  # on: Stripe charges and retries by itself
            options={"idempotency_key": _key(f"billing-finalize-{found.id}", attempt)},
        )
    _check(client, found, expected, invoice.currency, invoice.id, attempt)
    if found.status == "open" and found.collection_method == "send_invoice":
        client.v1.invoices.send_invoice(
            found.id, options={"idempotency_key": _key(f"billing-send-{found.id}", attempt)}
        )
    return str(found.id)


def _mark(engine: Engine, invoice_id: str, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(update(_SYNC).where(_SYNC.c.invoice_id == invoice_id).values(**values))


def retry_now(engine: Engine, invoice_id: str, now: dt.datetime) -> bool:
    """Put a failed or waiting invoice first in line for the next sync run; False when it is
    in a state that is not retried (synced, paid, voided) or unknown."""
    return _retry(engine, invoice_id, now) > 0


def retry_all(engine: Engine, now: dt.datetime) -> int:
    """Put every failed, mismatched or waiting invoice in line for the next sync run, due
    now; how many."""
    return _retry(engine, None, now)


def _retry(engine: Engine, invoice_id: str | None, now: dt.datetime) -> int:
    with engine.begin() as connection:
        chosen = update(_SYNC)
        if invoice_id is not None:
            chosen = chosen.where(_SYNC.c.invoice_id == invoice_id)
        changed = connection.execute(
            chosen.where(
                _SYNC.c.status.in_(
                    (SyncStatus.PENDING, SyncStatus.SYNC_FAILED, SyncStatus.MISMATCH)
                )
            ).values(status=SyncStatus.PENDING, next_attempt_at=now, updated_at=now)
        )
        return int(changed.rowcount)


def sync_due(
    engine: Engine,
    client: stripe.StripeClient,
    now: dt.datetime | None = None,
    collection: Collection | None = None,
) -> SyncReport:
    """Void in Stripe what we voided, then push every invoice due for sync (collected as
    `collection` says: by default sent, payable within 30 days), then the credit notes of
    invoices in Stripe (billing/stripe_sync/credit_notes.py).

    NOTE: voids go first, and an invoice that replaces a voided one waits until Stripe has
    voided the one it replaces, so a customer is never asked to pay both (docs/stripe.md,
    "Voids"). A void Stripe refuses (the invoice was paid there meanwhile) is `void_refused`,
    shown to finance and never retried, and its replacement is `held`, never sent.
    """
    at = now or dt.datetime.now(dt.UTC)
    _enqueue(engine, at)
    report = SyncReport()
    _void_in_stripe(engine, client, at, report)
    _hold_replacements_of_paid(engine, at, report)
    with engine.begin() as connection:
        awaiting_void = (
            select(_SYNC.c.invoice_id)
            .join(_INVOICES, _INVOICES.c.id == _SYNC.c.invoice_id)
            .where(_INVOICES.c.status == "void")
            .where(_SYNC.c.status.in_((SyncStatus.SYNCED, SyncStatus.PAYMENT_FAILED)))
        )
        due = list(
            connection.execute(
                select(_SYNC, _INVOICES)
                .join(_INVOICES, _INVOICES.c.id == _SYNC.c.invoice_id)
                .where(_SYNC.c.status == SyncStatus.PENDING, _SYNC.c.next_attempt_at <= at)
                .where(_INVOICES.c.status == "finalized")
                .where(_INVOICES.c.replaces.is_(None) | _INVOICES.c.replaces.not_in(awaiting_void))
                .order_by(_SYNC.c.next_attempt_at)
            )
        )
    for row in due:
        with engine.begin() as connection:
            lines = list(
                connection.execute(
                    select(_LINES).where(_LINES.c.invoice_id == row.id).order_by(_LINES.c.position)
                )
            )
        forget()
        try:
            stripe_id = push(client, engine, row, lines, collection, row.attempts)
        except (Mismatch, StripeAmountError) as error:
            logger.error("stripe sync of %s: %s", row.id, error)
            final = SyncStatus.MISMATCH if isinstance(error, Mismatch) else SyncStatus.SYNC_FAILED
            counter, values = failed_try(error, row.attempts + 1, at, final)
        except stripe.StripeError as error:
            counter, values = failed_try(error, row.attempts + 1, at)
        else:
            counter = "synced"
            values = {
                "status": SyncStatus.SYNCED,
                "stripe_invoice_id": stripe_id,
                "attempts": row.attempts + 1,
                "last_error": None,
            }
        _mark(engine, row.id, updated_at=at, **values)
        setattr(report, counter, getattr(report, counter) + 1)
    # after the invoices: a note waits until its invoice is in Stripe (docs/stripe.md)
    report.credit_notes = sync_credit_notes(engine, client, at)
    record_sync(report)
    return report


_HELD_REASON = (
    "re-issues an invoice Stripe refused to void (the customer paid it there): not sent, so "
    'the period is not collected twice; settle it by hand (docs/stripe.md, "Voids")'
)


def _hold_replacements_of_paid(engine: Engine, at: dt.datetime, report: SyncReport) -> None:
    """Hold, never send, each invoice that re-issues a `void_refused` one: the customer paid
    the period in Stripe on the invoice it replaces, and a second invoice in Stripe would ask
    them to pay it again (docs/stripe.md, "Voids"). Each is `held`, logged once."""
    paid_elsewhere = select(_SYNC.c.invoice_id).where(_SYNC.c.status == SyncStatus.VOID_REFUSED)
    with engine.begin() as connection:
        held = connection.execute(
            update(_SYNC)
            .where(_SYNC.c.status == SyncStatus.PENDING)
            .where(
                _SYNC.c.invoice_id.in_(
                    select(_INVOICES.c.id).where(_INVOICES.c.replaces.in_(paid_elsewhere))
                )
            )
            .values(status=SyncStatus.HELD, last_error=_HELD_REASON, updated_at=at)
            .returning(_SYNC.c.invoice_id)
        ).scalars()
        for invoice_id in held:
            logger.error("stripe sync of %s held: %s", invoice_id, _HELD_REASON)
            report.failed += 1


def _void_in_stripe(
    engine: Engine, client: stripe.StripeClient, at: dt.datetime, report: SyncReport
) -> None:
    """Void in Stripe the invoices we voided: those never sent are simply `voided`; a refusal
    by Stripe (not a transient failure) is `void_refused`, logged once."""
    with engine.begin() as connection:  # voided before it ever reached Stripe
        never_sent = connection.execute(
            update(_SYNC)
            .where(_SYNC.c.status == SyncStatus.PENDING)
            .where(
                _SYNC.c.invoice_id.in_(select(_INVOICES.c.id).where(_INVOICES.c.status == "void"))
            )
            .values(status=SyncStatus.VOIDED, updated_at=at)
        )
        report.voided += never_sent.rowcount
        to_void = list(
            connection.execute(
                select(_SYNC.c.invoice_id, _SYNC.c.stripe_invoice_id, _SYNC.c.attempts)
                .join(_INVOICES, _INVOICES.c.id == _SYNC.c.invoice_id)
                .where(_INVOICES.c.status == "void")
                .where(_SYNC.c.status.in_((SyncStatus.SYNCED, SyncStatus.PAYMENT_FAILED)))
            )
        )
    for row in to_void:
        try:
            client.v1.invoices.void_invoice(
                row.stripe_invoice_id,
                options={
                    "idempotency_key": _key(f"billing-void-{row.stripe_invoice_id}", row.attempts)
                },
            )
        except stripe.StripeError as error:
            message = describe(error)
            if _transient(error):
                logger.warning("voiding %s in Stripe, will retry: %s", row.invoice_id, message)
                _mark(engine, row.invoice_id, attempts=row.attempts + 1, updated_at=at)
            else:
                logger.error("Stripe refused to void %s: %s", row.invoice_id, message)
                _mark(
                    engine,
                    row.invoice_id,
                    status=SyncStatus.VOID_REFUSED,
                    attempts=row.attempts + 1,
                    last_error=message[:500],
                    updated_at=at,
                )
                report.failed += 1
            continue
        _mark(engine, row.invoice_id, status=SyncStatus.VOIDED, updated_at=at)
        report.voided += 1
