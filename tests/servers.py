"""Real HTTP parts for tests: `billing serve` in a subprocess, and a webhook receiver."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import TIERS, free_port

BILLING = Path(sys.executable).parent / "billing"


class Server:
    """`billing serve` as a real process on a fixed port: start, kill -9, restart, stop."""

    def __init__(
        self, tiers: Path = TIERS, database_url: str | None = None, workers: int = 1
    ) -> None:
        # no URL: a SQLite file of its own, removed in stop() (`billing serve` refuses an
        # in-memory database)
        self.directory = tempfile.TemporaryDirectory() if database_url is None else None
        if self.directory is not None:
            database_url = f"sqlite:///{self.directory.name}/billing.db"
        self.port = free_port()
        self.workers = workers
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "BILLING_TIERS_DIR": str(tiers),
            "BILLING_DATABASE_URL": database_url,
            "BILLING_LOG_LEVEL": "warning",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.output = ""
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())

    def start(self, timeout: float = 30.0) -> None:  # float-ok
        self.process = subprocess.Popen(
            [
                *(str(BILLING), "serve", "--host", "127.0.0.1", "--port", str(self.port)),
                *("--workers", str(self.workers)),
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                self.log.seek(0)
                output = self.log.read().decode()
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{output}")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self.log.closed:
            self.log.seek(0)
            self.output = self.log.read().decode()  # what it printed, kept for the test
        self.log.close()
        if self.directory is not None:
            self.directory.cleanup()


def billing_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,  # float-ok: seconds
) -> subprocess.CompletedProcess[str]:
    """Run the installed `billing` command; the finished process, its output as text."""
    return subprocess.run(
        [str(BILLING), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def billing_ok(*args: str, env: dict[str, str] | None = None) -> str:
    """Run `billing`, which must succeed; what it printed, stripped."""
    done = billing_cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def cli_database(url: str, **settings: str) -> dict[str, str]:
    """Migrate the database at `url` and create customer acme, with the `billing` command;
    the environment that points the command there (plus `settings`, BILLING_* variables)."""
    env = {**os.environ, "BILLING_DATABASE_URL": url, "BILLING_TIERS_DIR": str(TIERS), **settings}
    billing_ok("db", "upgrade", env=env)
    billing_ok("customers", "create", "acme", "--name", "Acme", env=env)
    return env


@contextmanager
def running_server(tiers: Path = TIERS, database_url: str | None = None) -> Iterator[str]:
    """Yield the base URL of a served app; stop it afterwards."""
    server = Server(tiers, database_url)
    try:
        server.start()
        yield server.base
    finally:
        server.stop()


def post_json(
    url: str,
    body: Any,
    key: str | None = None,
    timeout: float = 10,  # float-ok
) -> tuple[int, Any]:
    """POST a JSON body; return the status and the decoded JSON answer."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> bool:  # float-ok
    """Poll `condition` until it holds or `seconds` pass; whether it held."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records requests and answers as told."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.delay = 0.0  # float-ok: seconds
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/billing"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
