"""Usage alerts and invoice notices reach the customer's billing email through a real SMTP
server (aiosmtpd), on SQLite and PostgreSQL: the right subject, figures and currency, never
without a billing email, retried with backoff while the server is away, and sent once."""

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select, update
from sqlmodel import Session

from billing.corrections.void import void
from billing.customers.models import Customer
from billing.db import table_of
from billing.email import outbox
from billing.email.models import EmailOutbox
from billing.email.outbox import BACKOFF
from billing.email.smtp import send
from billing.invoicing.service import get_invoice, list_invoices
from billing.metering import service as metering_service
from billing.money import display_amount
from billing.notices.sending import composer, send_due
from billing.pipeline import close_due
from tests.caps.helpers import set_cap
from tests.conftest import REPO, free_port
from tests.email.conftest import (
    FROM,
    NOW,
    Mailbox,
    add_customer,
    html_of,
    outbox_rows,
    smtp_settings,
    text_of,
)
from tests.metering.helpers import event, ingest

PORTAL = "https://billing.acme.example"
OCT_20 = "2026-10-20T10:00:00Z"
CLOSED_AT = dt.datetime(2026, 11, 1, 1, tzinfo=dt.UTC)  # October closes after the grace


def over_eighty_percent(engine, catalog, email="ops@acme.example"):
    """acme, capped at 10.00 USD of product analytics, sends 1,160,000 events (8.00 USD)."""
    with Session(engine) as session:
        add_customer(session, email=email)
        set_cap(session.connection(), catalog, "acme", "product_analytics", Decimal("10"), NOW)
        session.commit()
        ingest(session, catalog, [event("e1", 1_160_000, customer="acme")], now=NOW)


def october_invoice(engine, catalog, email="ops@acme.example"):
    """acme's October (1,200,000 analytics events, 10,000 replays: 35.00 USD) closed; no
    alert on the way (the free-allowance alert is off)."""
    with Session(engine) as session:
        add_customer(session, email=email)
        session.connection().execute(update(table_of(Customer)).values(alert_free_allowance=False))
        session.commit()
        events = [
            event("e1", 1_200_000, customer="acme", at=OCT_20),
            event("e2", 10_000, "session_replay", customer="acme", at=OCT_20),
        ]
        ingest(session, catalog, events, now=dt.datetime(2026, 10, 31, tzinfo=dt.UTC))
    assert close_due(engine, catalog, CLOSED_AT, dt.timedelta(hours=1)).invoices == 1
    with engine.connect() as connection:
        [summary] = list_invoices(connection, "acme")
        return get_invoice(connection, summary.id, due_days=30)


def documented_invoice_email():
    """The example of docs/email.md, "What is sent"."""
    doc = (REPO / "docs" / "email.md").read_text()
    after = doc.split("<!-- invoice-example:", 1)[1]
    return after.split("```text\n", 1)[1].split("```", 1)[0]


def test_an_alert_over_a_cap_emails_the_billing_contact(engine, catalog, mailbox):
    over_eighty_percent(engine, catalog)
    report = send_due(engine, mailbox.settings(public_url=PORTAL), NOW)
    assert str(report) == "2 sent, 0 to retry, 0 failed, 0 skipped"
    by_subject = {message["Subject"]: message for message in mailbox.received}
    subject = (
        "[Acme Analytics] Product analytics: 80% of the spend cap of 10.00 USD is used (8.00 USD)"
    )
    assert sorted(by_subject) == [
        subject,
        "[Acme Analytics] Product analytics: the free allowance of 1,000,000 units is used up",
    ]
    message = by_subject[subject]
    assert (message["From"], message["To"]) == (FROM, "ops@acme.example")
    assert message["Auto-Submitted"] == "auto-generated"
    text = text_of(message)
    assert "80% of the spend cap of 10.00 USD is used (8.00 USD)." in text
    assert "Billing period starting 2026-11-01; alert raised 2026-11-24 12:00 UTC." in text
    assert f"{PORTAL}/portal/caps" in text
    assert "10.00 USD" in html_of(message)
    assert ("billing@acme.example", ["ops@acme.example"]) in mailbox.envelopes
    rows = outbox_rows(engine)
    assert [(r.kind, r.status, r.attempts, r.to_address) for r in rows] == [
        ("usage_alert", "sent", 1, "ops@acme.example"),
        ("usage_alert", "sent", 1, "ops@acme.example"),
    ]
    assert {r.subject for r in rows} == set(by_subject)
    assert send_due(engine, mailbox.settings(), NOW + dt.timedelta(hours=1)).sent == 0


def test_a_closed_period_emails_its_invoice_with_the_apis_figures(engine, catalog, mailbox):
    invoice = october_invoice(engine, catalog)
    assert (invoice.number, invoice.amount_due, invoice.currency) == ("INV-000001", "35.00", "USD")
    report = send_due(engine, mailbox.settings(public_url=PORTAL), CLOSED_AT)
    assert report.sent == 1
    [message] = mailbox.received
    assert message["Subject"] == "Invoice INV-000001 from Acme Billing — 35.00 USD due 2026-12-01"
    assert message["To"] == "ops@acme.example"
    text = text_of(message)
    assert "invoice INV-000001 on 2026-11-01, for 2026-10-01 to 2026-10-31." in text
    for line in invoice.lines:  # every line of the API's invoice, its amount as people read it
        shown = display_amount(Decimal(line.amount), "USD")
        assert f"{shown}  {line.description}" in text
    assert "  10.00 USD  Product analytics: 1,200,000 events" in text
    assert "  35.00 USD  Amount due" in text
    assert "Payment is due by 2026-12-01." in text
    assert f"{PORTAL}/portal/invoices/{invoice.id}" in text
    assert "<strong>35.00 USD</strong>" in html_of(message)
    example = f"Subject: {message['Subject']}\n\n{text}".replace(invoice.id, "inv_0123456789abcdef")
    assert example == documented_invoice_email()


def test_the_due_date_follows_the_collection_method_and_the_portal_needs_a_public_url(
    engine, catalog, mailbox
):
    october_invoice(engine, catalog)
    settings = mailbox.settings(stripe_collection_method="charge_automatically")
    send_due(engine, settings, CLOSED_AT)
    [message] = mailbox.received
    assert message["Subject"].endswith("35.00 USD due 2026-11-01")
    assert "/portal/" not in text_of(message)


def test_no_billing_email_no_email_and_the_outbox_says_why(engine, catalog, mailbox):
    over_eighty_percent(engine, catalog, email=None)
    assert send_due(engine, mailbox.settings(), NOW).skipped == 2
    assert mailbox.received == []
    rows = outbox_rows(engine)
    assert {(r.status, r.last_error, r.to_address, r.attempts) for r in rows} == {
        ("skipped", "no billing email", None, 0)
    }


def test_an_invoice_voided_before_its_notice_is_not_announced(engine, catalog, mailbox):
    invoice = october_invoice(engine, catalog)
    with engine.begin() as connection:
        void(
            connection,
            catalog,
            invoice.id,
            reason="wrong customer",
            actor="test",
            now=CLOSED_AT,
            reissue=False,
        )
    assert send_due(engine, mailbox.settings(), CLOSED_AT).skipped == 1
    assert mailbox.received == []
    [row] = [r for r in outbox_rows(engine) if r.kind == "invoice"]
    assert row.last_error == "invoice void before its notice was sent"


def test_an_email_is_written_in_the_transaction_of_its_alert(engine, catalog):
    with Session(engine) as session:
        add_customer(session)
        set_cap(session.connection(), catalog, "acme", "product_analytics", Decimal("10"), NOW)
        session.commit()
        metering_service.ingest(
            connection=session.connection(),
            catalog=catalog,
            raw_events=[event("e1", 1_160_000, customer="acme")],
            now=NOW,
        )
        assert len(outbox_rows_in(session)) == 2  # seen inside the transaction
        session.rollback()
    assert outbox_rows(engine) == []


def outbox_rows_in(session):
    return list(session.connection().execute(select(table_of(EmailOutbox))))


def test_a_server_away_is_tried_again_with_backoff_and_the_email_goes_once(engine, catalog):
    port = free_port()  # nothing listens there yet
    over_eighty_percent(engine, catalog)
    settings = smtp_settings(port, smtp_timeout_seconds=2)
    first = send_due(engine, settings, NOW)
    assert str(first) == "0 sent, 2 to retry, 0 failed, 0 skipped"
    rows = outbox_rows(engine)
    assert {(r.status, r.attempts, r.next_attempt_at) for r in rows} == {
        ("pending", 1, NOW + BACKOFF[0])
    }
    assert all("Connection refused" in r.last_error for r in rows)
    mailbox = Mailbox(port=port)  # the server is back
    try:
        assert send_due(engine, settings, NOW + BACKOFF[0] / 2).sent == 0  # not due yet
        assert str(send_due(engine, settings, NOW + BACKOFF[0])) == (
            "2 sent, 0 to retry, 0 failed, 0 skipped"
        )
        assert send_due(engine, settings, NOW + dt.timedelta(days=1)).sent == 0
        assert len(mailbox.received) == 2
        assert {(r.status, r.attempts, r.last_error) for r in outbox_rows(engine)} == {
            ("sent", 2, None)
        }
    finally:
        mailbox.close()


def test_after_the_last_attempt_an_email_fails_for_good(engine, catalog):
    over_eighty_percent(engine, catalog)
    settings = smtp_settings(free_port(), smtp_timeout_seconds=2)
    at = NOW
    for _ in range(outbox.MAX_ATTEMPTS):
        report = send_due(engine, settings, at)
        at += dt.timedelta(hours=8)
    assert (report.retrying, report.failed) == (0, 2)
    assert {(r.status, r.attempts) for r in outbox_rows(engine)} == {
        ("failed", outbox.MAX_ATTEMPTS)
    }


@pytest.mark.parametrize(
    ("answer", "status"),
    [("550 5.1.1 no such mailbox", "failed"), ("450 4.2.1 mailbox busy", "pending")],
)
def test_a_recipient_refused_for_good_is_not_tried_again(engine, catalog, mailbox, answer, status):
    over_eighty_percent(engine, catalog)
    mailbox.refuse = answer  # 5xx: for good; 4xx: for now
    send_due(engine, mailbox.settings(), NOW)
    assert {(r.status, r.attempts, r.last_error) for r in outbox_rows(engine)} == {
        (status, 1, f"recipient refused: {answer}")
    }
    assert mailbox.received == []


def test_a_crash_between_sending_and_recording_sends_again_with_the_same_message_id(
    engine, catalog, mailbox
):
    """At least once: the server took the message, the run died before recording it; the
    row's lease ends and the next run sends it again, under the same Message-ID."""
    over_eighty_percent(engine, catalog)
    settings = mailbox.settings()
    lease = dt.timedelta(minutes=5)
    compose = composer(engine, settings)
    for row in outbox.claim(engine, NOW, lease):  # what send_due does, up to the crash
        composed = compose(row)
        message_id = outbox.message_id(row, settings)
        message = outbox.email_message(composed, settings, message_id=message_id, now=NOW)
        assert send(settings, composed.to, message).delivered
    assert len(mailbox.received) == 2
    assert send_due(engine, settings, NOW + lease / 2).sent == 0  # still leased
    assert send_due(engine, settings, NOW + lease).sent == 2
    assert len(mailbox.received) == 4
    first, again = mailbox.received[:2], mailbox.received[2:]
    assert [m["Message-ID"] for m in first] == [m["Message-ID"] for m in again]
    assert [m["Subject"] for m in first] == [m["Subject"] for m in again]


def test_every_retry_sends_what_was_composed_at_the_first_attempt(engine, catalog):
    port = free_port()
    over_eighty_percent(engine, catalog)
    settings = smtp_settings(port, smtp_timeout_seconds=2)
    send_due(engine, settings, NOW)  # composed, refused
    with engine.begin() as connection:  # the customer moves house meanwhile
        connection.execute(update(table_of(Customer)).values(email="new@acme.example"))
    mailbox = Mailbox(port=port)
    try:
        send_due(engine, settings, NOW + BACKOFF[0])
        assert {m["To"] for m in mailbox.received} == {"ops@acme.example"}
    finally:
        mailbox.close()


def test_an_email_left_pending_a_week_is_not_sent_late(engine, catalog, mailbox):
    over_eighty_percent(engine, catalog)
    report = send_due(engine, mailbox.settings(), NOW + outbox.EXPIRES_AFTER + dt.timedelta(1))
    assert report.skipped == 2
    assert mailbox.received == []
    assert {r.last_error for r in outbox_rows(engine)} == {"expired: not sent within 7 days"}


def test_an_invoice_with_nothing_due_sends_no_notice(engine, catalog):
    with Session(engine) as session:
        add_customer(session)
        events = [event("e1", 1000, customer="acme", at=OCT_20)]  # inside the free allowance
        ingest(session, catalog, events, now=dt.datetime(2026, 10, 31, tzinfo=dt.UTC))
    assert close_due(engine, catalog, CLOSED_AT, dt.timedelta(hours=1)).invoices == 1
    assert [r.kind for r in outbox_rows(engine)] == []


def test_an_address_no_message_can_carry_fails_for_good_without_stopping_the_run(
    engine, catalog, mailbox
):
    over_eighty_percent(engine, catalog, email="ops@acme.example")
    with engine.begin() as connection:  # written past the API's check, which refuses it
        connection.execute(
            update(table_of(Customer)).values(email="ops@acme.example\r\nBcc: all@acme.example")
        )
    report = send_due(engine, mailbox.settings(), NOW)
    assert (report.failed, report.sent) == (2, 0)
    assert {r.last_error.split(":")[0] for r in outbox_rows(engine)} == {"not a valid message"}
    assert mailbox.received == []
