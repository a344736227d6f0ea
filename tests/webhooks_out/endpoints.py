"""Real endpoints on 127.0.0.1 for the sender's tests, and a stub of the outside world's DNS.

- `Endpoint`: HTTP (or HTTPS with a server context); counts connections, records requests,
  answers as told, and can hold every answer until an Event is set.
- `Trickle`: reads the request, then writes its answer one byte every `every` seconds,
  counting what it got out, so a test compares the sender's return with its schedule.
- `StubResolver`: answers each lookup with the next of its answers, and records lookups.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


class Endpoint:
    """An HTTP endpoint on 127.0.0.1 that answers `status` (with `headers`)."""

    def __init__(
        self,
        status: int = 200,
        headers: dict[str, str] | None = None,
        hold: threading.Event | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.status = status
        self.headers = headers or {}
        self.hold = hold
        self.connections = 0
        self.requests: list[Request] = []
        self.in_flight = 0
        self.most_at_once = 0  # the most requests it was answering at the same time
        self.arrived = threading.Event()  # set when a request has been read
        self.delay = 0.0  # float-ok: seconds each answer waits
        self.lock = threading.Lock()
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def setup(self) -> None:
                endpoint.connections += 1
                super().setup()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with endpoint.lock:
                    endpoint.in_flight += 1
                    endpoint.most_at_once = max(endpoint.most_at_once, endpoint.in_flight)
                    endpoint.requests.append(Request(self.path, dict(self.headers), body))
                endpoint.arrived.set()
                if endpoint.hold is not None:
                    endpoint.hold.wait(30)
                time.sleep(endpoint.delay)
                with endpoint.lock:
                    endpoint.in_flight -= 1
                self.send_response(endpoint.status)
                for name, value in endpoint.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, host: str = "127.0.0.1", path: str = "/hooks/billing") -> str:
        scheme = "https" if isinstance(self.server.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


class Trickle:
    """An endpoint on 127.0.0.1 that reads one request, sends `at_once`, then the rest of
    `answer` one byte every `every` seconds. `sent` counts the bytes out; `finished` is set
    when all of them were."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    def __init__(
        self,
        answer: bytes = ANSWER,
        at_once: int = 0,
        every: float = 0.5,  # float-ok: seconds
    ) -> None:
        self.answer = answer
        self.at_once = at_once
        self.every = every
        self.sent = 0
        self.finished = threading.Event()
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/billing"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def schedule(self) -> float:  # float-ok: seconds
        """How long the whole answer takes to go out."""
        return (len(self.answer) - self.at_once) * self.every

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            _read_request(connection)
            try:
                connection.sendall(self.answer[: self.at_once])
                self.sent = self.at_once
                for index in range(self.at_once, len(self.answer)):
                    if self.stopped.wait(self.every):
                        return
                    connection.sendall(self.answer[index : index + 1])
                    self.sent = index + 1
            except OSError:  # the sender hung up
                return
            self.finished.set()

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()
        self.thread.join(5)


def _read_request(connection: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(4096)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = connection.recv(4096)
        if not chunk:
            return
        body += chunk


class StubResolver:
    """The outside world's DNS, under the test's control: the n-th lookup gets the n-th
    answer (the last one again after that); an exception as an answer is raised; an Event
    as an answer is waited on (a resolver that hangs) before giving the next answer."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.lookups: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append((host, port))
        answer = self.answers[min(len(self.lookups), len(self.answers)) - 1]
        if isinstance(answer, threading.Event):
            answer.wait(30)
            return []
        if isinstance(answer, Exception):
            raise answer
        return list(answer)


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (connecting is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_until(condition: Any, seconds: float = 10) -> bool:  # float-ok: seconds
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
