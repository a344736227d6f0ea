"""Sending one email through SMTP, with the standard library's smtplib.

`send` connects to BILLING_SMTP_HOST:BILLING_SMTP_PORT, secures the connection as
BILLING_SMTP_SECURITY says (STARTTLS, or TLS from the start, both verified against the
system's certificate authorities with a default SSL context; or none), logs in when a
user name is set, and hands the message over. It never raises: the answer is an `Outcome`,
delivered or not with what went wrong, so the outbox can try again later.

The whole exchange has one deadline, BILLING_SMTP_TIMEOUT_SECONDS: each step waits at most
what is left of it, and a watchdog cuts the connection when it passes, so a server that
answers a byte at a time cannot hold a send for longer.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr

from billing.settings import Settings


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one send: delivered (the server took the message), or not, with what
    went wrong; `permanent` when trying again cannot help (the server refused the address
    or the message for good, a 5xx answer)."""

    delivered: bool
    detail: str | None = None
    permanent: bool = False


DELIVERED = Outcome(True)


def envelope_sender(settings: Settings) -> str:
    """The address of BILLING_SMTP_FROM ("Billing <billing@example.com>" -> the address)."""
    return parseaddr(settings.smtp_from or "")[1]


def _text(message: bytes | str) -> str:
    return message.decode(errors="replace") if isinstance(message, bytes) else message


def _answer(code: int, message: bytes | str) -> str:
    return f"{code} {_text(message)}".strip()


def _failed(error: BaseException, timed_out: bool, timeout: float) -> Outcome:  # float-ok: seconds
    """The outcome of a send that raised `error` (never the password: smtplib's errors carry
    the server's answers, not what we sent)."""
    if timed_out or isinstance(error, TimeoutError):
        return Outcome(False, f"no answer within {timeout:g} s")
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refused = list(error.recipients.values())
        permanent = bool(refused) and all(code >= 500 for code, _ in refused)
        shown = "; ".join(_answer(code, message) for code, message in refused)
        return Outcome(False, f"recipient refused: {shown}", permanent)
    if isinstance(error, smtplib.SMTPDataError):
        return Outcome(
            False,
            f"message refused: {_answer(error.smtp_code, error.smtp_error)}",
            error.smtp_code >= 500,
        )
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return Outcome(False, f"login refused: {_answer(error.smtp_code, error.smtp_error)}")
    if isinstance(error, smtplib.SMTPSenderRefused):
        return Outcome(False, f"sender refused: {_answer(error.smtp_code, error.smtp_error)}")
    if isinstance(error, smtplib.SMTPNotSupportedError):  # STARTTLS, AUTH not offered
        return Outcome(False, str(error))
    if isinstance(error, smtplib.SMTPResponseException):
        return Outcome(False, _answer(error.smtp_code, error.smtp_error))
    if isinstance(error, ssl.SSLError):
        return Outcome(False, f"TLS: {error}")
    return Outcome(False, f"{type(error).__name__}: {error}".rstrip(": "))


class _Watchdog:
    """Cuts a client's connection when the deadline passes (a blocked read then fails)."""

    def __init__(self, client: smtplib.SMTP, seconds: float) -> None:  # float-ok: seconds
        self.client = client
        self.fired = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def _cut(self) -> None:
        self.fired = True
        sock = self.client.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def send(settings: Settings, to: str, message: EmailMessage) -> Outcome:
    """Hand `message` to the SMTP server for `to` (its envelope recipient), as configured by
    the BILLING_SMTP_* settings; never raises."""
    host = settings.smtp_host
    if not host:
        return Outcome(False, f"email is {settings.email_state}")
    timeout = settings.smtp_timeout_seconds
    deadline = time.monotonic() + timeout
    # NOTE: made for each send (cheap next to a connection), only when TLS is used
    context = None if settings.smtp_security == "none" else ssl.create_default_context()

    def left() -> float:  # float-ok: seconds
        return max(deadline - time.monotonic(), 0.001)  # float-ok: seconds

    client: smtplib.SMTP
    if settings.smtp_security == "tls":
        client = smtplib.SMTP_SSL(timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(timeout=timeout)
    # NOTE: smtplib names the TLS server (for SNI and the certificate's name) from `_host`,
    # which only its constructor sets; the constructor would also connect, before the
    # watchdog could watch the greeting.
    client._host = host  # type: ignore[attr-defined]
    watchdog = _Watchdog(client, timeout)
    try:
        client.connect(host, settings.smtp_port)
        _step(client, left())
        client.ehlo()
        if settings.smtp_security == "starttls":
            _step(client, left())
            client.starttls(context=context)
            client.ehlo()
        if settings.smtp_username is not None and settings.smtp_password is not None:
            _step(client, left())
            client.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        _step(client, left())
        client.send_message(message, from_addr=envelope_sender(settings), to_addrs=[to])
    except (smtplib.SMTPException, OSError) as error:
        # NOTE: smtplib reports a read that timed out as a lost connection: past the deadline,
        # whichever way it ended, the server did not answer in time.
        timed_out = watchdog.fired or time.monotonic() >= deadline
        return _failed(error, timed_out, timeout)
    finally:
        watchdog.cancel()
        _close(client)
    return DELIVERED


def _step(client: smtplib.SMTP, seconds: float) -> None:  # float-ok: seconds
    """Let the next step wait at most what is left of the deadline."""
    if client.sock is not None:
        client.sock.settimeout(seconds)


def _close(client: smtplib.SMTP) -> None:
    """Say QUIT if the connection still stands (the message is handed over either way)."""
    try:
        if client.sock is not None:
            client.sock.settimeout(1)
            client.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        client.close()
