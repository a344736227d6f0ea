"""The SMTP sender against real servers: STARTTLS with a login, TLS from the start, plain;
what it says when the server is unsafe, unknown, silent or refuses; the settings that
configure it, and how the service says whether email is on."""

import logging
import re
import socket
import threading
import time
from email.message import EmailMessage

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from pydantic import ValidationError

from billing.email.outbox import Composed, email_message
from billing.email.smtp import send
from billing.jobs import registry, scheduler
from billing.jobs.context import JobContext
from billing.settings import Settings
from tests.conftest import REPO, TIERS
from tests.email.conftest import FROM, NOW, PASSWORD, USER, Mailbox, smtp_settings

TO = "ops@acme.example"
# aiosmtpd 1.4 warns about its own attribute when a login succeeds
LOGIN_WARNING = "ignore:Session.login_data is deprecated:DeprecationWarning"


def message(subject="Invoice INV-000001 from Acme Billing — 35.00 USD due 2026-12-01"):
    made = EmailMessage()
    made["From"], made["To"], made["Subject"] = FROM, TO, subject
    made.set_content("Amount due: 35.00 USD")
    return made


@pytest.fixture
def starttls_server(server_tls):
    made = Mailbox(starttls=server_tls, login=True)
    yield made
    made.close()


@pytest.fixture
def tls_server(server_tls):
    made = Mailbox(tls=server_tls)
    yield made
    made.close()


@pytest.mark.filterwarnings(LOGIN_WARNING)
def test_starttls_with_a_login_delivers(starttls_server, trusted):
    settings = starttls_server.settings(
        smtp_security="starttls", smtp_username=USER, smtp_password=PASSWORD
    )
    assert send(settings, TO, message()).delivered
    [received] = starttls_server.received
    assert received["Subject"] == "Invoice INV-000001 from Acme Billing — 35.00 USD due 2026-12-01"
    assert starttls_server.envelopes == [("billing@acme.example", [TO])]


@pytest.mark.filterwarnings(LOGIN_WARNING)
def test_a_wrong_password_is_refused_and_tried_again_later(starttls_server, trusted):
    settings = starttls_server.settings(
        smtp_security="starttls", smtp_username=USER, smtp_password="wrong"
    )
    outcome = send(settings, TO, message())
    assert not outcome.delivered
    assert not outcome.permanent  # the settings can be mended
    assert outcome.detail is not None
    assert outcome.detail.startswith("login refused: 535")
    assert "wrong" not in outcome.detail
    assert starttls_server.received == []


def test_tls_from_the_start_delivers(tls_server, trusted):
    assert send(tls_server.settings(smtp_security="tls"), TO, message()).delivered
    assert len(tls_server.received) == 1


def test_a_certificate_nobody_vouches_for_is_refused(tls_server, starttls_server):
    """Without the test authority trusted (no `trusted`), the default context refuses."""
    for server, security in ((tls_server, "tls"), (starttls_server, "starttls")):
        outcome = send(server.settings(smtp_security=security), TO, message())
        assert not outcome.delivered
        assert outcome.detail is not None
        assert "CERTIFICATE_VERIFY_FAILED" in outcome.detail
    assert tls_server.received == starttls_server.received == []


def test_starttls_asked_of_a_server_without_it_is_not_sent_in_clear(mailbox):
    outcome = send(mailbox.settings(smtp_security="starttls"), TO, message())
    assert not outcome.delivered
    assert outcome.detail == "STARTTLS extension not supported by server."
    assert mailbox.received == []


def test_a_silent_server_is_given_up_at_the_timeout():
    """A server that accepts the connection and never answers holds a send no longer than
    BILLING_SMTP_TIMEOUT_SECONDS."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
    thread.start()
    try:
        settings = smtp_settings(listener.getsockname()[1], smtp_timeout_seconds=1)
        started = time.monotonic()
        outcome = send(settings, TO, message())
        took = time.monotonic() - started
    finally:
        for connection, _ in accepted:
            connection.close()
        listener.close()
    assert (outcome.delivered, outcome.detail) == (False, "no answer within 1 s")
    assert took < 3


def test_a_server_that_drips_its_answer_is_cut_at_the_deadline():
    """Each byte comes in time for the socket's timeout, but the whole greeting would take
    far longer than BILLING_SMTP_TIMEOUT_SECONDS: the watchdog cuts it."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip():
        connection, _ = listener.accept()
        with connection:
            for byte in b"220 " + b"x" * 100:
                if stop.wait(0.2):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        settings = smtp_settings(listener.getsockname()[1], smtp_timeout_seconds=1)
        started = time.monotonic()
        outcome = send(settings, TO, message())
        took = time.monotonic() - started
    finally:
        stop.set()
        listener.close()
    assert (outcome.delivered, outcome.detail) == (False, "no answer within 1 s")
    assert took < 3


# --- settings --------------------------------------------------------------------------


def settings(**values):
    return Settings(tiers_dir=TIERS, database_url="sqlite://", **values)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"smtp_host": "smtp.example.com"}, "BILLING_SMTP_FROM must be set"),
        ({"smtp_host": "smtp.example.com", "smtp_from": "Billing"}, "BILLING_SMTP_FROM must"),
        (
            {"smtp_host": "smtp.example.com", "smtp_from": FROM, "smtp_username": USER},
            "set both BILLING_SMTP_USERNAME and BILLING_SMTP_PASSWORD, or neither",
        ),
        (
            {
                "smtp_host": "smtp.example.com",
                "smtp_from": FROM,
                "smtp_security": "none",
                "smtp_username": USER,
                "smtp_password": PASSWORD,
            },
            "would send BILLING_SMTP_PASSWORD in clear",
        ),
        ({"smtp_security": "ssl"}, "smtp_security"),
        ({"smtp_port": 0}, "smtp_port"),
    ],
)
def test_incomplete_or_unsafe_smtp_settings_stop_the_start(values, problem):
    with pytest.raises(ValidationError, match=re.escape(problem)):
        settings(**values)


def test_the_smtp_settings_and_their_defaults(monkeypatch):
    for name, value in {
        "BILLING_SMTP_HOST": "smtp.example.com",
        "BILLING_SMTP_USERNAME": USER,
        "BILLING_SMTP_PASSWORD": PASSWORD,
        "BILLING_SMTP_FROM": FROM,
    }.items():
        monkeypatch.setenv(name, value)
    read = settings()
    assert (read.smtp_host, read.smtp_port, read.smtp_security) == (
        "smtp.example.com",
        587,
        "starttls",
    )
    assert read.smtp_timeout_seconds == 30
    assert read.smtp_password is not None
    assert read.smtp_password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(read)
    assert PASSWORD not in str(read.model_dump())


def test_without_a_host_email_is_off_and_the_log_and_healthz_say_so(caplog, client):
    caplog.set_level(logging.WARNING, logger="billing.jobs.scheduler")
    off = settings()
    assert off.email_state == "off: BILLING_SMTP_HOST is not set"
    context = JobContext(engine=None, settings=off)
    jobs = scheduler.schedule(BackgroundScheduler(timezone="UTC"), context).get_jobs()
    assert "send_email" not in {job.id for job in jobs}
    assert "Email is off: BILLING_SMTP_HOST is not set" in caplog.messages
    assert client.get("/healthz").json()["email"] == "off: BILLING_SMTP_HOST is not set"
    on = settings(smtp_host="smtp.example.com", smtp_from=FROM)
    assert registry.SEND_EMAIL.enabled(on)
    assert on.email_state == "on"
    assert settings(smtp_host="smtp.example.com", smtp_from=FROM, scheduler=False).email_state == (
        "on (run by `billing worker` or `billing email send`)"
    )


def test_every_smtp_setting_is_documented():
    names = [
        f"BILLING_{name.upper()}" for name in Settings.model_fields if name.startswith("smtp_")
    ]
    assert len(names) == 7
    operations = (REPO / "docs" / "operations.md").read_text()
    guide = (REPO / "docs" / "email.md").read_text()
    assert [n for n in names if f"| `{n}` |" not in operations] == []
    assert [n for n in names if n not in guide] == []


@pytest.mark.parametrize(
    "subject",
    [
        "[Acme Analytics] Webhook endpoint disabled: http://127.0.0.1:52573/hooks",
        "[Acme Analytics] Webhook endpoint we_93438a36e3539b16 disabled after failing",
        "[Ünïcødé GmbH] Product analytics: 80% of the spend cap of 10.00 USD is used (8.00 USD)",
    ],
)
def test_a_subject_arrives_as_written_whatever_its_length(mailbox, subject):
    # CPython's default policy folds these onto a line of their own: read back, they would
    # start with a space
    composed = Composed(to=TO, subject=subject, text="Hello\n")
    settings = mailbox.settings()
    made = email_message(composed, settings, message_id="<m-1@acme.example>", now=NOW)
    assert send(settings, TO, made).delivered
    [received] = mailbox.received
    assert received["Subject"] == subject
