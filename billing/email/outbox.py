"""The email outbox: written in the caller's transaction, sent later by the `send_email` job.

`enqueue` records that a customer is to be told about something (a usage alert, an invoice)
in the transaction that made it, so an email is never lost to a crash and never sent for
work that was rolled back. `send_due` sends what is due, the way alert webhooks are sent
(billing/alerts/delivery.py): each due row is first claimed (its next attempt moved a lease
ahead, in a short transaction of its own), then composed and sent outside any transaction,
then recorded. Two runs at once never send the same row at the same time.

Composing is the caller's (`Compose`: billing/notices renders the API's own shapes), and
happens just before the first attempt: the address is the customer's billing email then,
and the text is kept, so every retry sends the very same message. A row that cannot be
composed for a good reason (no billing email, an invoice voided meanwhile) is `skipped`,
with the reason.

Delivery is at least once: a run that dies after the server took a message but before
recording it leaves the row to be sent again when its lease ends. Every attempt of a row
carries the same Message-ID, so mail clients that deduplicate by it show one message.
A refused send is tried again after BACKOFF[attempts - 1]; after the last attempt, or at
once when the server refuses the address or the message for good (5xx), the row is
`failed` with the last error. A row still pending EXPIRES_AFTER its creation (email was
off, or the server away for a week) is `skipped` rather than sent late.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from billing.db import insert_many, table_of
from billing.email.models import EmailOutbox
from billing.email.smtp import Outcome, envelope_sender, send
from billing.settings import Settings

logger = logging.getLogger(__name__)
BACKOFF = tuple(
    dt.timedelta(minutes=m) for m in (1, 2, 5, 10, 30, 60, 120, 240, 480)
)  # then give up: 10 attempts over about 16 hours
MAX_ATTEMPTS = len(BACKOFF) + 1
EXPIRES_AFTER = dt.timedelta(days=7)
BATCH = 20
NO_BILLING_EMAIL = "no billing email"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class EmailKind(StrEnum):
    """What an email is about; its `reference` names the one it is about."""

    USAGE_ALERT = "usage_alert"  # reference: the alert's id
    INVOICE = "invoice"  # reference: the invoice's id
    # reference: "<endpoint id>@<when it was disabled, epoch seconds>" (it may be disabled
    # again after being enabled); to its customer, or to the operators with no customer
    ENDPOINT_DISABLED = "endpoint_disabled"


class EmailStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # given up after the last attempt, or refused for good
    SKIPPED = "skipped"  # not to be sent: no billing email, voided meanwhile, expired


_OUTBOX = table_of(EmailOutbox)
# NOTE: built once: a period close enqueues one row per invoice.
_ENQUEUE = insert(_OUTBOX)


def enqueue(
    connection: Connection,
    *,
    customer_id: str | None,
    kind: EmailKind,
    reference: str,
    now: dt.datetime,
) -> None:
    """Record, in the caller's transaction, that `customer_id` (None: the operators, at
    BILLING_ADMIN_EMAIL) is to be emailed about `reference`; it is due at `now`. At most
    once per (kind, reference)."""
    connection.execute(_ENQUEUE, _due(customer_id, kind, reference, now))


def _due(
    customer_id: str | None, kind: EmailKind, reference: str, now: dt.datetime
) -> dict[str, Any]:
    """The outbox row of an email to send, due at `now`."""
    return {
        "customer_id": customer_id,
        "kind": kind.value,
        "reference": reference,
        "status": EmailStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def enqueue_many(
    connection: Connection,
    emails: Sequence[tuple[str | None, EmailKind, str]],
    *,
    now: dt.datetime,
) -> None:
    """`enqueue` for many emails, (customer, kind, reference) each, in one statement (a
    period close queues one per invoice owing money: billing/invoicing/issue.py)."""
    insert_many(connection, _OUTBOX, [_due(*email, now) for email in emails])


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingEmail:
    """A claimed row: what it is about, and what was composed for it, if anything yet."""

    id: int
    customer_id: str | None
    kind: str
    reference: str
    to_address: str | None
    subject: str | None
    body_text: str | None
    body_html: str | None
    attempts: int
    created_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Composed:
    """An email ready to send: to whom, its subject, its plain text and (optionally) an HTML
    alternative."""

    to: str
    subject: str
    text: str
    html: str | None = None


@dataclass(frozen=True, slots=True)
class NotSent:
    """Why a row is not to be sent at all (recorded as `skipped` with this reason)."""

    reason: str


Compose = Callable[[PendingEmail], Composed | NotSent]


@dataclass
class SendReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0

    def __str__(self) -> str:
        return (
            f"{self.sent} sent, {self.retrying} to retry, {self.failed} failed, "
            f"{self.skipped} skipped"
        )


def message_id(row: PendingEmail, settings: Settings) -> str:
    """The Message-ID every attempt of a row carries: made of the row's id and creation
    instant, at the domain of BILLING_SMTP_FROM."""
    domain = envelope_sender(settings).rpartition("@")[2] or "localhost"
    stamp = (row.created_at - EPOCH) // dt.timedelta(microseconds=1)
    return f"<billing-email-{row.id}-{stamp}@{domain}>"


_POLICY = email.policy.default.clone(max_line_length=998)


def email_message(
    composed: Composed, settings: Settings, *, message_id: str, now: dt.datetime
) -> EmailMessage:
    """The message to hand over: From BILLING_SMTP_FROM, marked automatic (RFC 3834), plain
    text with the HTML alternative when there is one."""
    # NOTE: headers are not folded below RFC 5322's 998 characters: CPython folds some
    # subjects of 70-odd characters onto a line of their own, and readers then show them
    # with a leading space (a subject with a URL or a long word in it).
    message = EmailMessage(policy=_POLICY)
    message["From"] = settings.smtp_from or ""
    message["To"] = composed.to
    message["Subject"] = composed.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(composed.text)
    if composed.html is not None:
        message.add_alternative(composed.html, subtype="html")
    return message


def _pending(row: Any) -> PendingEmail:
    return PendingEmail(
        id=row.id,
        customer_id=row.customer_id,
        kind=row.kind,
        reference=row.reference,
        to_address=row.to_address,
        subject=row.subject,
        body_text=row.body_text,
        body_html=row.body_html,
        attempts=row.attempts,
        created_at=row.created_at,
    )


def claim(engine: Engine, now: dt.datetime, lease: dt.timedelta) -> list[PendingEmail]:
    """Take up to BATCH rows due at `now`, each moved `lease` ahead so no other run takes
    it meanwhile (one short transaction)."""
    query = (
        select(_OUTBOX)
        .where(_OUTBOX.c.status == EmailStatus.PENDING, _OUTBOX.c.next_attempt_at <= now)
        .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
        .limit(BATCH)
    )
    claimed = []
    with engine.begin() as connection:
        for row in connection.execute(query).all():
            moved = connection.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id == row.id, _OUTBOX.c.next_attempt_at == row.next_attempt_at)
                .where(_OUTBOX.c.status == EmailStatus.PENDING)
                .values(next_attempt_at=now + lease)
            )
            if moved.rowcount == 1:
                claimed.append(_pending(row))
    return claimed


def stored(row: PendingEmail) -> Composed | None:
    """What was composed for the row at its first attempt (None: not composed yet)."""
    if row.to_address is None or row.subject is None or row.body_text is None:
        return None
    return Composed(to=row.to_address, subject=row.subject, text=row.body_text, html=row.body_html)


def record(
    engine: Engine,
    row: PendingEmail,
    outcome: Outcome | NotSent,
    composed: Composed | None,
    now: dt.datetime,
) -> EmailStatus:
    """Write what became of an attempt (and what was composed for it); the row's status."""
    attempts = row.attempts
    values: dict[str, Any] = {}
    if composed is not None:
        values.update(
            to_address=composed.to,
            subject=composed.subject[:500],
            body_text=composed.text,
            body_html=composed.html,
        )
    if isinstance(outcome, NotSent):
        status, values["last_error"] = EmailStatus.SKIPPED, outcome.reason[:500]
    else:
        attempts += 1
        if outcome.delivered:
            status, values["sent_at"], values["last_error"] = EmailStatus.SENT, now, None
        elif outcome.permanent or attempts >= MAX_ATTEMPTS:
            status, values["last_error"] = EmailStatus.FAILED, (outcome.detail or "")[:500]
        else:
            status = EmailStatus.PENDING
            values["last_error"] = (outcome.detail or "")[:500]
            values["next_attempt_at"] = now + BACKOFF[attempts - 1]
    with engine.begin() as connection:
        connection.execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.id == row.id)
            .values(status=status, attempts=attempts, **values)
        )
    return status


def _attempt(
    row: PendingEmail, settings: Settings, compose: Compose, now: dt.datetime
) -> tuple[Outcome | NotSent, Composed | None]:
    """Compose the row if it is not yet, and send it: the outcome, and what was composed
    now (None when it was composed at an earlier attempt, or could not be)."""
    if now - row.created_at > EXPIRES_AFTER:
        return NotSent(f"expired: not sent within {EXPIRES_AFTER.days} days"), None
    made = None
    ready = stored(row)
    if ready is None:
        try:
            result = compose(row)
        except Exception as error:  # a bug or the database away: try again later
            logger.warning("email %s: could not be composed", row.id, exc_info=True)
            return Outcome(False, f"could not compose: {type(error).__name__}: {error}"), None
        if isinstance(result, NotSent):
            return result, None
        made = ready = result
    try:
        message = email_message(ready, settings, message_id=message_id(row, settings), now=now)
    except (ValueError, TypeError) as error:  # a header no message can carry: never sendable
        return Outcome(False, f"not a valid message: {error}", permanent=True), made
    return send(settings, ready.to, message), made


def send_due(
    engine: Engine,
    settings: Settings,
    compose: Compose,
    *,
    now: dt.datetime | None = None,
) -> SendReport:
    """Send every email due at `now` (default: the clock), composing each with `compose`
    at its first attempt; report what became of them."""
    if not settings.smtp_host:
        raise RuntimeError(f"Email is {settings.email_state}")
    report = SendReport()
    # NOTE: a batch is sent one email after another: its lease outlasts a batch of sends
    # that each take the whole timeout.
    lease = dt.timedelta(seconds=BATCH * settings.smtp_timeout_seconds + 60)
    while True:
        at = now or dt.datetime.now(dt.UTC)
        claimed = claim(engine, at, lease)
        if not claimed:
            return report
        for row in claimed:
            outcome, composed = _attempt(row, settings, compose, at)
            status = record(engine, row, outcome, composed, at)
            if status is EmailStatus.SENT:
                report.sent += 1
            elif status is EmailStatus.SKIPPED:
                report.skipped += 1
            elif status is EmailStatus.FAILED:
                report.failed += 1
                logger.warning("email %s failed for good: %s", row.id, _detail(outcome))
            else:
                report.retrying += 1
        if now is not None and len(claimed) < BATCH:
            return report


def _detail(outcome: Outcome | NotSent) -> str | None:
    return outcome.reason if isinstance(outcome, NotSent) else outcome.detail
