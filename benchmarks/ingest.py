"""Ingestion benchmarks: POST /v1/events over real HTTP, against raw inserts of the same size.

Run it from any directory:

    .venv/bin/python benchmarks/ingest.py                    (or `make bench`)
    .venv/bin/python benchmarks/ingest.py --only shapes      (steps 1-3 alone)
    .venv/bin/python benchmarks/ingest.py --only dimensions  (steps 1 and 5 alone)
    .venv/bin/python benchmarks/ingest.py --quick            (everything, scaled down: a smoke run)

It prints figures and asserts nothing about speed. Every phase is bounded in time and in
work (`Sizes`), so the whole run stops by itself in under ten minutes (seven on the
development machine, the memory phase four of them; `--only shapes` takes about two
minutes, `--quick` about one). All HTTP traffic goes to servers this script starts on
127.0.0.1; they are stopped, the PostgreSQL database it creates is dropped and its
temporary SQLite files and tier directory are deleted, whatever happens.

Each engine gets a database of its own, never the tests': SQLite in a temporary file;
PostgreSQL in a fresh database `bench_<random>` created (and dropped at the end) through
the `postgres` maintenance database of the server at BILLING_TEST_POSTGRES_URL, skipped
with a reason when it cannot be reached.

1. Prepare: migrate, create SHAPE_CUSTOMERS (1,000) customers and an ingest key.
2. Realistic shapes, on `billing serve` (one worker). Events go round-robin over the 1,000
   customers and three products; every event has a timestamp of its own, spread over the
   current period (`Stamps`), and a `project` property (product_analytics ships with that
   dimension; each customer has 1 to 5 projects). Bodies are serialized before the clock
   starts; every answer must be a 200 with every event accepted (or, for a replay, every
   event a duplicate). Each shape is followed by its raw baseline: the same rows committed
   in transactions of the same size into a bare table with only a primary key (sqlite3
   `executemany` per transaction, WAL, synchronous=NORMAL; psycopg COPY per transaction),
   the median of SIZES.raw_runs runs, each into an empty table.
   a. The Lotus-equivalent workload: 100,000 unique events in batches of 100 from two
      keep-alive connections, then 10,000 of them again (whole batches taken evenly):
      every one answered as a duplicate. Raw: the replay with INSERT OR IGNORE /
      ON CONFLICT DO NOTHING into the table holding them.
   b. Batches of 10,000: 20 of them, then 6 sent again.
   c. Single events: one event per POST from SINGLE_CONNECTIONS connections for a few
      seconds (after a warm-up) with one server worker, then on a server with
      `--workers 2`. Raw: one row per transaction from one connection.
   Goals (issue 20): engine/raw >= 0.15 for batches of 100 and >= 0.25 for batches of
   10,000; duplicates at least as fast as new events of the same size; single events
   >= 1,000 requests/s with two workers.
3. Caps (not with `--only`): batches of 10,000 over CUSTOMERS (20) customers with a cap on
   every product against batches without, in alternating rounds. Goal: >= 0.8.
4. Then, on SQLite only (not with `--only`), the server's memory while ingesting
   SIZES.memory_events events in batches of 10,000 (bodies made lazily, RSS sampled from
   /proc/<pid>/status): scaled down when the rate of step 2b says it would not fit in the
   phase's budget, and said so in the output.
5. Dimensions: a copy of the tier directory in which product_analytics gains
   `dimensions = ["project", "model"]` and `max_dimension_values = 1000`, and a server of
   its own on it (same database). Batches of BATCH events over CUSTOMERS (20) customers
   with properties (40 projects x 8 models, so up to 320 combinations per customer for
   product_analytics, plus an `sdk` property no product uses) against the same batches
   without, in alternating rounds (tables of the same size for both); every answer must be
   a 200 with all events accepted. Then the storage of `usage_breakdown` per row (one row
   per customer, product, period and distinct combination of values: pg_total_relation_size
   on PostgreSQL, the dbstat virtual table on SQLite) and the server's RSS before the first
   batch with properties and after the last, per distinct value. Rounds stop being started
   after SIZES.dimensions_seconds.
(Steps 2, 3 and 5 run per engine, SQLite first; step 4 runs last.)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import math
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
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

CUSTOMERS = 20  # the customers of the caps, dimensions and memory phases
SHAPE_CUSTOMERS = 1_000  # all created; the realistic shapes spread events over all of them
SHAPE_PROJECTS = 5  # customer c sends `project` values p0 .. p(c % 5): 1 to 5 projects each
PRODUCTS = ("product_analytics", "session_replay", "feature_flags")
BATCH = 10_000
MIN_SPREAD = dt.timedelta(minutes=10)  # when the current period began less long ago

BATCH_CONNECTIONS = 2
CAPS_AMOUNT = Decimal(1_000_000)  # on every product: enforced on every batch, never reached
GOAL_CAPS = 0.8
# Dimensions: alternating rounds of batches with and without properties, on a server whose
# product_analytics keeps usage per (project, model). New rounds stop after
# SIZES.dimensions_seconds (at least one always runs); each call of measure_batches is capped.
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
GOAL_DIMENSIONS = 0.8  # float-ok: a ratio of rates
RSS_NEAR_ZERO = 100  # bytes of RSS growth per distinct value that still count as "none"
BATCH_SECONDS = 30.0  # float-ok: seconds, the cap of one call of measure_batches
# Single events: a warm-up, then a fixed window, from SINGLE_CONNECTIONS connections.
SINGLE_CONNECTIONS = 16
SINGLE_MAX_REQUESTS = 100_000
# Memory: SIZES.memory_events on SQLite, scaled down to what fits in its budget. The plan
# assumes MEMORY_SLOWDOWN of the rate of batches of 10,000: with random ids the table's
# indexes outgrow SQLite's page cache and every batch gets slower (about 0.7 when first
# measured). New batches stop MEMORY_OVERRUN seconds after the budget, whatever the plan said.
MEMORY_SLOWDOWN = 0.7
MEMORY_OVERRUN = 10.0
RSS_INTERVAL = 0.05

GRACE_SECONDS = 60.0  # for requests in flight when a phase's window closes

# Goals of the realistic shapes (issue 20), each against a raw baseline of the same size.
GOAL_RAW_RATIO = {100: 0.15, 10_000: 0.25}  # float-ok: engine / raw, per batch size
GOAL_DUPLICATES = 1.0  # float-ok: duplicates/s over new events/s, same batch size
GOAL_SINGLE_PER_SECOND = 1_000  # with `billing serve --workers 2`
GOAL_PEAK_RSS_MB = 300


@dataclass
class Sizes:
    """How much each phase does; `--quick` scales every figure down for a smoke run."""

    lotus_events: int = 100_000  # unique events in batches of 100 (Lotus' published workload)
    lotus_duplicates: int = 10_000  # then these again, in batches of 100
    small_warm_up: int = 20  # batches of 100 before the clock starts
    big_batches: int = 20  # batches of 10,000, new
    big_replays: int = 6  # of those, sent again
    shape_seconds: float = 120.0  # float-ok: no new request after this, per measurement
    single_warm_up: float = 1.0  # float-ok: seconds
    single_seconds: float = 5.0  # float-ok: seconds
    raw_runs: int = 3  # the baseline varies run to run on a shared VM: the median counts
    raw_seconds: float = 60.0  # float-ok: no new raw transaction after this, per run
    raw_single_seconds: float = 3.0  # float-ok: one commit per row for this long
    caps_rounds: int = 3
    caps_batches: int = 5
    dimensions_rounds: int = 3
    dimensions_batches: int = 5
    dimensions_seconds: float = 60.0  # float-ok: seconds, per engine
    memory_events: int = 5_000_000
    memory_seconds: float = 300.0  # float-ok: seconds
    # The whole run: the memory phase gets less than memory_seconds when this would be
    # exceeded (the other phases are bounded by their own caps, not taken from its time).
    total_seconds: float = 900.0  # float-ok: seconds

    def scale_down(self) -> None:
        """The `--quick` figures: every phase once, small, in a minute or two per engine."""
        self.lotus_events, self.lotus_duplicates, self.small_warm_up = 5_000, 1_000, 5
        self.big_batches, self.big_replays, self.shape_seconds = 2, 1, 20.0
        self.single_warm_up, self.single_seconds = 0.5, 1.0
        self.raw_runs, self.raw_seconds, self.raw_single_seconds = 1, 10.0, 1.0
        self.caps_rounds = self.caps_batches = 1
        self.dimensions_rounds = self.dimensions_batches = 1
        self.dimensions_seconds = 15.0
        self.memory_events, self.memory_seconds, self.total_seconds = 30_000, 15.0, 15.0


SIZES = Sizes()

EVENT_COLUMNS = (
    "id",
    "customer_id",
    "product",
    "quantity",
    "timestamp",
    "period_start",
    "status",
    "received_at",
    "properties",
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


class Stamps:
    """Distinct timestamps spread over the current period (anchor day 1), each given once.

    The n-th is the period's start plus (n x STRIDE) mod SPAN microseconds, SPAN being the
    time from the period's start to a minute ago and STRIDE prime to it (about 0.618 of it):
    no two events of a run share a timestamp, and consecutive ones land far apart in the
    period, as a fleet of clients' buffered events do. Less than MIN_SPREAD into a period,
    they spread over the last MIN_SPREAD instead (some in the previous period).
    """

    def __init__(self) -> None:
        end = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        self.period = period_for(1, end)
        self.start = min(self.period.start, end - MIN_SPREAD)
        self.span = (end - self.start) // dt.timedelta(microseconds=1)
        stride = self.span * 618 // 1000 | 1
        while math.gcd(stride, self.span) != 1:
            stride += 2
        self.stride = stride
        self.count = 0

    def next(self) -> Stamp:
        n = self.count
        self.count += 1
        if n >= self.span:
            raise RuntimeError(f"more than {self.span:,} events: timestamps would repeat")
        at = self.start + dt.timedelta(microseconds=n * self.stride % self.span)
        start = self.period.start if at >= self.period.start else period_for(1, at).start
        return Stamp(text=at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), at=at, period_start=start)


@functools.cache
def stamps() -> Stamps:
    """One sequence for the whole run: every event sent has a timestamp of its own."""
    return Stamps()


class EventSource:
    """Events with unique random ids (like UUIDs), customers and products round-robin over
    `customers` customers and PRODUCTS, each with a timestamp of its own (`Stamps`).

    With `projects` (the realistic shapes), each event carries a `project` property (the
    dimension product_analytics ships with): customer c has 1 + c % SHAPE_PROJECTS projects
    and each event names one of them at random.

    With `properties` (the dimensions phase), each event carries a project, a model and an
    sdk instead. The k-th event of a (customer, product) pair (k = n // 60: customers go round
    20 and products 3) gets project k % 40 and model (k // 40) % 8, so a pair goes through
    all 320 combinations. (Taking both from n itself would give a pair only 2: n % 8 follows
    from n % 40, and n % 40 from n % 120, of which a pair sees two values.)
    """

    def __init__(self, seed: int, customers: int = CUSTOMERS, projects: bool = False) -> None:
        self.random = random.Random(seed)
        self.count = 0
        self.customers = customers
        self.projects = projects
        self.stamps = stamps()

    def take(self, size: int, properties: bool = False) -> list[Event]:
        events = []
        pairs = self.customers * len(PRODUCTS)
        for _ in range(size):
            n = self.count
            self.count += 1
            k = n // pairs
            customer = n % self.customers
            shown: dict[str, str] | None = None
            if properties:
                shown = {
                    "project": f"p{k % PROJECTS}",
                    "model": MODELS[(k // PROJECTS) % len(MODELS)],
                    "sdk": "js",
                }
            elif self.projects:
                shown = {"project": f"p{self.random.randrange(1 + customer % SHAPE_PROJECTS)}"}
            events.append(
                Event(
                    id=f"{self.random.getrandbits(128):032x}",
                    customer=customer_id(customer),
                    product=PRODUCTS[n % len(PRODUCTS)],
                    quantity=1 + n % 10,
                    stamp=self.stamps.next(),
                    properties=shown,
                )
            )
        return events


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
            properties = None
            if e.properties is not None:
                properties = json.dumps(e.properties, separators=(",", ":"), sort_keys=True)
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
                    properties,
                )
            )
    return rows


# --- databases ----------------------------------------------------------------------------


def prepare(url: str) -> str:
    """Migrate `url`, create SHAPE_CUSTOMERS customers and an ingest key; return the key."""
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            for number in range(SHAPE_CUSTOMERS):
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


RAW_TABLE = (
    "CREATE TABLE raw_event (id VARCHAR(200) NOT NULL PRIMARY KEY, "
    "customer_id VARCHAR(64) NOT NULL, product VARCHAR(64) NOT NULL, "
    "quantity {quantity} NOT NULL, timestamp {time} NOT NULL, "
    "period_start {time} NOT NULL, status VARCHAR(16) NOT NULL, "
    "received_at {time} NOT NULL, properties TEXT)"
)
RAW_COLUMNS = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)


@dataclass(frozen=True)
class RawRun:
    rows: int  # committed
    seconds: float  # float-ok: seconds
    cut_short: bool  # SIZES.raw_seconds (or the caller's cap) stopped it

    @property
    def per_second(self) -> float:  # float-ok: rows/s
        return self.rows / self.seconds if self.seconds else 0.0  # float-ok: rows/s


class Raw:
    """The baseline: the same rows into a bare table (a primary key, nothing else), one
    transaction per `batch` rows, committed. `fresh` starts from an empty table; `again`
    sends rows the table already holds, skipping them as duplicates."""

    def reset(self) -> None:
        raise NotImplementedError

    def stored(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows as this driver takes them."""
        return rows

    def connected(self) -> AbstractContextManager[Callable[[list[tuple[Any, ...]], bool], None]]:
        """A connection, as a function committing one batch (skipping duplicates with
        `ignore`) in its own transaction."""
        raise NotImplementedError

    def commit_batches(
        self,
        rows: list[tuple[Any, ...]],
        batch: int,
        ignore: bool,
        seconds: float,  # float-ok
    ) -> RawRun:
        """Commit `rows` `batch` at a time until they are done or `seconds` have passed."""
        stored = self.stored(rows)
        with self.connected() as commit:
            start = time.perf_counter()
            deadline = start + seconds
            done = 0
            for at in range(0, len(stored), batch):
                if at and time.perf_counter() >= deadline:
                    break
                chunk = stored[at : at + batch]
                commit(chunk, ignore)
                done += len(chunk)
            return RawRun(done, time.perf_counter() - start, done < len(stored))

    def fresh(self, rows: list[tuple[Any, ...]], batch: int, seconds: float) -> RawRun:  # float-ok
        self.reset()
        return self.commit_batches(rows, batch, False, seconds)

    def again(self, rows: list[tuple[Any, ...]], batch: int, seconds: float) -> RawRun:  # float-ok
        return self.commit_batches(rows, batch, True, seconds)


class RawSqlite(Raw):
    """sqlite3 `executemany` in one transaction per batch (WAL, synchronous=NORMAL, as the
    app); duplicates with INSERT OR IGNORE."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def reset(self) -> None:
        path = self.path
        for used in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            used.unlink(missing_ok=True)
        connection = self.connect()
        try:
            connection.execute(RAW_TABLE.format(quantity="VARCHAR(64)", time="DATETIME"))
        finally:
            connection.close()

    def stored(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [
            (i, c, p, str(q), _naive(t), _naive(s), st, _naive(r), props)
            for i, c, p, q, t, s, st, r, props in rows
        ]

    @contextmanager
    def connected(self) -> Iterator[Callable[[list[tuple[Any, ...]], bool], None]]:
        insert = f"INTO raw_event ({RAW_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)"
        connection = self.connect()

        def commit(chunk: list[tuple[Any, ...]], ignore: bool) -> None:
            connection.execute("BEGIN")
            connection.executemany(
                f"INSERT OR IGNORE {insert}" if ignore else f"INSERT {insert}", chunk
            )
            connection.execute("COMMIT")

        try:
            yield commit
        finally:
            connection.close()


def _naive(at: dt.datetime) -> str:
    """A datetime as SQLAlchemy stores it in SQLite: naive UTC text with microseconds."""
    return at.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class RawPostgres(Raw):
    """psycopg, one transaction per batch: COPY FROM STDIN for a batch of new rows (a plain
    INSERT for one row); duplicates with executemany of INSERT ... ON CONFLICT DO NOTHING."""

    def __init__(self, url: str) -> None:
        self.conninfo = postgres_conninfo(url)

    def reset(self) -> None:
        with psycopg.connect(self.conninfo) as connection:
            connection.execute("DROP TABLE IF EXISTS raw_event")
            connection.execute(RAW_TABLE.format(quantity="NUMERIC(38, 12)", time="TIMESTAMPTZ"))

    @contextmanager
    def connected(self) -> Iterator[Callable[[list[tuple[Any, ...]], bool], None]]:
        marks = ", ".join(["%s"] * len(EVENT_COLUMNS))
        insert = f"INSERT INTO raw_event ({RAW_COLUMNS}) VALUES ({marks})"
        with psycopg.connect(self.conninfo) as connection:

            def commit(chunk: list[tuple[Any, ...]], ignore: bool) -> None:
                with connection.cursor() as cursor:
                    if ignore:
                        cursor.executemany(f"{insert} ON CONFLICT (id) DO NOTHING", chunk)
                    elif len(chunk) == 1:
                        cursor.execute(insert, chunk[0])
                    else:
                        with cursor.copy(f"COPY raw_event ({RAW_COLUMNS}) FROM STDIN") as copy:
                            for row in chunk:
                                copy.write_row(row)
                connection.commit()

            yield commit


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
    # the outcome every event of a request must have: "accepted", or "duplicates" for a
    # replay; `accepted` adds up the events answered with it
    counted: str = "accepted"

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
        counted = answer.get(self.counted) if isinstance(answer, dict) else None
        if isinstance(counted, int):
            self.accepted += counted
        if status == 200 and counted == self.expected:
            self.ok += 1
        else:
            self.problems.append(f"status {status}, {self.counted} {counted}: {body[:200]!r}")


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


def send_batches(
    server: Server,
    key: str,
    batches: list[list[Event]],
    *,
    counted: str = "accepted",
    seconds: float = BATCH_SECONDS,  # float-ok: seconds
    connections: int = BATCH_CONNECTIONS,
) -> tuple[BatchResult, list[list[Event]]]:
    """POST `batches` (serialized before the clock starts) from `connections` keep-alive
    connections, no new one after `seconds`; every event of each must be answered `counted`.
    Also return the batches sent."""
    size = len(batches[0]) if batches else 0
    requests = [events_request(server.port, key, batch_body(batch)) for batch in batches]
    load = Load(iter(requests), size, time.perf_counter() + seconds, counted=counted)
    del requests
    elapsed = run_load(server.port, load, connections)
    report_problems(load)
    p50, p99 = (latency * 1000 for latency in percentiles(load.latencies))
    result = BatchResult(
        batches=load.sent,
        events=load.accepted,
        seconds=elapsed,
        per_second=load.accepted / elapsed,
        p50_ms=p50,
        p99_ms=p99,
        problems=len(load.problems),
    )
    return result, batches[: load.sent]


def measure_batches(
    server: Server,
    key: str,
    source: EventSource,
    count: int,
    *,
    properties: bool = False,
    seconds: float = BATCH_SECONDS,  # float-ok
) -> tuple[BatchResult, list[list[Event]]]:
    """A warm-up batch of BATCH events, then up to `count` such batches (no new one is sent
    after `seconds`), events with properties or not; also return the batches."""
    warm, _ = send_batches(server, key, [source.take(BATCH, properties)], seconds=seconds)
    batches = [source.take(BATCH, properties) for _ in range(count)]
    result, sent = send_batches(server, key, batches, seconds=seconds)
    return replace(result, problems=result.problems + warm.problems), sent


@dataclass(frozen=True)
class SingleResult:
    requests: int  # answered 200 with the event accepted
    per_second: float  # float-ok
    p50_ms: float  # float-ok
    p99_ms: float  # float-ok
    problems: int


def single_requests(
    server: Server, key: str, source: EventSource, sent: list[Event] | None = None
) -> Iterator[bytes]:
    """One request per event, made on demand; the events go to `sent` too (if given)."""
    while True:
        events = source.take(1)
        if sent is not None:
            sent.extend(events)
        yield events_request(server.port, key, batch_body(events))


def measure_single(
    server: Server, key: str, source: EventSource, sent: list[Event] | None = None
) -> SingleResult:
    """One event per POST from SINGLE_CONNECTIONS connections: a warm-up, then a window.
    The events of the window are added to `sent` (if given)."""
    warm = Load(single_requests(server, key, source), 1, time.perf_counter() + SIZES.single_warm_up)
    run_load(server.port, warm, SINGLE_CONNECTIONS)
    requests = single_requests(server, key, source, sent)
    capped = (r for _, r in zip(range(SINGLE_MAX_REQUESTS), requests, strict=False))
    load = Load(capped, 1, time.perf_counter() + SIZES.single_seconds)
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
    estimate = SIZES.memory_events / expected
    if estimate <= budget:
        return SIZES.memory_events, None
    batches = max(1, int(expected * budget) // BATCH)
    reason = (
        f"SCALED DOWN from {SIZES.memory_events:,} to {batches * BATCH:,} events: step 2b measured "
        f"{rate:,.0f} events/s on SQLite; assuming {MEMORY_SLOWDOWN:.0%} of it on a growing "
        f"table ({expected:,.0f}/s), {SIZES.memory_events:,} events would take ~{estimate:,.0f} s, "
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


# --- caps and dimensions ------------------------------------------------------------------


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
    for _ in range(SIZES.caps_rounds):
        for capped in (False, True):
            set_caps(url, CAPS_AMOUNT if capped else None)
            result, _ = measure_batches(server, key, source, SIZES.caps_batches)
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
    """The usage_breakdown table (or what the dimensions rounds added to it)."""

    rows: int
    bytes: int | None  # table and its index; None when it cannot be measured
    how: str  # how it was measured, or why it could not be

    def since(self, before: Storage) -> Storage:
        """What was added after `before` (the rows the shapes phase left are not counted)."""
        added = None
        if self.bytes is not None and before.bytes is not None:
            added = self.bytes - before.bytes
        how = self.how if not before.rows else f"{self.how}; growth since the rounds began"
        return Storage(self.rows - before.rows, added, how)


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
    """Step 5: batches without and with properties in alternating rounds, on a server whose
    product_analytics keeps usage per dimension value; then storage (what the rounds added)
    and RSS."""
    existing = storage()
    deadline = time.perf_counter() + SIZES.dimensions_seconds
    runs: dict[bool, list[BatchResult]] = {False: [], True: []}
    rounds = 0
    cut_short = False
    with dimension_tiers() as tiers, running_server(url, tiers=tiers) as server:
        say(f"   dimensions server pid {server.pid} on port {server.port}, tiers {tiers}")
        idle = before = proc_status_kb(server.pid, "VmRSS") or 0
        while rounds < SIZES.dimensions_rounds:
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
                    SIZES.dimensions_batches,
                    properties=properties,
                    # float-ok: seconds
                    seconds=max(1.0, min(BATCH_SECONDS, deadline - time.perf_counter())),
                )
                runs[properties].append(result)
                cut_short = cut_short or result.batches < SIZES.dimensions_batches
            rounds += 1
        after = proc_status_kb(server.pid, "VmRSS") or 0
        stored = storage().since(existing)
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
    """Step 5, with its figures printed."""
    say(
        f"   dimensions: product_analytics by {', '.join(DIMENSIONS)} "
        f"(max {MAX_DIMENSION_VALUES:,} values), {PROJECTS} projects x {len(MODELS)} models"
    )
    d = measure_dimensions(url, key, source, storage)
    w, wo = d.with_properties, d.without
    say(
        f"   batches of {BATCH:,} with properties ({d.rounds} alternating rounds of "
        f"{SIZES.dimensions_batches}): {w.per_second:,.0f} events/s ({w.events:,} events, "
        f"{w.seconds:.1f} s) vs {wo.per_second:,.0f} without ({wo.events:,} events, "
        f"{wo.seconds:.1f} s): {d.ratio:.2f} (goal >= {GOAL_DIMENSIONS})  "
        f"mismatches {d.problems}"
    )
    if d.cut_short:
        say(f"   (CUT SHORT by this phase's {SIZES.dimensions_seconds:.0f} s cap)")
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


# --- realistic shapes ---------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeLine:
    """One shape of traffic: the engine's rate, the raw baseline's at the same batch size,
    and its goal."""

    label: str
    size: int  # events per request (per raw transaction)
    engine: BatchResult  # per_second counts events (or duplicates) answered as expected
    raw: RawRun | None
    goal: str
    met: bool | None  # None: shown for reference, the goal is another line's
    note: str = ""

    @property
    def ratio(self) -> float:  # float-ok: engine / raw
        if self.raw is None or not self.raw.per_second:
            return math.nan
        return self.engine.per_second / self.raw.per_second


@dataclass(frozen=True)
class ShapesResult:
    lines: list[ShapeLine]
    lotus_new: BatchResult
    lotus_duplicates: BatchResult

    def line(self, label: str) -> ShapeLine:
        return next(line for line in self.lines if line.label == label)


def median_raw(runs: list[RawRun]) -> RawRun:
    """The run with the median rate (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda run: run.per_second)
    return ordered[(len(ordered) - 1) // 2]


def raw_fresh(raw: Raw, rows: list[tuple[Any, ...]], size: int) -> RawRun:
    """SIZES.raw_runs runs of the rows into an empty bare table; the median. The table is
    left holding the last run's rows, for `raw.again`."""
    return median_raw([raw.fresh(rows, size, SIZES.raw_seconds) for _ in range(SIZES.raw_runs)])


def raw_again(raw: Raw, rows: list[tuple[Any, ...]], size: int) -> RawRun:
    return median_raw([raw.again(rows, size, SIZES.raw_seconds) for _ in range(SIZES.raw_runs)])


def batch_line(label: str, size: int, engine: BatchResult, raw: RawRun) -> ShapeLine:
    goal = GOAL_RAW_RATIO[size]
    line = ShapeLine(label, size, engine, raw, f"engine/raw >= {goal}", False)
    return replace(line, met=line.ratio >= goal)


def duplicate_line(
    label: str, size: int, engine: BatchResult, raw: RawRun, new: BatchResult
) -> ShapeLine:
    ratio = engine.per_second / new.per_second if new.per_second else math.nan
    return ShapeLine(
        label,
        size,
        engine,
        raw,
        f"dup/new >= {GOAL_DUPLICATES}",
        ratio >= GOAL_DUPLICATES,
        note=f"dup/new {ratio:.2f}",
    )


def say_line(line: ShapeLine) -> None:
    e, r = line.engine, line.raw
    raw = f"{r.per_second:>9,.0f}" if r is not None else f"{'-':>9}"
    say(
        f"   {line.label:<34} {e.per_second:>9,.0f} {raw}   {line.ratio:>6.3f}   "
        + (
            line.goal
            if line.met is None
            else f"{line.goal} ({line.note + ': ' if line.note else ''}{met(line.met)})"
        )
    )
    details = [f"{e.events:,} in {e.seconds:.1f} s"]
    if not math.isnan(e.p50_ms):
        details.append(f"p50 {e.p50_ms:,.1f} ms, p99 {e.p99_ms:,.1f} ms per request")
    if r is not None:
        details.append(
            f"raw {r.rows:,} rows in {r.seconds:.2f} s"
            + (" (its time cap: fewer rows than the engine's)" if r.cut_short else "")
        )
    if e.problems:
        details.append(f"MISMATCHES {e.problems}")
    say(f"   {'':<34} ({'; '.join(details)})")


def say_header() -> None:
    say(f"   {'shape':<34} {'engine/s':>9} {'raw/s':>9}   {'ratio':>6}   goal")


def warm_up(server: Server, key: str, source: EventSource, size: int, count: int) -> None:
    """`count` batches of `size` events, not measured (connections, caches, the JIT-less
    interpreter's first paths); answers are still checked."""
    result, _ = send_batches(server, key, [source.take(size) for _ in range(count)])
    if result.problems:
        say(f"   (warm-up: {result.problems} MISMATCHES)")


def replay_of(sent: list[list[Event]], events: int) -> list[list[Event]]:
    """About `events` events of `sent` again, whole batches taken evenly across it."""
    wanted = max(1, events // len(sent[0])) if sent else 0
    step = max(1, len(sent) // wanted) if wanted else 1
    return sent[::step][:wanted]


def measure_shapes_one_worker(
    server: Server, key: str, source: EventSource, raw: Raw
) -> tuple[list[ShapeLine], BatchResult, BatchResult]:
    """Batches of 100 (the Lotus-equivalent workload and its duplicates), then batches of
    10,000 and a replay of some, each followed by its raw baseline; one server worker."""
    lines = []
    seconds = SIZES.shape_seconds
    warm_up(server, key, source, 100, SIZES.small_warm_up)
    new_small = [source.take(100) for _ in range(SIZES.lotus_events // 100)]
    lotus_new, sent = send_batches(server, key, new_small, seconds=seconds)
    del new_small
    replay = replay_of(sent, SIZES.lotus_duplicates)
    lotus_dup, _ = send_batches(server, key, replay, counted="duplicates", seconds=seconds)
    now = dt.datetime.now(dt.UTC)
    raw_new = raw_fresh(raw, rows_as_stored(sent, now), 100)
    raw_dup = raw_again(raw, rows_as_stored(replay, now), 100)
    del sent, replay
    lines.append(batch_line("batches of 100, new", 100, lotus_new, raw_new))
    lines.append(duplicate_line("batches of 100, replayed", 100, lotus_dup, raw_dup, lotus_new))
    for line in lines:
        say_line(line)

    warm_up(server, key, source, BATCH, 1)
    new_big = [source.take(BATCH) for _ in range(SIZES.big_batches)]
    big_new, sent = send_batches(server, key, new_big, seconds=seconds)
    del new_big
    replay = replay_of(sent, SIZES.big_replays * BATCH)
    big_dup, _ = send_batches(server, key, replay, counted="duplicates", seconds=seconds)
    raw_new = raw_fresh(raw, rows_as_stored(sent, now), BATCH)
    raw_dup = raw_again(raw, rows_as_stored(replay, now), BATCH)
    del sent, replay
    lines.append(batch_line(f"batches of {BATCH:,}, new", BATCH, big_new, raw_new))
    lines.append(
        duplicate_line(f"batches of {BATCH:,}, replayed", BATCH, big_dup, raw_dup, big_new)
    )
    for line in lines[2:]:
        say_line(line)
    return lines, lotus_new, lotus_dup


def single_line(label: str, single: SingleResult, raw: RawRun, workers: int) -> ShapeLine:
    engine = BatchResult(
        batches=single.requests,
        events=single.requests,
        seconds=single.requests / single.per_second if single.per_second else 0.0,  # float-ok
        per_second=single.per_second,
        p50_ms=single.p50_ms,
        p99_ms=single.p99_ms,
        problems=single.problems,
    )
    if workers != 2:
        return ShapeLine(label, 1, engine, raw, "(the goal is with 2 workers)", None)
    goal = f"requests/s >= {GOAL_SINGLE_PER_SECOND:,}"
    return ShapeLine(label, 1, engine, raw, goal, single.per_second >= GOAL_SINGLE_PER_SECOND)


def say_lotus(lotus_new: BatchResult, lotus_dup: BatchResult) -> None:
    scaled = "" if SIZES.lotus_events == Sizes.lotus_events else " (SCALED DOWN: --quick)"
    say(
        f"   Lotus-equivalent{scaled}: {lotus_new.events:,} unique events for "
        f"{SHAPE_CUSTOMERS:,} customers in batches of 100: {lotus_new.per_second:,.0f} events/s "
        f"({lotus_new.seconds:.1f} s); then {lotus_dup.events:,} duplicates: "
        f"{lotus_dup.per_second:,.0f} events/s ({lotus_dup.seconds:.1f} s)"
    )


# --- per engine ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineResult:
    name: str
    shapes: ShapesResult
    caps: CapsResult | None  # None with --only shapes

    @property
    def big_batches_per_second(self) -> float:  # float-ok: events/s
        return self.shapes.line(f"batches of {BATCH:,}, new").engine.per_second


def run_engine(
    name: str,
    url: str,
    raw: Raw,
    storage: Callable[[], Storage],
    only: str | None,
) -> tuple[EngineResult | None, DimensionsResult | None]:
    """Prepare one database, then the realistic shapes (and caps), then the dimensions
    phase; `only` keeps one of them. `raw` times the baselines, `storage()` measures
    usage_breakdown."""
    say(f"{name}")
    started = time.perf_counter()
    key = prepare(url)
    say(f"   prepared {SHAPE_CUSTOMERS:,} customers in {time.perf_counter() - started:.1f} s")
    result = measure_engine(name, url, key, raw, only) if only != "dimensions" else None
    dimensions = None
    if only in (None, "dimensions"):
        source = EventSource(seed=5 if name == "SQLite" else 6)
        dimensions = dimensions_phase(url, key, source, storage)
    say()
    return result, dimensions


def measure_engine(name: str, url: str, key: str, raw: Raw, only: str | None) -> EngineResult:
    """The realistic shapes on one prepared database (and the caps, unless `only`)."""
    source = EventSource(
        seed=1 if name == "SQLite" else 2, customers=SHAPE_CUSTOMERS, projects=True
    )
    say(
        f"   realistic shapes: {SHAPE_CUSTOMERS:,} customers round-robin, a timestamp of its "
        f"own per event (over the current period), a `project` property on every event"
    )
    say_header()
    caps = None
    with running_server(url) as server:
        lines, lotus_new, lotus_dup = measure_shapes_one_worker(server, key, source, raw)
        one_sent: list[Event] = []
        single = measure_single(server, key, source, one_sent)
        if only is None:
            caps = measure_caps(server, key, url, EventSource(seed=7 if name == "SQLite" else 8))
    with running_server(url, workers=2) as server:
        two_sent: list[Event] = []
        single_two = measure_single(server, key, source, two_sent)
    now = dt.datetime.now(dt.UTC)
    raw_single = median_raw(
        [
            raw.fresh(rows_as_stored([two_sent], now), 1, SIZES.raw_single_seconds)
            for _ in range(SIZES.raw_runs)
        ]
    )
    del one_sent, two_sent
    singles = [
        single_line(f"single events, 1 worker, {SINGLE_CONNECTIONS} conns", single, raw_single, 1),
        single_line(
            f"single events, 2 workers, {SINGLE_CONNECTIONS} conns", single_two, raw_single, 2
        ),
    ]
    for line in singles:
        say_line(line)
    say("   (raw: one row per transaction, from one connection, for the single events)")
    say_lotus(lotus_new, lotus_dup)
    if caps is not None:
        say(
            f"   batches of {BATCH:,} with a cap on every product ({SIZES.caps_rounds} alternating "
            f"rounds of {SIZES.caps_batches}, {CUSTOMERS} customers): "
            f"{caps.with_per_second:,.0f} events/s vs {caps.without_per_second:,.0f} without: "
            f"{caps.ratio:.2f} (goal >= {GOAL_CAPS})"
        )
    shapes = ShapesResult(lines + singles, lotus_new, lotus_dup)
    return EngineResult(name=name, shapes=shapes, caps=caps)


EngineRun = tuple[EngineResult | None, DimensionsResult | None]


def run_sqlite(workdir: Path, only: str | None) -> EngineRun:
    path = workdir / "api.db"
    return run_engine(
        "SQLite",
        f"sqlite:///{path}",
        RawSqlite(workdir / "raw.db"),
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
            RawPostgres(url),
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
        say(f"   {r.name}: realistic shapes ({SHAPE_CUSTOMERS:,} customers, distinct timestamps)")
        say_header()
        for line in r.shapes.lines:
            say_line(line)
        say_lotus(r.shapes.lotus_new, r.shapes.lotus_duplicates)
        if r.caps is not None:
            say(
                f"      with caps on every product {r.caps.with_per_second:,.0f} events/s vs "
                f"{r.caps.without_per_second:,.0f} without: {r.caps.ratio:.2f}: "
                f"goal >= {GOAL_CAPS}: {met(r.caps.ratio >= GOAL_CAPS)}"
            )
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
        scaled = "" if memory.events >= SIZES.memory_events else " (SCALED DOWN, see above)"
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
        choices=["shapes", "dimensions"],
        help="run only this phase (after preparing each engine's database); default: all",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="scale every phase down (a smoke run of a minute or two per engine)",
    )
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    only: str | None = args.only
    if args.quick:
        SIZES.scale_down()
    started = time.perf_counter()
    say(f"Ingestion benchmark, {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}")
    say(
        f"products {', '.join(PRODUCTS)}; batches from {BATCH_CONNECTIONS} keep-alive "
        f"connections, single events from {SINGLE_CONNECTIONS}; client on "
        f"{'uvloop' if uvloop else 'asyncio'}" + ("; --quick: SCALED DOWN" if args.quick else "")
    )
    say(f"note: the load generator shares the machine's {os.cpu_count()} CPU(s) with the server")
    say()
    results: list[EngineResult] = []
    dimensions: dict[str, DimensionsResult] = {}
    skipped: str | None = None
    memory: MemoryResult | None = None
    with tempfile.TemporaryDirectory(prefix="billing-bench-") as tmp:
        workdir = Path(tmp)
        sqlite_result, sqlite_dimensions = run_sqlite(workdir, only)
        if sqlite_result is not None:
            results.append(sqlite_result)
        if sqlite_dimensions is not None:
            dimensions["SQLite"] = sqlite_dimensions
        for used in workdir.iterdir():  # free the disk for the memory phase
            used.unlink()
        postgres = run_postgres(only)
        if isinstance(postgres, str):
            skipped = postgres
            say(f"PostgreSQL: skipped: {postgres}")
            say()
        else:
            postgres_result, postgres_dimensions = postgres
            if postgres_result is not None:
                results.append(postgres_result)
            if postgres_dimensions is not None:
                dimensions["PostgreSQL"] = postgres_dimensions
        if sqlite_result is not None and only is None:
            left = SIZES.total_seconds - (time.perf_counter() - started)
            budget = max(min(10.0, SIZES.memory_seconds), min(SIZES.memory_seconds, left))
            memory = memory_phase(workdir, sqlite_result.big_batches_per_second, budget)
    summary(results, dimensions, skipped, memory)
    say(f"   total run time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
