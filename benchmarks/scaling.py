"""Scaling curve: 1, 2 and 3 API replicas on one PostgreSQL, ingesting realistic batches.

Run it from any directory (needs PostgreSQL at BILLING_TEST_POSTGRES_URL's server):

    .venv/bin/python benchmarks/scaling.py [--seconds 20] [--connections 6]

It prints figures and asserts nothing about speed; it stops by itself in about two
minutes. Everything runs in a database of its own (`bench_<random>`, created and dropped).

1. Prepare: 1,000 customers and an ingest key (benchmarks/ingest.py `prepare`).
2. For N = 1, 2, 3: start N `billing serve` processes (one worker each, no scheduler) on
   the database, and send batches of BATCH events (the realistic shape of ingest.py:
   customers round-robin over 1,000, a timestamp of its own per event, a `project`
   property) from CONNECTIONS keep-alive connections spread evenly over the replicas, for
   SECONDS. Every answer must be a 200 with all its events accepted. Events/s, p50, p99.
3. Baseline, in the same run: the same number of rows committed BATCH at a time with COPY
   into a bare table (ingest.py `RawPostgres`): what the primary takes with no engine in
   front. Each N's rate is printed against it.
4. The arithmetic of where one primary stops (docs/operations.md, "Scaling").

The load generator, the replicas and PostgreSQL share the machine's cores: on a small
machine the curve shows CPU sharing as much as the primary's limit, and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import time
from contextlib import ExitStack

from harness import percentiles, run_async
from ingest import (
    POSTGRES_URL,
    Event,
    EventSource,
    Load,
    RawPostgres,
    batch_body,
    connection,
    events_request,
    postgres_database,
    postgres_unreachable,
    prepare,
    report_problems,
    rows_as_stored,
    running_server,
)

BATCH = 100
REPLICAS = (1, 2, 3)
SAMPLE_CUSTOMERS = 100_000  # the arithmetic: a PostHog-scale customer base
SAMPLE_PRODUCTS = 10


def say(*parts: object) -> None:
    print(*parts, flush=True)


async def _spread(ports: list[int], load: Load, connections: int) -> float:  # float-ok
    start = time.perf_counter()
    tasks = [
        asyncio.create_task(connection(ports[n % len(ports)], load)) for n in range(connections)
    ]
    await asyncio.gather(*tasks)
    return time.perf_counter() - start


def measure(
    url: str,
    key: str,
    replicas: int,
    seconds: float,  # float-ok
    connections: int,
) -> tuple[int, float, float, float, int, list[list[Event]]]:  # float-ok
    """N replicas on `url`: (events accepted, seconds, p50 ms, p99 ms, problems, the
    batches made for the run)."""
    source = EventSource(seed=replicas, customers=1_000, projects=True)
    with ExitStack() as stack:
        servers = [stack.enter_context(running_server(url)) for _ in range(replicas)]
        ports = [server.port for server in servers]
        # enough batches for the window at any plausible rate; serialized before the clock
        batches = [source.take(BATCH) for _ in range(int(seconds * 150))]
        requests = iter(
            events_request(ports[0], key, batch_body(batch)) for batch in batches
        )  # the Host header names the first replica: the servers do not check it
        warm_up = [next(requests) for _ in range(connections)]
        warm = Load(iter(warm_up), BATCH, time.perf_counter() + 60)
        run_async(_spread(ports, warm, connections))
        load = Load(requests, BATCH, time.perf_counter() + seconds)
        elapsed = run_async(_spread(ports, load, connections))
        report_problems(load)
        p50, p99 = (latency * 1000 for latency in percentiles(load.latencies))
        return load.accepted, elapsed, p50, p99, len(load.problems), batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)  # float-ok
    parser.add_argument("--connections", type=int, default=6)
    arguments = parser.parse_args()
    unreachable = postgres_unreachable(POSTGRES_URL)
    if unreachable:
        say(f"PostgreSQL unreachable ({unreachable}): nothing measured")
        return
    say(f"Scaling benchmark, {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}")
    say(
        f"batches of {BATCH} events over 1,000 customers, {arguments.connections} "
        f"connections spread over the replicas, {arguments.seconds:.0f} s each"
    )
    rates = {}
    with postgres_database(POSTGRES_URL) as (_, url):
        key = prepare(url)
        for replicas in REPLICAS:
            accepted, elapsed, p50, p99, problems, batches = measure(
                url, key, replicas, arguments.seconds, arguments.connections
            )
            rates[replicas] = accepted / elapsed
            say(
                f"   replicas={replicas}: {rates[replicas]:>8,.0f} events/s  p50 {p50:6.1f} ms  "
                f"p99 {p99:6.1f} ms  problems {problems}"
            )
        rows = rows_as_stored(batches, dt.datetime.now(dt.UTC))
        raw = RawPostgres(url)
        baseline = raw.fresh(rows, BATCH, arguments.seconds).per_second
    say(f"   raw COPY, {BATCH} rows a transaction: {baseline:>8,.0f} rows/s (baseline)")
    say("summary")
    for replicas, rate in rates.items():
        say(
            f"   {replicas} replica(s): {rate:,.0f} events/s = {rate / baseline:.3f}x raw, "
            f"{rate / rates[1]:.2f}x one replica"
        )
    best = max(rates.values())
    per_day = best * 86_400
    say(
        f"   one primary at the best rate: {per_day / 1e6:,.0f} million events a day; "
        f"{SAMPLE_CUSTOMERS:,} customers x {SAMPLE_PRODUCTS} products sending one "
        f"aggregated event a minute each make "
        f"{SAMPLE_CUSTOMERS * SAMPLE_PRODUCTS * 1440 / 1e6:,.0f} million a day "
        f"({SAMPLE_CUSTOMERS * SAMPLE_PRODUCTS * 1440 / 86_400:,.0f} events/s)"
    )


if __name__ == "__main__":
    main()
