"""Ingestion benchmarks: POST /v1/events over real HTTP, against a raw bulk insert baseline.

Run it from any directory:

    .venv/bin/python benchmarks/ingest.py        (or `make bench`)

It prints figures and asserts nothing about speed. Every phase is bounded in time and in
work, so the whole run stops by itself in under seven minutes (the 5-million-event memory
phase is most of it). All HTTP traffic goes to
servers this script starts on 127.0.0.1; they are stopped, the PostgreSQL schema it
creates is dropped and its temporary SQLite files are deleted, whatever happens.

For each engine (SQLite in a temporary file; PostgreSQL in a fresh schema of the database
at BILLING_TEST_POSTGRES_URL, skipped with a reason when it cannot be reached):

1. Prepare: migrate, create CUSTOMERS customers and an ingest key.
2. Start `billing serve` (one worker) on a free port and wait for /healthz.
3. Batches: POST /v1/events with BATCH events each (unique random ids, customers and
   products spread, integer quantities, timestamps about a minute ago) from two keep-alive
   connections; bodies are serialized before the clock starts. Every answer must be a 200
   with all events accepted.
4. Baseline: the same rows bulk-inserted into a bare table with only a primary key, with
   sqlite3 `executemany` in one transaction (WAL, synchronous=NORMAL) or psycopg COPY.
5. Single events: one event per POST from SINGLE_CONNECTIONS keep-alive connections.

Then, on SQLite only, the server's memory while ingesting MEMORY_EVENTS events (bodies made
lazily, RSS sampled from /proc/<pid>/status): scaled down when the rate measured in step 3
says it would not fit in MEMORY_SECONDS, and said so in the output.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
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
TOTAL_SECONDS = 400.0
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


def customer_id(number: int) -> str:
    return f"bench_{number:03d}"


class EventSource:
    """Events with unique random ids (like UUIDs), customers and products round-robin."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.count = 0
        last = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=1)
        self.stamps = [_stamp(last - dt.timedelta(milliseconds=ms)) for ms in range(STAMPS)]

    def take(self, size: int) -> list[Event]:
        events = []
        for _ in range(size):
            n = self.count
            self.count += 1
            events.append(
                Event(
                    id=f"{self.random.getrandbits(128):032x}",
                    customer=customer_id(n % CUSTOMERS),
                    product=PRODUCTS[n % len(PRODUCTS)],
                    quantity=1 + n % 10,
                    stamp=self.stamps[n % STAMPS],
                )
            )
        return events


def _stamp(at: dt.datetime) -> Stamp:
    text = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return Stamp(text=text, at=at, period_start=period_for(1, at).start)


def batch_body(events: list[Event]) -> bytes:
    """The JSON body of POST /v1/events for `events`."""
    return json.dumps(
        {
            "events": [
                {
                    "id": e.id,
                    "customer": e.customer,
                    "product": e.product,
                    "quantity": e.quantity,
                    "timestamp": e.stamp.text,
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
def postgres_schema(url: str) -> Iterator[tuple[str, str]]:
    """A fresh schema; yield (its name, a URL whose search_path is it). Dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    conninfo = postgres_conninfo(url)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in url else "?"
    try:
        yield schema, f"{url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


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


def raw_postgres(rows: list[tuple[Any, ...]], url: str, schema: str) -> float:  # float-ok
    """Rows/s of COPY ... FROM STDIN into a bare table, committed."""
    table = f'"{schema}".raw_event'
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
def running_server(url: str, workers: int = 1) -> Iterator[Server]:
    """`billing serve` (`workers` processes) on `url`, healthy; stopped on the way out."""
    port = free_port()
    env = {"BILLING_DATABASE_URL": url, "BILLING_LOG_LEVEL": "warning"}
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
    server: Server, key: str, source: EventSource, count: int
) -> tuple[BatchResult, list[list[Event]]]:
    """A warm-up batch, then up to `count` pre-serialized batches; also return the batches."""
    warm_up = [events_request(server.port, key, batch_body(source.take(BATCH)))]
    warm = Load(iter(warm_up), BATCH, time.perf_counter() + BATCH_SECONDS)
    run_load(server.port, warm, 1)
    report_problems(warm)
    batches = [source.take(BATCH) for _ in range(count)]
    requests = [events_request(server.port, key, batch_body(batch)) for batch in batches]
    load = Load(iter(requests), BATCH, time.perf_counter() + BATCH_SECONDS)
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
        problems=len(load.problems),
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


def run_engine(name: str, url: str, raw: Any) -> EngineResult:
    """Steps 1-5 on one database; `raw(rows)` times the baseline bulk insert of `rows`."""
    say(f"{name}")
    key = prepare(url)
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
    say()
    return EngineResult(
        name=name,
        batches=batch,
        raw_per_second=raw_rate,
        single=single,
        single_two_workers=single_two,
        caps=caps,
    )


def run_sqlite(workdir: Path) -> EngineResult:
    url = f"sqlite:///{workdir / 'api.db'}"
    return run_engine("SQLite", url, lambda rows: raw_sqlite(rows, workdir / "raw.db"))


def run_postgres() -> EngineResult | str:
    """PostgreSQL's result, or why it was skipped."""
    reason = postgres_unreachable(POSTGRES_URL)
    if reason is not None:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable ({reason})"
    with postgres_schema(POSTGRES_URL) as (schema, url):
        say(f"(schema {schema}, dropped at the end)")
        return run_engine("PostgreSQL", url, lambda rows: raw_postgres(rows, POSTGRES_URL, schema))


# --- report -------------------------------------------------------------------------------


def met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def summary(results: list[EngineResult], skipped: str | None, memory: MemoryResult | None) -> None:
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


def main() -> None:
    started = time.perf_counter()
    say(f"Ingestion benchmark, {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}")
    say(
        f"{CUSTOMERS} customers, products {', '.join(PRODUCTS)}; batches of {BATCH:,} from "
        f"{BATCH_CONNECTIONS} keep-alive connections; client on {'uvloop' if uvloop else 'asyncio'}"
    )
    say(f"note: the load generator shares the machine's {os.cpu_count()} CPU(s) with the server")
    say()
    results: list[EngineResult] = []
    skipped: str | None = None
    memory: MemoryResult | None = None
    with tempfile.TemporaryDirectory(prefix="billing-bench-") as tmp:
        workdir = Path(tmp)
        sqlite_result = run_sqlite(workdir)
        results.append(sqlite_result)
        for used in workdir.iterdir():  # free the disk for the memory phase
            used.unlink()
        postgres = run_postgres()
        if isinstance(postgres, str):
            skipped = postgres
            say(f"PostgreSQL: skipped: {postgres}")
            say()
        else:
            results.append(postgres)
        left = TOTAL_SECONDS - (time.perf_counter() - started)
        budget = max(10.0, min(MEMORY_SECONDS, left))
        memory = memory_phase(workdir, sqlite_result.batches.per_second, budget)
    summary(results, skipped, memory)
    say(f"   total run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
