"""Sending one webhook POST: resolve once, check every address, connect to the checked one,
within one total deadline, following no redirect.

- The host is resolved once, through `resolve` (the system resolver by default). Every
  address it gives must pass `address_problem`; if any does not, nothing is sent. The
  connection then goes to the first address itself, so a second lookup (DNS rebinding)
  cannot move it elsewhere. The request still names the URL's host: in the Host header and,
  over TLS, as the server name (SNI) and the name the certificate is verified against.
- `deadline` bounds the whole attempt, not each read: resolving, connecting, the TLS
  handshake, sending and reading the answer (status, headers and at most MAX_ANSWER bytes of
  body). Before every blocking step the socket's timeout is set to what is left, so a
  receiver that trickles a byte at a time is cut off when the deadline passes.
- A 2xx answer delivers; any other answer, a redirect included, is a failure.

Two texts describe each outcome. `detail` is for admins and logs: which address, timed out
where, refused by whom. `public_reason` is what the customer may see: the status their
endpoint answered, or else one generic sentence, the same whether the address was refused,
the name did not resolve, the connection was refused or it timed out, so the customer's view
never tells what sits at an address (an open or closed port, an internal name).
"""

from __future__ import annotations

import functools
import http.client
import io
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from billing.webhooks_out.address import address_problem, parse

Resolver = Callable[[str, int], Sequence[str]]
MAX_ANSWER = 64 * 1024  # bytes of an answer's body read (and ignored) before hanging up
DELIVERED = "delivered"


@dataclass(frozen=True)
class Outcome:
    """What became of one attempt."""

    delivered: bool
    status: int | None  # the HTTP status the endpoint answered; None: no answer
    detail: str  # for admins and logs: "HTTP 500", "timed out after 5 s connecting to ..."
    public_reason: str  # for the customer: "delivered", their status, or one generic sentence


def system_resolve(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives `host`, in its order, each once."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def no_answer_reason(deadline: float) -> str:  # float-ok: seconds
    """What the customer sees for every attempt their endpoint did not answer."""
    return (
        "could not deliver to your endpoint: no HTTP answer (a webhook URL must resolve to "
        f"public addresses and answer within {deadline:g} s)"
    )


def send(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    deadline: float,  # float-ok: seconds the whole attempt may take
    allow_private: bool,
    resolve: Resolver = system_resolve,
    tls: ssl.SSLContext | None = None,
) -> Outcome:
    """POST `body` to `url` once (module docstring). Never raises for what the network or
    the endpoint does; `tls` defaults to the system's trust store with hostname checks."""
    clock = _Clock(deadline)
    no_answer = functools.partial(_no_answer, deadline=deadline)
    parts = urlsplit(url)
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return no_answer("refused: the URL has a bad port")
    if parts.scheme not in ("http", "https") or not host:
        return no_answer("refused: not an http(s) URL with a host")
    step, where = f"resolving {host}", host
    try:
        addresses = _addresses(host, port, resolve, clock)
        if not addresses:
            return no_answer(f"cannot resolve {host}: no address")
        for address in addresses:
            problem = address_problem(address, allow_private=allow_private)
            if problem is not None:
                return no_answer(f"refused: {problem}")
        where = _where(addresses[0], port)
        step = f"connecting to {where}"
        context = (tls or _system_tls()) if parts.scheme == "https" else None
        connection = _Connection(host, port, address=addresses[0], clock=clock, tls=context)
        try:
            connection.connect()
            step = f"sending to {where}"
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("POST", path, body, {**headers, "Connection": "close"})
            step = f"waiting for {where} to answer"
            assert connection.sock is not None  # connected above
            answer = http.client.HTTPResponse(
                cast(socket.socket, _WithinDeadline(connection.sock, clock)), method="POST"
            )
            answer.begin()
            _read_some(answer)
        finally:
            connection.close()
    except TimeoutError:
        return no_answer(f"timed out after {deadline:g} s {step}")
    except socket.gaierror as error:
        return no_answer(f"cannot resolve {host}: {error.strerror or error}")
    except ConnectionRefusedError:
        return no_answer(f"connection refused by {where}")
    except ssl.SSLCertVerificationError as error:
        return no_answer(
            f"TLS: the certificate of {where} is not valid for {host}: {error.verify_message}"
        )
    except ssl.SSLError as error:
        return no_answer(f"TLS with {where} failed: {getattr(error, 'reason', None) or error}")
    except http.client.RemoteDisconnected:
        return no_answer(f"{where} closed the connection without answering")
    except http.client.HTTPException as error:
        return no_answer(f"no valid HTTP answer from {where}: {type(error).__name__}")
    except OSError as error:
        return no_answer(f"{step} failed: {error.strerror or error}")
    return _answered(answer.status, answer.getheader("Location"))


def _answered(status: int, location: str | None) -> Outcome:
    if 200 <= status < 300:
        return Outcome(True, status, f"HTTP {status}", DELIVERED)
    if 300 <= status < 400:
        to = f" to {location[:200]}" if location else ""
        return Outcome(
            False,
            status,
            f"HTTP {status}: a redirect{to}, not followed",
            f"your endpoint answered HTTP {status}, a redirect: redirects are not followed",
        )
    return Outcome(False, status, f"HTTP {status}", f"your endpoint answered HTTP {status}")


def _no_answer(detail: str, *, deadline: float) -> Outcome:  # float-ok: seconds
    return Outcome(False, None, detail, no_answer_reason(deadline))


def _where(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@functools.cache
def _system_tls() -> ssl.SSLContext:
    return ssl.create_default_context()  # certificates and host names verified


class _Clock:
    """The attempt's deadline; `left()` raises TimeoutError once it has passed."""

    def __init__(self, seconds: float) -> None:  # float-ok: seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:  # float-ok: seconds
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left


def _addresses(host: str, port: int, resolve: Resolver, clock: _Clock) -> list[str]:
    """The addresses to check: a literal as it is, a name resolved once within the deadline
    (the system resolver has no timeout of its own, so it runs in a thread waited for)."""
    try:
        return [str(parse(host))]
    except ValueError:
        pass
    found: list[Sequence[str]] = []
    failed: list[Exception] = []
    done = threading.Event()

    def run() -> None:
        try:
            found.append(resolve(host, port))
        except Exception as error:  # handed to the caller below
            failed.append(error)
        finally:
            done.set()

    threading.Thread(target=run, name=f"resolve {host}", daemon=True).start()
    if not done.wait(clock.left()):
        raise TimeoutError
    if failed:
        raise failed[0]
    return list(dict.fromkeys(found[0])) if found else []


class _Connection(http.client.HTTPConnection):
    """HTTP, or HTTPS with `tls`, to `address` (a checked IP) speaking as `host`: the Host
    header, the TLS server name (SNI) and the name the certificate is verified against are
    the URL's host, never the address."""

    def __init__(
        self, host: str, port: int, *, address: str, clock: _Clock, tls: ssl.SSLContext | None
    ) -> None:
        super().__init__(host, port)
        self.address = address
        self.clock = clock
        self.tls = tls

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.clock.left())
        self.sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock.settimeout(self.clock.left())  # the whole handshake
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)

    def send(self, data: Any) -> None:
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        self.sock.settimeout(self.clock.left())  # sendall: one timeout for all the data
        super().send(data)


class _WithinDeadline:
    """The socket as http.client.HTTPResponse reads it: every read within the deadline."""

    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        self.sock = sock
        self.clock = clock

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_Reads(self.sock, self.clock))


class _Reads(io.RawIOBase):
    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        self.sock = sock
        self.clock = clock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.sock.settimeout(self.clock.left())
        return self.sock.recv_into(buffer)


def _read_some(answer: http.client.HTTPResponse) -> None:
    """Read at most MAX_ANSWER bytes of the body, within the deadline, and ignore them: the
    status has decided already, so a body cut short (or too slow) changes nothing."""
    read = 0
    try:
        while read < MAX_ANSWER:
            chunk = answer.read(min(16 * 1024, MAX_ANSWER - read))
            if not chunk:
                return
            read += len(chunk)
    except (OSError, http.client.HTTPException):
        return
