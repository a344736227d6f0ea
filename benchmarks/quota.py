"""GET /v1/quota/limited with 10,000 limited customer x product pairs, over real HTTP.

Run it with `.venv/bin/python benchmarks/quota.py` (or `make bench`). It prints figures and
never fails on speed (DEVELOPERS.md: speed is measured, not asserted).

1. Prepare a SQLite database: PAIRS limited pairs (customers x products) in the current
   period, written through the metering store as ingestion writes them.
2. Start `billing serve` (one worker) and wait for /healthz.
3. Polling with the ETag (what a pipeline does every second): If-None-Match with the
   current ETag, answered 304 without a body. Goal: >= 2,000 requests/s.
4. For scale, full answers (200 with every pair, about 2 MB each) and GET /healthz (the
   cheapest route of the same server) measured the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from harness import HOST, free_port, percentiles, run_async, start_server, stop_server, wait_healthy
from ingest import Load, drive
from sqlmodel import Session

from billing.auth.models import Role
from billing.auth.service import create_key
from billing.caps.quota import QuotaState
from billing.customers.models import Customer
from billing.customers.periods import period_for
from billing.db import make_engine, upgrade
from billing.metering import store

PAIRS = 10_000
PRODUCTS = ("product_analytics", "session_replay", "feature_flags", "surveys", "error_tracking")
CONNECTIONS = 16
SECONDS = 5.0
FULL_SECONDS = 3.0
GOAL_PER_SECOND = 2_000


def say(*parts: object) -> None:
    print(*parts, flush=True)


def prepare(url: str) -> str:
    """PAIRS limited pairs in the current period; return an ingest key in clear."""
    upgrade(url)
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC)
    customers = PAIRS // len(PRODUCTS)
    try:
        with Session(engine) as session:
            session.add_all(
                Customer(id=f"limited_{n:05d}", name=f"Limited {n}", created_at=now)
                for n in range(customers)
            )
            key, _ = create_key(
                connection=session.connection(), role=Role.INGEST, name="quota benchmark"
            )
            session.commit()
        period = period_for(1, now)
        keys = sorted(
            (f"limited_{n:05d}", product, period.start)
            for n in range(customers)
            for product in PRODUCTS
        )
        with engine.begin() as connection:
            rows = store.lock_usage(connection, keys, now)
            limited = QuotaState(
                accepted=Decimal(1_000_000),
                limit_quantity=Decimal(1_000_000),
                cap_amount=Decimal(0),
                cap_discount=Decimal(0),
            )
            store.write_usage(
                connection,
                {
                    key: replace(row, quota=limited, period_end=period.end)
                    for key, row in rows.items()
                },
                now,
            )
        return key
    finally:
        engine.dispose()


@dataclass
class StatusLoad(Load):
    """A load whose every answer must have one status."""

    status: int = 200

    def record(self, status: int, body: bytes, seconds: float) -> None:  # float-ok
        self.latencies.append(seconds)
        if status == self.status:
            self.ok += 1
        else:
            self.problems.append(f"status {status}: {body[:200]!r}")


def get_request(port: int, path: str, key: str, etag: str | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", f"Authorization: Bearer {key}"]
    if etag:
        lines.append(f"If-None-Match: {etag}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def repeat(request: bytes) -> Iterator[bytes]:
    while True:
        yield request


def measure(
    port: int, request: bytes, status: int, seconds: float
) -> tuple[float, float, float, int]:  # float-ok
    warm = StatusLoad(repeat(request), 0, time.perf_counter() + 0.5, status=status)
    run_async(drive(port, warm, CONNECTIONS))
    load = StatusLoad(repeat(request), 0, time.perf_counter() + seconds, status=status)
    elapsed = run_async(drive(port, load, CONNECTIONS))
    p50, p99 = percentiles(load.latencies)
    return load.ok / elapsed, p50 * 1000, p99 * 1000, len(load.problems)


@contextmanager
def server(url: str) -> Iterator[int]:
    port = free_port()
    env = {"BILLING_DATABASE_URL": url, "BILLING_LOG_LEVEL": "warning"}
    with tempfile.TemporaryFile() as log:
        process = start_server(port, 1, log, env)
        try:
            wait_healthy(process, port, log)
            yield port
        finally:
            stop_server(process)


def main() -> None:
    say(
        f"GET /v1/quota/limited benchmark, {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}"
    )
    say(f"{PAIRS:,} limited pairs; {CONNECTIONS} keep-alive connections; one server worker")
    with tempfile.TemporaryDirectory(prefix="billing-quota-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'quota.db'}"
        key = prepare(url)
        with server(url) as port:
            request = urllib.request.Request(
                f"http://{HOST}:{port}/v1/quota/limited", headers={"Authorization": f"Bearer {key}"}
            )
            with urllib.request.urlopen(request) as answer:
                body = answer.read()
                etag = answer.headers["ETag"]
            listed = json.loads(body)["count"]
            say(f"   full answer: {listed:,} pairs, {len(body):,} bytes, ETag {etag}")
            polled = measure(port, get_request(port, "/v1/quota/limited", key, etag), 304, SECONDS)
            full = measure(port, get_request(port, "/v1/quota/limited", key), 200, FULL_SECONDS)
            health = measure(port, get_request(port, "/healthz", key), 200, SECONDS)
    rows = (
        ("If-None-Match (304)", polled),
        ("full answer (200)", full),
        ("GET /healthz (baseline)", health),
    )
    for name, (rate, p50, p99, problems) in rows:
        say(
            f"   {name:<24} {rate:>8,.0f} requests/s  p50 {p50:.1f} ms  p99 {p99:.1f} ms"
            + (f"  PROBLEMS {problems}" if problems else "")
        )
    say("summary")
    say(
        f"   polling with the ETag: {polled[0]:,.0f} requests/s "
        f"({polled[0] / health[0]:.2f} of /healthz): goal >= {GOAL_PER_SECOND:,}/s: "
        f"{'met' if polled[0] >= GOAL_PER_SECOND and listed == PAIRS else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()
