"""Pricing benchmarks: in-process quotes, a naive per-unit baseline, POST /v1/quote over HTTP.

Run it from any directory:

    .venv/bin/python benchmarks/pricing.py        (or `make bench`)

It prints figures and asserts nothing about speed. Every phase is bounded both in time and
in work, so the whole run stops by itself in well under two minutes. All HTTP traffic goes to
a server this script starts on 127.0.0.1 and stops again before it exits.

1. In-process: `billing.quotes.quote` (and `quote` + `quote_public` rendered to JSON) for a
   6-product month.
2. Baseline: a naive loop pricing every unit one at a time, against the engine, on one
   smaller month (BASELINE_USAGE) so the naive loop finishes; the two amounts must agree.
3. HTTP: `billing serve --workers N` driven by an asyncio keep-alive load generator.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

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

from billing.catalog import Catalog, load_catalog
from billing.money import EXACT, ZERO
from billing.pricing import Quote
from billing.pricing.plan import Model, PricePlan, Tier
from billing.quotes import quote, quote_public

USAGE: dict[str, Decimal] = {
    "product_analytics": Decimal(3_000_000),
    "session_replay": Decimal(25_000),
    "feature_flags": Decimal(4_000_000),
    "surveys": Decimal(2_500),
    "data_warehouse": Decimal(12_000_000),
    "error_tracking": Decimal(600_000),
}
# The naive loop walks every unit, so it gets a smaller month: the three products with large
# free allowances scaled down 100x (still free), the other three at full size, crossing
# several paid tiers each. Both sides price this same vector.
BASELINE_USAGE: dict[str, Decimal] = {
    "product_analytics": Decimal(30_000),
    "session_replay": Decimal(25_000),
    "feature_flags": Decimal(40_000),
    "surveys": Decimal(2_500),
    "data_warehouse": Decimal(120_000),
    "error_tracking": Decimal(600_000),
}

GOAL_QUOTES_PER_SECOND = 20_000
GOAL_REQUESTS_PER_SECOND = 1_500

# Bounds: in-process loops stop at whichever comes first, the time or the iteration count.
IN_PROCESS_SECONDS = 3.0
IN_PROCESS_WARMUP_SECONDS = 0.5
IN_PROCESS_MAX_ITERATIONS = 500_000
NAIVE_ROUNDS = 2

# HTTP load: C keep-alive connections, a warm-up, a fixed measured window, a request cap.
CONNECTIONS = 32
HTTP_WARMUP_SECONDS = 1.0
HTTP_SECONDS = 8.0
HTTP_MAX_REQUESTS = 200_000
HTTP_GRACE_SECONDS = 5.0
WORKER_COUNTS = (1, 2)


# --- in-process ---------------------------------------------------------------------------


def per_second(work: Callable[[], object], seconds: float, limit: int) -> float:  # float-ok
    """Calls of `work` per second, single thread, for `seconds` or `limit` calls at most."""
    batch = 50
    iterations = 0
    start = time.perf_counter()
    deadline = start + seconds
    while iterations < limit and time.perf_counter() < deadline:
        for _ in range(batch):
            work()
        iterations += batch
    return iterations / (time.perf_counter() - start)


def measure_in_process(catalog: Catalog, day: dt.date) -> tuple[float, float]:  # float-ok
    """(quotes/s, quotes rendered as the API's JSON/s) for USAGE priced on `day`."""

    def price() -> Quote:
        return quote(catalog=catalog, usage=USAGE, at=day)

    def price_and_render() -> object:
        return quote_public(price(), catalog=catalog, at=day).model_dump_json(by_alias=True)

    per_second(price_and_render, IN_PROCESS_WARMUP_SECONDS, IN_PROCESS_MAX_ITERATIONS)
    quotes = per_second(price, IN_PROCESS_SECONDS, IN_PROCESS_MAX_ITERATIONS)
    rendered = per_second(price_and_render, IN_PROCESS_SECONDS, IN_PROCESS_MAX_ITERATIONS)
    return quotes, rendered


# --- naive baseline -----------------------------------------------------------------------


def naive_charge(plan: PricePlan, quantity: Decimal) -> Decimal:
    """Price `quantity` one unit at a time: find each unit's tier, add its unit price.

    Deliberately slow and obvious, to check the engine against and to time it against.
    Flat fees: graduated/package add each tier's fee when its first unit is reached; volume
    prices every unit at the tier holding the whole quantity and adds that tier's fee.
    """
    units = int(quantity)
    if units != quantity:
        raise ValueError(f"the naive loop prices whole units only, got {quantity}")
    if plan.model is Model.PACKAGE:
        assert plan.package_size is not None
        units = -(-units // plan.package_size)  # ceil: packages started
    total = ZERO
    with localcontext(EXACT):
        if plan.model is Model.VOLUME:
            if units == 0:
                return total
            _, tier = _tier_of(plan, units)
            for _ in range(units):
                total += tier.unit_price
            return total + tier.flat_fee
        for unit in range(1, units + 1):
            lower, tier = _tier_of(plan, unit)
            if unit == lower + 1:
                total += tier.flat_fee
            total += tier.unit_price
    return total


def _tier_of(plan: PricePlan, unit: int) -> tuple[Decimal, Tier]:
    """The (lower bound, tier) that unit number `unit` falls in: lower < unit <= up_to."""
    for lower, tier in zip(plan.lowers, plan.tiers, strict=True):
        if tier.up_to is None or unit <= tier.up_to:
            return lower, tier
    raise AssertionError("the last tier is unbounded")


def naive_quote(catalog: Catalog, usage: Mapping[str, Decimal], day: dt.date) -> dict[str, Decimal]:
    """Each product's exact charge, priced by the naive loop."""
    return {key: naive_charge(_plan_at(catalog, key, day), q) for key, q in usage.items()}


def engine_amounts(
    catalog: Catalog, usage: Mapping[str, Decimal], day: dt.date
) -> dict[str, Decimal]:
    """Each product's exact (unrounded) charge, as the engine's quote computes it."""
    result = quote(catalog=catalog, usage=usage, at=day)
    return {line.product: line.charge.amount for line in result.lines}


def _plan_at(catalog: Catalog, key: str, day: dt.date) -> PricePlan:
    version = catalog.products[key].version_at(day)
    assert version is not None, f"{key} has no price in force on {day}"
    return version.plan


@dataclass(frozen=True)
class Baseline:
    naive_per_second: float  # float-ok
    engine_per_second: float  # float-ok
    agree: bool
    amount: Decimal


def measure_baseline(catalog: Catalog, day: dt.date) -> Baseline:
    """Naive loop vs the engine on BASELINE_USAGE; both must price it the same."""
    scaled = BASELINE_USAGE
    naive_seconds = []
    naive: dict[str, Decimal] = {}
    for _ in range(NAIVE_ROUNDS):
        start = time.perf_counter()
        naive = naive_quote(catalog, scaled, day)
        naive_seconds.append(time.perf_counter() - start)
    engine = engine_amounts(catalog, scaled, day)
    engine_rate = per_second(
        lambda: quote(catalog=catalog, usage=scaled, at=day),
        IN_PROCESS_SECONDS,
        IN_PROCESS_MAX_ITERATIONS,
    )
    return Baseline(
        naive_per_second=1 / min(naive_seconds),
        engine_per_second=engine_rate,
        agree=naive == engine,
        amount=sum(engine.values(), ZERO),
    )


# --- HTTP: server -------------------------------------------------------------------------


# --- HTTP: load generator -----------------------------------------------------------------


def quote_request(port: int) -> bytes:
    """The full POST /v1/quote request, built once: HTTP/1.1, keep-alive, USAGE as ints."""
    body = json.dumps({"usage": {key: int(q) for key, q in USAGE.items()}}).encode()
    head = (
        f"POST /v1/quote HTTP/1.1\r\n"
        f"Host: {HOST}:{port}\r\n"
        f"Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: keep-alive\r\n"
        f"\r\n"
    )
    return head.encode() + body


@dataclass
class Load:
    """What one load phase saw."""

    deadline: float  # float-ok
    max_requests: int
    started: int = 0
    ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)  # float-ok

    def more(self) -> bool:
        return self.started < self.max_requests and time.perf_counter() < self.deadline


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one whole response (headers, then Content-Length bytes); return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ValueError("response without Content-Length")
    await reader.readexactly(length)
    return status


async def connection(port: int, request: bytes, load: Load) -> None:
    """One keep-alive connection sending requests back to back; reconnects after an error."""
    while load.more():
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            load.errors += 1
            await asyncio.sleep(0.05)
            continue
        try:
            while load.more():
                load.started += 1
                start = time.perf_counter()
                writer.write(request)
                status = await read_response(reader)
                load.latencies.append(time.perf_counter() - start)
                if status == 200:
                    load.ok += 1
                else:
                    load.errors += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            load.errors += 1
        finally:
            writer.close()


async def drive(port: int, request: bytes, span: float, cap: int) -> tuple[Load, float]:  # float-ok
    """Run CONNECTIONS connections for `span` seconds; return what they saw and the time taken."""
    start = time.perf_counter()
    load = Load(deadline=start + span, max_requests=cap)
    tasks = [asyncio.create_task(connection(port, request, load)) for _ in range(CONNECTIONS)]
    _, pending = await asyncio.wait(tasks, timeout=span + HTTP_GRACE_SECONDS)
    for task in pending:  # stuck on a server that stopped answering
        task.cancel()
        load.errors += 1
    await asyncio.gather(*pending, return_exceptions=True)
    return load, time.perf_counter() - start


@dataclass(frozen=True)
class HttpResult:
    workers: int
    requests_per_second: float  # float-ok
    p50_ms: float  # float-ok
    p99_ms: float  # float-ok
    ok: int
    errors: int
    client_cpu: float  # float-ok  share of one core the load generator used


async def load_test(port: int, workers: int) -> HttpResult:
    """Warm up, then measure POST /v1/quote for HTTP_SECONDS."""
    request = quote_request(port)
    await drive(port, request, HTTP_WARMUP_SECONDS, HTTP_MAX_REQUESTS)
    cpu_start = time.process_time()
    load, elapsed = await drive(port, request, HTTP_SECONDS, HTTP_MAX_REQUESTS)
    cpu = time.process_time() - cpu_start
    p50, p99 = percentiles(load.latencies)
    return HttpResult(
        workers=workers,
        requests_per_second=load.ok / elapsed,
        p50_ms=p50 * 1000,
        p99_ms=p99 * 1000,
        ok=load.ok,
        errors=load.errors,
        client_cpu=cpu / elapsed,
    )


def measure_http(workers: int) -> HttpResult:
    """Start `billing serve --workers N`, load it, and stop it whatever happens. The server
    has a database of its own (never the development or test one) and the public quote
    limit off: the load comes from one address, and 120 quotes a minute would measure the
    limiter, not the pricing."""
    port = free_port()
    with tempfile.TemporaryFile() as log, tempfile.TemporaryDirectory() as directory:
        env = {
            "BILLING_DATABASE_URL": f"sqlite:///{directory}/bench.db",
            "BILLING_QUOTE_RATE_PER_MINUTE": "0",
            "BILLING_SCHEDULER": "0",
        }
        server = start_server(port, workers, log, env)
        try:
            wait_healthy(server, port, log)
            return run_async(load_test(port, workers))
        finally:
            stop_server(server)


# --- report -------------------------------------------------------------------------------


def main() -> None:
    catalog = load_catalog(TIERS_DIR)
    day = dt.datetime.now(dt.UTC).date()  # what POST /v1/quote uses without "at"
    usage = ", ".join(f"{key}={int(q):,}" for key, q in USAGE.items())
    print(f"Pricing benchmark, {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}")
    print(f"usage vector: {usage}; priced at {day}")
    print()

    print("1. in-process, single thread")
    quotes_per_second, rendered_per_second = measure_in_process(catalog, day)
    print(f"   quote():                {quotes_per_second:>10,.0f} quotes/s")
    print(f"   quote() + JSON answer:  {rendered_per_second:>10,.0f} quotes/s")
    print()

    baseline_usage = ", ".join(f"{key}={int(q):,}" for key, q in BASELINE_USAGE.items())
    print("2. naive per-unit loop vs the engine, on one smaller month (identical input)")
    print(f"   baseline vector: {baseline_usage}")
    base = measure_baseline(catalog, day)
    ratio = base.engine_per_second / base.naive_per_second
    print(f"   naive loop: {base.naive_per_second:>10,.1f} quotes/s (best of {NAIVE_ROUNDS})")
    print(f"   engine:     {base.engine_per_second:>10,.0f} quotes/s")
    print(f"   engine / naive: {ratio:,.0f}x")
    print(f"   agree: {'yes' if base.agree else 'no'} (exact total {base.amount})")
    print()

    print(f"3. POST /v1/quote over HTTP on {HOST}, {CONNECTIONS} keep-alive connections,")
    print(f"   {HTTP_WARMUP_SECONDS:.0f} s warm-up + {HTTP_SECONDS:.0f} s measured, ", end="")
    print(f"cap {HTTP_MAX_REQUESTS:,} requests, client on {'uvloop' if uvloop else 'asyncio'}")
    print(
        f"   note: the load generator shares the machine's {os.cpu_count()} CPU(s) with the server"
    )
    results = []
    for workers in WORKER_COUNTS:
        result = measure_http(workers)
        results.append(result)
        print(
            f"   workers={workers}: {result.requests_per_second:>8,.0f} req/s  "
            f"p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms  "
            f"ok {result.ok:,}  errors {result.errors}  "
            f"client CPU {result.client_cpu:.2f} core"
        )
    print()

    best = max(results, key=lambda r: r.requests_per_second)
    print("summary")
    print(f"   in-process quotes/s: {quotes_per_second:,.0f} (goal >= {GOAL_QUOTES_PER_SECOND:,})")
    print(f"   in-process quotes+json/s: {rendered_per_second:,.0f}")
    print(
        f"   engine vs naive per-unit loop: {ratio:,.0f}x "
        f"(same amounts: {'yes' if base.agree else 'no'})"
    )
    for result in results:
        print(
            f"   HTTP req/s, workers={result.workers}: {result.requests_per_second:,.0f} "
            f"(goal >= {GOAL_REQUESTS_PER_SECOND:,}), p99 {result.p99_ms:.1f} ms, "
            f"errors {result.errors}"
        )
    print(f"   best HTTP: workers={best.workers}, {best.requests_per_second:,.0f} req/s")


if __name__ == "__main__":
    main()
