"""What both benchmark scripts share: starting `billing serve`, stopping it, and statistics.

Servers run on 127.0.0.1 in a process group of their own, so a stuck one (and its workers)
can always be killed; the load generators run on uvloop when it is installed.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

try:
    import uvloop
except ImportError:  # uvicorn[standard] normally brings it
    uvloop = None

REPO = Path(__file__).resolve().parent.parent
TIERS_DIR = REPO / "pricing_tiers"
HOST = "127.0.0.1"
SERVER_START_TIMEOUT = 30.0
SERVER_STOP_TIMEOUT = 10.0
T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def billing_command() -> list[str]:
    """The `billing` console script next to this interpreter (or `python -m billing`)."""
    script = Path(sys.executable).with_name("billing")
    return [str(script)] if script.exists() else [sys.executable, "-m", "billing"]


def start_server(
    port: int, workers: int, log: IO[bytes], env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`billing serve` on 127.0.0.1:port in its own process group; stderr goes to `log`."""
    environment = {**os.environ, "BILLING_TIERS_DIR": str(TIERS_DIR), **(env or {})}
    command = [*billing_command(), "serve", "--host", HOST, "--port", str(port)]
    return subprocess.Popen(
        [*command, "--workers", str(workers)],
        cwd=REPO,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # uvicorn's access log
        stderr=log,
        start_new_session=True,
    )


def wait_healthy(process: subprocess.Popen[bytes], port: int, log: IO[bytes]) -> None:
    """Poll GET /healthz until it answers 200; raise if the server dies or is too slow."""
    url = f"http://{HOST}:{port}/healthz"
    deadline = time.perf_counter() + SERVER_START_TIMEOUT
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no 200 from {url} after {SERVER_START_TIMEOUT:.0f} s:\n{tail(log)}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server; SIGKILL its process group if it has not stopped in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=SERVER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the group holds only this server and its workers
        process.wait(timeout=SERVER_STOP_TIMEOUT)


def tail(log: IO[bytes], lines: int = 20) -> str:
    """The last lines of a server's log, for an error message."""
    log.flush()
    log.seek(0)
    return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])


def percentiles(latencies: list[float]) -> tuple[float, float]:  # float-ok
    """(p50, p99) of the latencies, in their unit; NaN when there are too few."""
    if len(latencies) < 2:
        return math.nan, math.nan
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return cuts[49], cuts[98]


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when it is installed (a faster load generator)."""
    factory = uvloop.new_event_loop if uvloop is not None else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine)
