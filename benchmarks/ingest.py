"""Ingestion benchmarks: POST /v1/events over real HTTP, against a raw bulk insert baseline.

Run it from any directory:

    .venv/bin/python benchmarks/ingest.py                    (or `make bench`)
    .venv/bin/python benchmarks/ingest.py --only dimensions  (steps 1 and 6 alone)

It prints figures and asserts nothing about speed. Every phase is bounded in time and in
work, so the whole run stops by itself in under ten minutes (the 5-million-event memory
phase is most of it; `--only dimensions` takes about a minute and a half). All HTTP traffic goes to
servers this script starts on 127.0.0.1; they are stopped, the PostgreSQL database it
creates is dropped and its temporary SQLite files and tier directory are deleted, whatever
happens.

For each engine (SQLite in a temporary file; PostgreSQL in a fresh database `bench_<random>`
created and dropped through the `postgres` maintenance database of the server at
BILLING_TEST_POSTGRES_URL, never in the tests' database; skipped with a reason when it
cannot be reached):

1. Prepare: migrate, create CUSTOMERS customers and an ingest key.
2. Start `billing serve` (one worker) on a free port and wait for /healthz.
3. Batches: POST /v1/events with BATCH events each (unique random ids, customers and
   products spread, integer quantities, timestamps about a minute ago) from two keep-alive
   connections; bodies are serialized before the clock starts. Every answer must be a 200
   with all events accepted.
4. Baseline: the same rows bulk-inserted into a bare table with only a primary key, with
   sqlite3 `executemany` in one transaction (WAL, synchronous=NORMAL) or psycopg COPY.
5. Single events: one event per POST from SINGLE_CONNECTIONS keep-alive connections.
6. Dimensions: a copy of the tier directory in which product_analytics gains
   `dimensions = ["project", "model"]` and `max_dimension_values = 1000`, and a server of
   its own on it (same database). Batches of BATCH events with properties (40 projects x 8
   models, so up to 320 combinations per customer for product_analytics, plus an `sdk`
   property no product uses) against the same batches without, in DIMENSIONS_ROUNDS
   alternating rounds (tables of the same size for both); every answer must be a 200 with
   all events accepted. Then the storage of `usage_breakdown` per row (one row per
   customer, product, period and distinct combination of values: pg_total_relation_size
   on PostgreSQL, the dbstat virtual table on SQLite) and the server's RSS before the
   first batch with properties and after the last, per distinct value. Rounds stop being
   started after DIMENSIONS_SECONDS.

Then, on SQLite only, the server's memory while ingesting MEMORY_EVENTS events (bodies made
lazily, RSS sampled from /proc/<pid>/status): scaled down when the rate measured in step 3
says it would not fit in MEMORY_SECONDS, and said so in the output.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from harness import (
    HOST,
    TIERS_DIR,
    free_port,
    percentiles,
    run_async,
    start_server,
    stop_server,
    uvloop,
    wait_healthy,
)
from sqlalchemy.engine import make_url
from sqlmodel import Session

from billing.auth.models import Role
from billing.auth.service import create_key
from billing.catalog import load_catalog
from billing.customers import service as customers_service
from billing.customers.models import CustomerCreate
from billing.customers.periods import period_for
from billing.db import make_engine, upgrade
from billing.metering import quota as quota_service

POSTGRES_URL = os.environ.get(
    "BILLING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

CUSTOMERS = 20
PRODUCTS = ("product_analytics", "session_replay", "feature_flags")
BATCH = 10_000
STAMPS = 1_000  # distinct timestamps, 1 ms apart, ending a minute ago

# Batches: a warm-up batch, then at most BATCHES batches or BATCH_SECONDS, whichever first.
BATCH_CONNECTIONS = 2
CAPS_ROUNDS = 3
CAPS_BATCHES = 5
CAPS_AMOUNT = Decimal(1_000_000)  # on every product: enforced on every batch, never reached
GOAL_CAPS = 0.8
RAW_RUNS = 3  # the baseline varies run to run on a shared VM: its median is the reference
BATCHES = {"SQLite": 30, "PostgreSQL": 20}
BATCH_SECONDS = 30.0
# Dimensions: alternating rounds of batches with and without properties, on a server whose
# product_analytics keeps usage per (project, model). New rounds stop after
# DIMENSIONS_SECONDS (at least one always runs); each call of measure_batches is capped too.
DIMENSIONS = ("project", "model")
MAX_DIMENSION_VALUES = 1000
PROJECTS = 40
MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "o3-mini",
    "claude-sonnet",
    "claude-haiku",
    "llama-70b",
    "mistral-large",
    "gemini-flash",
)
DIMENSIONS_ROUNDS = 3
DIMENSIONS_BATCHES = 5
DIMENSIONS_SECONDS = 60.0  # float-ok: seconds, per engine
GOAL_DIMENSIONS = 0.8  # float-ok: a ratio of rates
RSS_NEAR_ZERO = 100  # bytes of RSS growth per distinct value that still count as "none"
# Single events: a warm-up, then a fixed window.
SINGLE_CONNECTIONS = 16
SINGLE_WARMUP_SECONDS = 1.0
SINGLE_SECONDS = 5.0
SINGLE_MAX_REQUESTS = 100_000
# Memory: MEMORY_EVENTS on SQLite, scaled down to what fits in MEMORY_SECONDS. The plan
# assumes MEMORY_SLOWDOWN of the step-3 rate: with random ids the table's indexes outgrow
# SQLite's page cache and every batch gets slower (about 0.7 when first measured). New
# batches stop MEMORY_OVERRUN seconds after the budget, whatever the plan said.
MEMORY_EVENTS = 5_000_000
MEMORY_SECONDS = 300.0
MEMORY_SLOWDOWN = 0.7
MEMORY_OVERRUN = 10.0
# The whole run: the memory phase gets less than MEMORY_SECONDS when this would be exceeded.
# (The dimensions phases are given their own time, not taken from the memory phase's.)
TOTAL_SECONDS = 400.0 + 2 * DIMENSIONS_SECONDS  # float-ok: seconds
RSS_INTERVAL = 0.05

GRACE_SECONDS = 60.0  # for requests in flight when a phase's window closes

GOAL_RATIO = {"SQLite": 0.25, "PostgreSQL": 0.15}
GOAL_SINGLE_PER_SECOND = 1_000
GOAL_PEAK_RSS_MB = 300

EVENT_COLUMNS = (
    "id",
    "customer_id",
    "product",
    "quantity",
    "timestamp",
    "period_start",
    "status",
    "received_at",
)


def say(*parts: object) -> None:
    print(*parts, flush=True)


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stamp:
    """One event timestamp, as JSON sends it and as the event table stores it."""

    text: str  # ISO 8601 with Z
    at: dt.datetime  # aware UTC
    period_start: dt.datetime  # of a customer with anchor day 1 (all of ours)


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    customer: str
    product: str
    quantity: int
    stamp: Stamp
    properties: dict[str, str] | None = None


def customer_id(number: int) -> str:
    return f"bench_{number:03d}"


class EventSource:
    """Events with unique random ids (like UUIDs), customers and products round-robin.

    With `properties`, each event also carries a project, a model and an sdk. The k-th event
    of a (customer, product) pair (k = n // 60: customers go round 20 and products 3) gets
    project k % 40 and model (k // 40) % 8, so a pair goes through all 320 combinations.
    (Taking both from n itself would give a pair only 2: n % 8 follows from n % 40, and
    n % 40 from n % 120, of which a pair sees two values.)
    """

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.count = 0
        last = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
        self.stamps = [_stamp(last - dt.timedelta(milliseconds=ms)) for ms in range(STAMPS)]

    def take(self, size: int, properties: bool = False) -> list[Event]:
        events = []
        pairs = CUSTOMERS * len(PRODUCTS)
        for _ in range(size):
            n = self.count
            self.count += 1
            k = n // pairs
            events.append(
                Event(
                    id=f"{self.random.getrandbits(128):032x}",
                    customer=customer_id(n % CUSTOMERS),
                    product=PRODUCTS[n % len(PRODUCTS)],
                    quantity=1 + n % 10,
                    stamp=self.stamps[n % STAMPS],
                    properties=(
                        {
                            "project": f"p{k % PROJECTS}",
                            "model": MODELS[(k // PROJECTS) % len(MODELS)],
                            "sdk": "js",
                        }
                        if properties
                        else None
                    ),
                )
            )
        return events


def _stamp(at: dt.datetime) -> Stamp:
    text = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return Stamp(text=text, at=at, period_start=period_for(1, at).start)


def batch_body(events: list[Event]) -> bytes:
    """The JSON body of POST /v1/events for `events` (with their properties, if any)."""
    return json.dumps(
        {
            "events": [
                {
                    "id": e.id,
                    "customer": e.customer,
                    "product": e.product,
                    "quantity": e.quantity,
                    "timestamp": e.stamp.text,
                    **({"properties": e.properties} if e.properties is not None else {}),
                }
                for e in events
            ]
        },
        separators=(",", ":"),
    ).encode()


def rows_as_stored(batches: list[list[Event]], received_at: dt.datetime) -> list[tuple[Any, ...]]:
    """Event-table rows in the order the service writes them (each batch sorted by id)."""
    rows = []
    for batch in batches:
        for e in sorted(batch, key=lambda e: e.id):
            rows.append(
                (
                    e.id,
                    e.customer,
                    e.product,
                    e.quantity,
                    e.stamp.at,
                    e.stamp.period_start,
                    "accepted",
                    received_at,
                )
            )
    return rows


# --- databases ----------------------------------------------------------------------------


def prepare(url: str) -> str:
    """Migrate `url`, create the customers and an ingest key; return the key in clear."""
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            for number in range(CUSTOMERS):
                data = CustomerCreate(id=customer_id(number), name=f"Benchmark {number}")
                customers_service.create_customer(
                    connection=session.connection(), data=data, currency="USD"
                )
            key, _ = create_key(
                connection=session.connection(), role=Role.INGEST, name="ingest benchmark"
            )
            session.commit()
        return key
    finally:
        engine.dispose()


def postgres_conninfo(url: str) -> str:
    """A libpq URL for psycopg from a SQLAlchemy one."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def postgres_unreachable(url: str) -> str | None:
    """Why PostgreSQL at `url` cannot be used, or None when it can."""
    try:
        with psycopg.connect(postgres_conninfo(url), connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"
    return None


@contextmanager
def postgres_database(url: str) -> Iterator[tuple[str, str]]:
    """A fresh database `bench_<random>` on the server of `url`, created and dropped through
    the `postgres` maintenance database (never the database `url` names, which may be the
    tests' own); yield (its name, a URL of it). Dropped afterwards, connections and all."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    base = make_url(url)
    maintenance = postgres_conninfo(
        base.set(database="postgres").render_as_string(hide_password=False)
    )
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(maintenance, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def raw_sqlite(rows: list[tuple[Any, ...]], path: Path) -> float:  # float-ok
    """Rows/s of one executemany transaction into a bare table (same pragmas as the app)."""
    columns = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    stored = [
        (i, c, p, str(q), _naive(t), _naive(s), st, _naive(r)) for i, c, p, q, t, s, st, r in rows
    ]
    for used in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        used.unlink(missing_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(
            "CREATE TABLE event (id VARCHAR(200) NOT NULL PRIMARY KEY, "
            "customer_id VARCHAR(64) NOT NULL, product VARCHAR(64) NOT NULL, "
            "quantity VARCHAR(64) NOT NULL, timestamp DATETIME NOT NULL, "
            "period_start DATETIME NOT NULL, status VARCHAR(16) NOT NULL, "
            "received_at DATETIME NOT NULL)"
        )
        start = time.perf_counter()
        connection.execute("BEGIN")
        connection.executemany(f"INSERT INTO event ({columns}) VALUES (?,?,?,?,?,?,?,?)", stored)
        connection.execute("COMMIT")
        return len(rows) / (time.perf_counter() - start)
    finally:
        connection.close()


def _naive(at: dt.datetime) -> str:
    """A datetime as SQLAlchemy stores it in SQLite: naive UTC text with microseconds."""
    return at.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def raw_postgres(rows: list[tuple[Any, ...]], url: str) -> float:  # float-ok
    """Rows/s of COPY ... FROM STDIN into a bare table, committed."""
    table = "raw_event"
    columns = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    with psycopg.connect(postgres_conninfo(url)) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {table}")
        connection.execute(
            f"CREATE TABLE {table} (id VARCHAR(200) PRIMARY KEY, "
            "customer_id VARCHAR(64) NOT NULL, product VARCHAR(64) NOT NULL, "
            "quantity NUMERIC(38, 12) NOT NULL, timestamp TIMESTAMPTZ NOT NULL, "
            "period_start TIMESTAMPTZ NOT NULL, status VARCHAR(16) NOT NULL, "
            "received_at TIMESTAMPTZ NOT NULL)"
        )
        connection.commit()
        start = time.perf_counter()
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        connection.commit()
        return len(rows) / (time.perf_counter() - start)


# --- server -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    port: int
    pid: int  # with one worker, uvicorn serves in this very process


@contextmanager
def running_server(url: str, workers: int = 1, tiers: Path | None = None) -> Iterator[Server]:
    """`billing serve` (`workers` processes) on `url`, healthy; stopped on the way out.
    `tiers`: its tier directory (TIERS_DIR when None)."""
    port = free_port()
    env = {"BILLING_DATABASE_URL": url, "BILLING_LOG_LEVEL": "warning"}
    if tiers is not None:
        env["BILLING_TIERS_DIR"] = str(tiers)
    with tempfile.TemporaryFile() as log:
        process = start_server(port, workers, log, env)
        try:
            wait_healthy(process, port, log)
            yield Server(port=port, pid=process.pid)
        finally:
            stop_server(process)


# --- HTTP load generator ------------------------------------------------------------------


def events_request(port: int, key: str, body: bytes) -> bytes:
    """A whole POST /v1/events request: HTTP/1.1, keep-alive."""
    head = (
        f"POST /v1/events HTTP/1.1\r\n"
        f"Host: {HOST}:{port}\r\n"
        f"Authorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"\r\n"
    )
    return head.encode() + body


@dataclass
class Load:
    """What one phase saw. Requests come from `requests` until it ends or the deadline."""

    requests: Iterator[bytes]
    expected: int  # events each request must have accepted
    deadline: float  # float-ok
    sent: int = 0
    ok: int = 0
    accepted: int = 0
    latencies: list[float] = field(default_factory=list)  # float-ok
    problems: list[str] = field(default_factory=list)

    def next_request(self) -> bytes | None:
        if time.perf_counter() >= self.deadline:
            return None
        request = next(self.requests, None)
        if request is not None:
            self.sent += 1
        return request

    def record(self, status: int, body: bytes, seconds: float) -> None:  # float-ok
        self.latencies.append(seconds)
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {}
        accepted = answer.get("accepted") if isinstance(answer, dict) else None
        if isinstance(accepted, int):
            self.accepted += accepted
        if status == 200 and accepted == self.expected:
            self.ok += 1
        else:
            self.problems.append(f"status {status}, accepted {accepted}: {body[:200]!r}")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one whole response (headers, then Content-Length bytes): (status, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    if status in (204, 304):
        return status, b""  # no body, by definition
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ValueError("response without Content-Length")
    return status, await reader.readexactly(length)


async def connection(port: int, load: Load) -> None:
    """One keep-alive connection sending requests back to back; reconnects after an error."""
    request = load.next_request()
    while request is not None:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError as error:
            load.problems.append(f"connect: {error}")  # this request is dropped
            await asyncio.sleep(0.05)
            request = load.next_request()
            continue
        try:
            while request is not None:
                start = time.perf_counter()
                writer.write(request)
                status, body = await read_response(reader)
                load.record(status, body, time.perf_counter() - start)
                request = load.next_request()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            load.problems.append(f"{type(e).__name__}: {e}")
            request = load.next_request()
        finally:
            writer.close()


async def drive(port: int, load: Load, connections: int) -> float:  # float-ok
    """Run `connections` connections until `load` is done; return the seconds taken."""
    start = time.perf_counter()
    tasks = [asyncio.create_task(connection(port, load)) for _ in range(connections)]
    timeout = max(0.0, load.deadline - start) + GRACE_SECONDS
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:  # stuck on a server that stopped answering
        task.cancel()
        load.problems.append("a connection was still waiting after the grace period")
    await asyncio.gather(*pending, return_exceptions=True)
    return time.perf_counter() - start


def run_load(port: int, load: Load, connections: int) -> float:  # float-ok
    """`drive` on uvloop when it is installed (a faster load generator)."""
    return run_async(drive(port, load, connections))


def report_problems(load: Load, indent: str = "   ") -> None:
    if not load.problems:
        return
    say(f"{indent}MISMATCHES: {len(load.problems)} (first 5 shown)")
    for problem in load.problems[:5]:
        say(f"{indent}  {problem}")


# --- phases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    batches: int
    events: int  # accepted
    seconds: float  # float-ok
    per_second: float  # float-ok
    p50_ms: float  # float-ok
    p99_ms: float  # float-ok
    problems: int


def measure_batches(
    server: Server,
    key: str,
    source: EventSource,
    count: int,
    *,
    properties: bool = False,
    seconds: float = BATCH_SECONDS,  # float-ok
) -> tuple[BatchResult, list[list[Event]]]:
    """A warm-up batch, then up to `count` pre-serialized batches (no new one is sent after
    `seconds`), events with properties or not; also return the batches."""
    warm_up = [events_request(server.port, key, batch_body(source.take(BATCH, properties)))]
    warm = Load(iter(warm_up), BATCH, time.perf_counter() + seconds)
    run_load(server.port, warm, 1)
    report_problems(warm)
    batches = [source.take(BATCH, properties) for _ in range(count)]
    requests = [events_request(server.port, key, batch_body(batch)) for batch in batches]
    load = Load(iter(requests), BATCH, time.perf_counter() + seconds)
    seconds = run_load(server.port, load, BATCH_CONNECTIONS)
    report_problems(load)
    p50, p99 = (seconds * 1000 for seconds in percentiles(load.latencies))
    result = BatchResult(
        batches=load.sent,
        events=load.accepted,
        seconds=seconds,
        per_second=load.accepted / seconds,
        p50_ms=p50,
        p99_ms=p99,
        problems=len(warm.problems) + len(load.problems),
    )
    return result, batches[: load.sent]


@dataclass(frozen=True)
class SingleResult:
    requests: int  # answered 200 with the event accepted
    per_second: float  # float-ok
    p50_ms: float  # float-ok
    p99_ms: float  # float-ok
    problems: int


def single_requests(server: Server, key: str, source: EventSource) -> Iterator[bytes]:
    while True:
        yield events_request(server.port, key, batch_body(source.take(1)))


def measure_single(server: Server, key: str, source: EventSource) -> SingleResult:
    """One event per POST from SINGLE_CONNECTIONS connections: a warm-up, then a window."""
    requests = single_requests(server, key, source)
    warm = Load(requests, 1, time.perf_counter() + SINGLE_WARMUP_SECONDS)
    run_load(server.port, warm, SINGLE_CONNECTIONS)
    capped = (r for _, r in zip(range(SINGLE_MAX_REQUESTS), requests, strict=False))
    load = Load(capped, 1, time.perf_counter() + SINGLE_SECONDS)
    seconds = run_load(server.port, load, SINGLE_CONNECTIONS)
    report_problems(load)
    p50, p99 = (seconds * 1000 for seconds in percentiles(load.latencies))
    return SingleResult(
        requests=load.ok,
        per_second=load.ok / seconds,
        p50_ms=p50,
        p99_ms=p99,
        problems=len(load.problems),
    )


def proc_status_kb(pid: int, name: str) -> int | None:
    """A `VmRSS`-like field of /proc/<pid>/status, in kB (None once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(f"{name}:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """Samples VmRSS of a process every RSS_INTERVAL seconds; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kb = 0
        self.samples = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            rss = proc_status_kb(self.pid, "VmRSS")
            if rss is not None:
                self.peak_kb = max(self.peak_kb, rss)
                self.samples += 1
            self.halt.wait(RSS_INTERVAL)

    def stop(self) -> None:
        self.halt.set()
        self.join()


@dataclass(frozen=True)
class MemoryResult:
    planned: int
    events: int  # accepted
    batches: int
    seconds: float  # float-ok
    idle_mb: float  # float-ok
    peak_rss_mb: float  # float-ok  (sampled VmRSS)
    hwm_mb: float  # float-ok  (VmHWM: the kernel's own peak, since the process started)
    samples: int
    problems: int
    cut_short: bool


def memory_plan(rate: float, budget: float) -> tuple[int, str | None]:  # float-ok
    """Events to send for the memory phase, and why it was scaled down (None when it was not)."""
    expected = rate * MEMORY_SLOWDOWN
    estimate = MEMORY_EVENTS / expected
    if estimate <= budget:
        return MEMORY_EVENTS, None
    batches = max(1, int(expected * budget) // BATCH)
    reason = (
        f"SCALED DOWN from {MEMORY_EVENTS:,} to {batches * BATCH:,} events: step 3 measured "
        f"{rate:,.0f} events/s on SQLite; assuming {MEMORY_SLOWDOWN:.0%} of it on a growing "
        f"table ({expected:,.0f}/s), {MEMORY_EVENTS:,} events would take ~{estimate:,.0f} s, "
        f"over this phase's {budget:.0f} s budget"
    )
    return batches * BATCH, reason


def lazy_requests(server: Server, key: str, source: EventSource, events: int) -> Iterator[bytes]:
    for _ in range(events // BATCH):
        yield events_request(server.port, key, batch_body(source.take(BATCH)))


def measure_memory(url: str, events: int, budget: float) -> MemoryResult:  # float-ok
    """Ingest `events` in batches on a fresh server, bodies made on demand; sample its RSS."""
    key = prepare(url)
    source = EventSource(seed=3)
    with running_server(url) as server:
        idle = proc_status_kb(server.pid, "VmRSS") or 0
        sampler = RssSampler(server.pid)
        sampler.start()
        try:
            load = Load(
                lazy_requests(server, key, source, events),
                BATCH,
                time.perf_counter() + budget + MEMORY_OVERRUN,
            )
            seconds = run_load(server.port, load, BATCH_CONNECTIONS)
        finally:
            sampler.stop()
        hwm = proc_status_kb(server.pid, "VmHWM") or 0
    report_problems(load)
    return MemoryResult(
        planned=events,
        events=load.accepted,
        batches=load.sent,
        seconds=seconds,
        idle_mb=idle / 1024,
        peak_rss_mb=sampler.peak_kb / 1024,
        hwm_mb=hwm / 1024,
        samples=sampler.samples,
        problems=len(load.problems),
        cut_short=load.sent < events // BATCH,
    )


# --- per engine ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CapsResult:
    without_per_second: float  # float-ok
    with_per_second: float  # float-ok

    @property
    def ratio(self) -> float:  # float-ok
        return self.with_per_second / self.without_per_second


def set_caps(url: str, amount: Decimal | None) -> None:
    """A cap of `amount` (None: no cap) on every product of every benchmark customer."""
    catalog = load_catalog(TIERS_DIR)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            for number in range(CUSTOMERS):
                for product in catalog.products:
                    quota_service.set_cap(
                        connection=session.connection(),
                        catalog=catalog,
                        customer_id=customer_id(number),
                        product=product,
                        amount=amount,
                        actor="benchmark",
                        now=dt.datetime.now(dt.UTC),
                    )
            session.commit()
    finally:
        engine.dispose()


def measure_caps(server: Server, key: str, url: str, source: EventSource) -> CapsResult:
    """Batches without caps and with a cap on every product, in alternating rounds.

    Alternating puts both on tables of the same size (inserts slow down as tables grow).
    The caps never bind, so every event is accepted: what is measured is the cost of
    enforcing them (limits, the over-limit decision, alert thresholds) on every batch.
    """
    seconds = {False: 0.0, True: 0.0}
    events = {False: 0, True: 0}
    for _ in range(CAPS_ROUNDS):
        for capped in (False, True):
            set_caps(url, CAPS_AMOUNT if capped else None)
            result, _ = measure_batches(server, key, source, CAPS_BATCHES)
            seconds[capped] += result.seconds
            events[capped] += result.events
    set_caps(url, None)
    return CapsResult(events[False] / seconds[False], events[True] / seconds[True])


@contextmanager
def dimension_tiers() -> Iterator[Path]:
    """A temporary copy of TIERS_DIR in which product_analytics has DIMENSIONS and
    MAX_DIMENSION_VALUES (two lines after its `model = "graduated"`, in place of the
    dimensions it ships with); deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="billing-bench-tiers-") as tmp:
        tiers = Path(tmp) / "pricing_tiers"
        shutil.copytree(TIERS_DIR, tiers)
        path = tiers / "product_analytics.toml"
        shipped = path.read_text().splitlines(keepends=True)
        lines = [line for line in shipped if not line.startswith("dimensions =")]
        anchor = 'model = "graduated"'
        at = next((i for i, line in enumerate(lines) if line.strip() == anchor), None)
        if at is None:
            raise RuntimeError(f"{path.name} has no line {anchor!r} to add dimensions after")
        lines[at + 1 : at + 1] = [
            f"dimensions = {json.dumps(list(DIMENSIONS))}\n",
            f"max_dimension_values = {MAX_DIMENSION_VALUES}\n",
        ]
        path.write_text("".join(lines))
        yield tiers


@dataclass(frozen=True)
class Storage:
    """The usage_breakdown table after the dimensions rounds."""

    rows: int
    bytes: int | None  # table and its index; None when it cannot be measured
    how: str  # how it was measured, or why it could not be


def sqlite_breakdown_storage(path: Path) -> Storage:
    """Rows of usage_breakdown, and its pages (table and primary key index) from dbstat."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT count(*) FROM usage_breakdown").fetchone()[0]
        try:
            found = connection.execute(
                "SELECT SUM(pgsize), COUNT(*) FROM dbstat WHERE name LIKE '%usage_breakdown%'"
            ).fetchone()
        except sqlite3.OperationalError as error:
            return Storage(rows, None, f"dbstat is unavailable in this SQLite ({error})")
        return Storage(rows, found[0], f"dbstat: {found[1]} pages of table and index")
    finally:
        connection.close()


def postgres_breakdown_storage(url: str) -> Storage:
    """Rows of usage_breakdown, and pg_total_relation_size (table, index, TOAST)."""
    table = "usage_breakdown"
    with psycopg.connect(postgres_conninfo(url)) as connection:
        found = connection.execute(
            f"SELECT (SELECT count(*) FROM {table}), pg_total_relation_size(%s::regclass)",
            (table,),
        ).fetchone()
    assert found is not None  # an aggregate always has a row
    return Storage(
        found[0],
        found[1],
        "pg_total_relation_size: table, index and TOAST, with the dead row versions "
        "updates leave until vacuum",
    )


@dataclass(frozen=True)
class DimensionsResult:
    rounds: int
    without: BatchResult  # totals over the rounds: batches, events, seconds
    with_properties: BatchResult
    storage: Storage
    rss_idle_kb: int  # server started, nothing sent
    rss_before_kb: int  # after the first round without properties (batches' heap warm)
    rss_after_kb: int  # after the last round
    cut_short: bool  # fewer rounds or batches than planned: the phase's time cap

    @property
    def ratio(self) -> float:  # float-ok
        if not self.without.per_second:
            return math.nan
        return self.with_properties.per_second / self.without.per_second

    @property
    def bytes_per_row(self) -> float | None:  # float-ok
        if self.storage.bytes is None or not self.storage.rows:
            return None
        return self.storage.bytes / self.storage.rows

    @property
    def rss_growth_kb(self) -> int:
        return self.rss_after_kb - self.rss_before_kb

    @property
    def rss_bytes_per_value(self) -> float | None:  # float-ok
        if not self.storage.rows:
            return None
        return self.rss_growth_kb * 1024 / self.storage.rows

    @property
    def problems(self) -> int:
        return self.without.problems + self.with_properties.problems


def total(results: list[BatchResult]) -> BatchResult:
    """Batch results added up (percentiles are not: NaN)."""
    seconds = sum(r.seconds for r in results)
    events = sum(r.events for r in results)
    return BatchResult(
        batches=sum(r.batches for r in results),
        events=events,
        seconds=seconds,
        per_second=events / seconds if seconds else 0.0,  # float-ok: events/s
        p50_ms=math.nan,
        p99_ms=math.nan,
        problems=sum(r.problems for r in results),
    )


def measure_dimensions(
    url: str, key: str, source: EventSource, storage: Callable[[], Storage]
) -> DimensionsResult:
    """Step 6: batches without and with properties in alternating rounds, on a server whose
    product_analytics keeps usage per dimension value; then storage and RSS."""
    deadline = time.perf_counter() + DIMENSIONS_SECONDS
    runs: dict[bool, list[BatchResult]] = {False: [], True: []}
    rounds = 0
    cut_short = False
    with dimension_tiers() as tiers, running_server(url, tiers=tiers) as server:
        say(f"   dimensions server pid {server.pid} on port {server.port}, tiers {tiers}")
        idle = before = proc_status_kb(server.pid, "VmRSS") or 0
        while rounds < DIMENSIONS_ROUNDS:
            left = deadline - time.perf_counter()
            if rounds and left <= 0:
                cut_short = True
                break
            for properties in (False, True):
                if properties and rounds == 0:
                    before = proc_status_kb(server.pid, "VmRSS") or 0
                result, _ = measure_batches(
                    server,
                    key,
                    source,
                    DIMENSIONS_BATCHES,
                    properties=properties,
                    # float-ok: seconds
                    seconds=max(1.0, min(BATCH_SECONDS, deadline - time.perf_counter())),
                )
                runs[properties].append(result)
                cut_short = cut_short or result.batches < DIMENSIONS_BATCHES
            rounds += 1
        after = proc_status_kb(server.pid, "VmRSS") or 0
        stored = storage()
    return DimensionsResult(
        rounds=rounds,
        without=total(runs[False]),
        with_properties=total(runs[True]),
        storage=stored,
        rss_idle_kb=idle,
        rss_before_kb=before,
        rss_after_kb=after,
        cut_short=cut_short,
    )


def dimensions_phase(
    url: str, key: str, source: EventSource, storage: Callable[[], Storage]
) -> DimensionsResult:
    """Step 6, with its figures printed."""
    say(
        f"   dimensions: product_analytics by {', '.join(DIMENSIONS)} "
        f"(max {MAX_DIMENSION_VALUES:,} values), {PROJECTS} projects x {len(MODELS)} models"
    )
    d = measure_dimensions(url, key, source, storage)
    w, wo = d.with_properties, d.without
    say(
        f"   batches of {BATCH:,} with properties ({d.rounds} alternating rounds of "
        f"{DIMENSIONS_BATCHES}): {w.per_second:,.0f} events/s ({w.events:,} events, "
        f"{w.seconds:.1f} s) vs {wo.per_second:,.0f} without ({wo.events:,} events, "
        f"{wo.seconds:.1f} s): {d.ratio:.2f} (goal >= {GOAL_DIMENSIONS})  "
        f"mismatches {d.problems}"
    )
    if d.cut_short:
        say(f"   (CUT SHORT by this phase's {DIMENSIONS_SECONDS:.0f} s cap)")
    per_row = d.bytes_per_row
    if d.storage.rows == 0:
        say("   usage_breakdown: NO ROWS: the server did not keep usage by dimension")
    elif per_row is None:
        say(f"   usage_breakdown: {d.storage.rows:,} rows; bytes not measured: {d.storage.how}")
    else:
        say(
            f"   usage_breakdown: {d.storage.rows:,} rows (distinct values), "
            f"{d.storage.bytes:,} bytes: {per_row:,.0f} bytes per row ({d.storage.how})"
        )
    if d.storage.rows:
        say(
            f"   (a row per customer and combination: up to {PROJECTS * len(MODELS)} from the "
            f'batches with properties, and one "(none)" from the batches without)'
        )
    per_value = d.rss_bytes_per_value
    say(
        f"   server RSS: idle {d.rss_idle_kb / 1024:,.1f} MB, before the first batch with "
        f"properties {d.rss_before_kb / 1024:,.1f} MB, after the last {d.rss_after_kb / 1024:,.1f} "
        f"MB: {d.rss_growth_kb / 1024:+,.1f} MB"
        + (f", {per_value:+,.0f} bytes per distinct value" if per_value is not None else "")
    )
    if per_value is not None and abs(per_value) < RSS_NEAR_ZERO:
        say(
            f"   (near zero, as expected: the server keeps nothing per value in memory; "
            f"under {RSS_NEAR_ZERO} bytes per value counts as noise here)"
        )
    elif per_value is not None:
        say(
            f"   (NOT near zero, though the server keeps nothing per value in memory: the "
            f"growth comes with the batches with properties (bigger bodies and parsed "
            f"events), and was as large on a server without dimensions when this phase was "
            f"written; under {RSS_NEAR_ZERO} bytes per value would count as noise)"
        )
    return d


@dataclass(frozen=True)
class EngineResult:
    name: str
    batches: BatchResult
    raw_per_second: float  # float-ok
    single: SingleResult
    single_two_workers: SingleResult
    caps: CapsResult

    @property
    def ratio(self) -> float:  # float-ok
        return self.batches.per_second / self.raw_per_second


def run_engine(
    name: str, url: str, raw: Any, storage: Callable[[], Storage], only: str | None
) -> tuple[EngineResult | None, DimensionsResult]:
    """Steps 1-6 on one database (1 and 6 with `only` "dimensions"); `raw(rows)` times the
    baseline bulk insert of `rows`, `storage()` measures usage_breakdown."""
    say(f"{name}")
    key = prepare(url)
    result = measure_engine(name, url, key, raw) if only is None else None
    dimensions = dimensions_phase(url, key, EventSource(seed=5 if name == "SQLite" else 6), storage)
    say()
    return result, dimensions


def measure_engine(name: str, url: str, key: str, raw: Any) -> EngineResult:
    """Steps 2-5 on one prepared database."""
    source = EventSource(seed=1 if name == "SQLite" else 2)
    with running_server(url) as server:
        say(f"   server pid {server.pid} on port {server.port}")
        batch, sent = measure_batches(server, key, source, BATCHES[name])
        say(
            f"   batches of {BATCH:,} over HTTP: {batch.events:,} events in {batch.batches} "
            f"batches, {batch.seconds:.1f} s: {batch.per_second:>9,.0f} events/s  "
            f"p50 {batch.p50_ms:,.0f} ms  p99 {batch.p99_ms:,.0f} ms  mismatches {batch.problems}"
        )
        if batch.batches < BATCHES[name]:
            say(
                f"   (stopped at {batch.batches} of {BATCHES[name]} batches: "
                f"the {BATCH_SECONDS:.0f} s cap)"
            )
        rows = rows_as_stored(sent, dt.datetime.now(dt.UTC))
        del sent
        raw_rates = [raw(rows) for _ in range(RAW_RUNS)]
        raw_rate = statistics.median(raw_rates)
        say(
            f"   raw bulk insert of the same {len(rows):,} rows: {raw_rate:>9,.0f} rows/s "
            f"(median of {', '.join(f'{rate:,.0f}' for rate in raw_rates)})"
        )
        del rows
        ratio = batch.per_second / raw_rate
        say(f"   API / raw: {ratio:.3f} (goal >= {GOAL_RATIO[name]})")
        caps = measure_caps(server, key, url, source)
        say(
            f"   batches with a cap on every product ({CAPS_ROUNDS} alternating rounds of "
            f"{CAPS_BATCHES}): {caps.with_per_second:,.0f} events/s vs "
            f"{caps.without_per_second:,.0f} without: {caps.ratio:.2f} (goal >= {GOAL_CAPS})"
        )
        single = measure_single(server, key, source)
        say(
            f"   single events, {SINGLE_CONNECTIONS} connections, {SINGLE_SECONDS:.0f} s: "
            f"{single.per_second:>7,.0f} requests/s  p50 {single.p50_ms:.1f} ms  "
            f"p99 {single.p99_ms:.1f} ms  mismatches {single.problems}"
        )
    with running_server(url, workers=2) as server:
        single_two = measure_single(server, key, source)
        say(
            f"   single events, 2 server workers, {SINGLE_CONNECTIONS} connections, "
            f"{SINGLE_SECONDS:.0f} s: {single_two.per_second:>7,.0f} requests/s  "
            f"p50 {single_two.p50_ms:.1f} ms  p99 {single_two.p99_ms:.1f} ms  "
            f"mismatches {single_two.problems}"
        )
    return EngineResult(
        name=name,
        batches=batch,
        raw_per_second=raw_rate,
        single=single,
        single_two_workers=single_two,
        caps=caps,
    )


EngineRun = tuple[EngineResult | None, DimensionsResult]


def run_sqlite(workdir: Path, only: str | None) -> EngineRun:
    path = workdir / "api.db"
    return run_engine(
        "SQLite",
        f"sqlite:///{path}",
        lambda rows: raw_sqlite(rows, workdir / "raw.db"),
        lambda: sqlite_breakdown_storage(path),
        only,
    )


def run_postgres(only: str | None) -> EngineRun | str:
    """PostgreSQL's results, or why it was skipped."""
    reason = postgres_unreachable(POSTGRES_URL)
    if reason is not None:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable ({reason})"
    with postgres_database(POSTGRES_URL) as (database, url):
        say(f"(database {database}, dropped at the end)")
        return run_engine(
            "PostgreSQL",
            url,
            lambda rows: raw_postgres(rows, url),
            lambda: postgres_breakdown_storage(url),
            only,
        )


# --- report -------------------------------------------------------------------------------


def met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def summary(
    results: list[EngineResult],
    dimensions: dict[str, DimensionsResult],
    skipped: str | None,
    memory: MemoryResult | None,
) -> None:
    say("summary")
    for r in results:
        goal = GOAL_RATIO[r.name]
        say(
            f"   {r.name}: API {r.batches.per_second:,.0f} events/s "
            f"(p50 {r.batches.p50_ms:,.0f} ms, p99 {r.batches.p99_ms:,.0f} ms per {BATCH:,}), "
            f"raw {r.raw_per_second:,.0f} rows/s"
        )
        say(f"      API / raw {r.ratio:.3f}: goal >= {goal}: {met(r.ratio >= goal)}")
        say(
            f"      single events {r.single.per_second:,.0f} requests/s "
            f"(p50 {r.single.p50_ms:.1f} ms, p99 {r.single.p99_ms:.1f} ms): "
            f"goal >= {GOAL_SINGLE_PER_SECOND:,}/s: "
            f"{met(r.single.per_second >= GOAL_SINGLE_PER_SECOND)} with 1 worker"
        )
        two = r.single_two_workers
        say(
            f"      single events, 2 workers {two.per_second:,.0f} requests/s "
            f"(p50 {two.p50_ms:.1f} ms, p99 {two.p99_ms:.1f} ms): "
            f"goal >= {GOAL_SINGLE_PER_SECOND:,}/s: {met(two.per_second >= GOAL_SINGLE_PER_SECOND)}"
        )
        say(
            f"      with caps on every product {r.caps.with_per_second:,.0f} events/s vs "
            f"{r.caps.without_per_second:,.0f} without: {r.caps.ratio:.2f}: "
            f"goal >= {GOAL_CAPS}: {met(r.caps.ratio >= GOAL_CAPS)}"
        )
        if r.batches.problems or r.single.problems or two.problems:
            say(f"      MISMATCHES: {r.batches.problems} batch, {r.single.problems} single")
    for name, d in dimensions.items():
        say(
            f"   {name} dimensions: with properties {d.with_properties.per_second:,.0f} "
            f"events/s vs {d.without.per_second:,.0f} without: {d.ratio:.2f}: "
            f"goal >= {GOAL_DIMENSIONS}: {met(d.ratio >= GOAL_DIMENSIONS)}"
            + (" (CUT SHORT)" if d.cut_short else "")
        )
        per_row, per_value = d.bytes_per_row, d.rss_bytes_per_value
        stored = f"{per_row:,.0f} bytes per row" if per_row is not None else "bytes not measured"
        rss = f"{per_value:+,.0f} bytes of RSS per value" if per_value is not None else "no rows"
        say(f"      usage_breakdown {d.storage.rows:,} rows, {stored}; {rss}")
        if d.problems:
            say(f"      MISMATCHES: {d.problems}")
    if skipped:
        say(f"   PostgreSQL: skipped: {skipped}")
    if memory is not None:
        peak = max(memory.peak_rss_mb, memory.hwm_mb)
        scaled = "" if memory.events >= MEMORY_EVENTS else " (SCALED DOWN, see above)"
        say(
            f"   SQLite memory: {memory.events:,} events{scaled} in {memory.seconds:.0f} s, "
            f"peak RSS {memory.peak_rss_mb:,.0f} MB sampled / {memory.hwm_mb:,.0f} MB VmHWM: "
            f"goal < {GOAL_PEAK_RSS_MB} MB: {met(peak < GOAL_PEAK_RSS_MB)}"
        )


def memory_phase(workdir: Path, rate: float, budget: float) -> MemoryResult:  # float-ok
    events, reason = memory_plan(rate, budget)
    say(f"SQLite memory: {events:,} events in batches of {BATCH:,}, bodies made on demand")
    if reason:
        say(f"   {reason}")
    result = measure_memory(f"sqlite:///{workdir / 'memory.db'}", events, budget)
    say(
        f"   {result.events:,} events in {result.batches} batches, {result.seconds:.1f} s "
        f"({result.events / result.seconds:,.0f} events/s)"
    )
    if result.cut_short:
        say(f"   CUT SHORT at {budget + MEMORY_OVERRUN:.0f} s: the server was slower than planned")
    say(
        f"   server RSS: idle {result.idle_mb:,.0f} MB, peak {result.peak_rss_mb:,.0f} MB "
        f"({result.samples:,} samples every {RSS_INTERVAL * 1000:.0f} ms), "
        f"VmHWM {result.hwm_mb:,.0f} MB (goal < {GOAL_PEAK_RSS_MB} MB)"
    )
    say()
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--only",
        choices=["dimensions"],
        help="run only this phase (step 6, after step 1, on each engine); default: all",
    )
    return parser.parse_args(argv)


def main() -> None:
    only: str | None = parse_args().only
    started = time.perf_counter()
    say(f"Ingestion benchmark, {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}")
    say(
        f"{CUSTOMERS} customers, products {', '.join(PRODUCTS)}; batches of {BATCH:,} from "
        f"{BATCH_CONNECTIONS} keep-alive connections; client on {'uvloop' if uvloop else 'asyncio'}"
    )
    say(f"note: the load generator shares the machine's {os.cpu_count()} CPU(s) with the server")
    say()
    results: list[EngineResult] = []
    dimensions: dict[str, DimensionsResult] = {}
    skipped: str | None = None
    memory: MemoryResult | None = None
    with tempfile.TemporaryDirectory(prefix="billing-bench-") as tmp:
        workdir = Path(tmp)
        sqlite_result, dimensions["SQLite"] = run_sqlite(workdir, only)
        if sqlite_result is not None:
            results.append(sqlite_result)
        for used in workdir.iterdir():  # free the disk for the memory phase
            used.unlink()
        postgres = run_postgres(only)
        if isinstance(postgres, str):
            skipped = postgres
            say(f"PostgreSQL: skipped: {postgres}")
            say()
        else:
            postgres_result, dimensions["PostgreSQL"] = postgres
            if postgres_result is not None:
                results.append(postgres_result)
        if sqlite_result is not None:
            left = TOTAL_SECONDS - (time.perf_counter() - started)
            budget = max(10.0, min(MEMORY_SECONDS, left))
            memory = memory_phase(workdir, sqlite_result.batches.per_second, budget)
    summary(results, dimensions, skipped, memory)
    say(f"   total run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
