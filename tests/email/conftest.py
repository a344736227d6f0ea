"""A real SMTP server for the email tests: aiosmtpd on 127.0.0.1, collecting what it takes,
plain, with STARTTLS and a login, or TLS from the start (certificates made by trustme)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from billing.customers import service as customers_service
from billing.customers.models import CustomerCreate
from billing.db import table_of
from billing.email.models import EmailOutbox
from billing.settings import Settings
from tests.conftest import TIERS, free_port

FROM = "Acme Billing <billing@acme.example>"
USER, PASSWORD = "billing", "s3cret-smtp-password"
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


class Mailbox:
    """An SMTP server on 127.0.0.1 (aiosmtpd's Controller, in a thread of its own) keeping
    each message it accepts; `refuse` makes it refuse recipients with that answer."""

    def __init__(
        self,
        *,
        port: int | None = None,
        tls: ssl.SSLContext | None = None,
        starttls: ssl.SSLContext | None = None,
        login: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.received: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse: str | None = None
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs["ssl_context"] = tls
        if starttls is not None:
            kwargs.update(tls_context=starttls, require_starttls=True)
        if login:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    @staticmethod
    def _authenticate(server, session, envelope, mechanism, data) -> AuthResult:
        good = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        return AuthResult(success=good, handled=False)  # handled=False: aiosmtpd answers 535

    async def handle_RCPT(self, server, session, envelope, address, options):
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def settings(self, **changes: Any) -> Settings:
        """Settings that send through this server (plain, unless `changes` say otherwise)."""
        return smtp_settings(self.port, **changes)

    def close(self) -> None:
        self.controller.stop()


def smtp_settings(port: int, **changes: Any) -> Settings:
    """Settings that send to 127.0.0.1:`port`, plain, from FROM, within 5 s, invoices issued by
    Acme Billing (BILLING_SELLER_NAME)."""
    values: dict[str, Any] = {
        "tiers_dir": TIERS,
        "database_url": "sqlite://",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_from": FROM,
        "seller_name": "Acme Billing",
        "smtp_timeout_seconds": 5,
        **changes,
    }
    return Settings(**values)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A plain SMTP server (BILLING_SMTP_SECURITY=none), closed afterwards."""
    made = Mailbox()
    yield made
    made.close()


@pytest.fixture(scope="session")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(certificate_authority: trustme.CA) -> ssl.SSLContext:
    """The server's side of TLS: a certificate for 127.0.0.1 from the test authority."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def trusted(
    certificate_authority: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The test authority trusted the way an operator would: through SSL_CERT_FILE, which
    OpenSSL reads for the default verify paths (so the sender's default context trusts it)."""
    path = tmp_path / "ca.pem"
    certificate_authority.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))
    return path


def add_customer(session, customer_id="acme", name="Acme Analytics", email="ops@acme.example"):
    """A customer billed from 2026-10-01, with a billing email unless `email` is None."""
    customers_service.create_customer(
        connection=session.connection(),
        data=CustomerCreate(
            id=customer_id,
            name=name,
            email=email,
            billing_start=dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
        ),
        currency="USD",
        now=dt.datetime(2026, 10, 15, tzinfo=dt.UTC),
    )
    session.commit()


def outbox_rows(engine) -> list[Any]:
    table = table_of(EmailOutbox)
    with engine.connect() as connection:
        return list(connection.execute(select(table).order_by(table.c.id)))


def text_of(message: EmailMessage) -> str:
    """The plain-text part, with the wire's CRLF line ends read back as newlines."""
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def html_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())
