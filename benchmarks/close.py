"""Closing 10,000 customers x 6 products into invoices, on SQLite and PostgreSQL.

Run it with `.venv/bin/python benchmarks/close.py` (or `make bench`). It prints figures and
never fails on speed (DEVELOPERS.md: speed is measured, not asserted).

1. Prepare: CUSTOMERS customers created in October, each with running totals for all six
   products in October (written through the metering store, as ingestion writes them),
   every tenth with a spend cap that binds, every seventh with a percentage discount.
2. Close: a separate process runs `close_due` as at 2026-11-01 02:00 (grace 1 h) and
   reports invoices and seconds; its peak RSS comes from the kernel (wait4: the largest of
   the process and the workers it spawned). On PostgreSQL the close runs twice, on two
   databases prepared alike: in one process, then with the job's default processes
   (BILLING_CLOSE_PROCESSES unset: 2), in this order, so the ratio is of the same run.
Goals: >= 1,000 invoices/s on SQLite and on PostgreSQL (issue 20, with the default
processes); peak RSS < 400 MB per process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from harness import REPO, TIERS_DIR
from ingest import POSTGRES_URL, postgres_database, postgres_unreachable
from sqlalchemy import insert
from sqlmodel import Session

from billing.caps.models import SpendCap
from billing.catalog import load_catalog
from billing.customers.models import Customer
from billing.customers.periods import period_for
from billing.db import make_engine, upgrade
from billing.metering import store

CUSTOMERS = 10_000
OCTOBER = dt.datetime(2026, 10, 15, tzinfo=dt.UTC)
AS_OF = "2026-11-01T02:00:00+00:00"
GOAL_PER_SECOND = 1_000
GOAL_RSS_MB = 400

CHILD = """
import datetime as dt, json, sys, time
from billing.catalog import load_catalog
from billing.db import make_engine
from billing.pipeline import close_due
engine = make_engine(sys.argv[1])
catalog = load_catalog(sys.argv[2])
start = time.perf_counter()
processes = None if sys.argv[4] == "default" else int(sys.argv[4])
report = close_due(
    engine, catalog, dt.datetime.fromisoformat(sys.argv[3]), dt.timedelta(hours=1),
    processes=processes,
)
print(json.dumps({"invoices": report.invoices, "seconds": time.perf_counter() - start}))
"""


def say(*parts: object) -> None:
    print(*parts, flush=True)


def prepare(url: str) -> None:
    upgrade(url)
    catalog = load_catalog(TIERS_DIR)
    products = sorted(catalog.products)
    engine = make_engine(url)
    period = period_for(1, OCTOBER)
    try:
        with Session(engine) as session:
            connection = session.connection()
            connection.execute(
                insert(Customer.__table__),  # type: ignore[attr-defined]
                [
                    {
                        "id": f"close_{n:05d}",
                        "name": f"Customer {n}",
                        "email": None,
                        "billing_anchor_day": 1,
                        "currency": "USD",
                        "created_at": period.start,
                        "discount_percent": Decimal(15) if n % 7 == 0 else None,
                        "alert_thresholds": "50,80,100",
                        "alert_free_allowance": True,
                    }
                    for n in range(CUSTOMERS)
                ],
            )
            connection.execute(
                insert(SpendCap.__table__),  # type: ignore[attr-defined]
                [
                    {
                        "customer_id": f"close_{n:05d}",
                        "product": "product_analytics",
                        "amount": Decimal(5),
                        "updated_at": OCTOBER,
                    }
                    for n in range(0, CUSTOMERS, 10)
                ],
            )
            keys = sorted(
                (f"close_{n:05d}", product, period.start)
                for n in range(CUSTOMERS)
                for product in products
            )
            for begin in range(0, len(keys), 6_000):
                chunk = keys[begin : begin + 6_000]
                rows = store.lock_usage(connection, chunk, OCTOBER)
                for key, row in rows.items():
                    customer, product, _ = key
                    n = int(customer.split("_")[1])
                    quota = replace(
                        row.quota,
                        accepted=Decimal(1_000_000 + 37_000 * (n % 50) + len(product) * 1000),
                    )
                    if n % 10 == 0 and product == "product_analytics":
                        quota = replace(
                            quota,
                            limit_quantity=Decimal(1_100_000),
                            cap_amount=Decimal(5),
                            cap_discount=Decimal(0),
                        )
                    rows[key] = replace(
                        row,
                        totals=replace(row.totals, events=100),
                        quota=quota,
                        period_end=period.end,
                    )
                store.write_usage(connection, rows, OCTOBER)
            session.commit()
    finally:
        engine.dispose()


def close(url: str, processes: str) -> tuple[int, float, float]:  # float-ok: seconds, MB
    """Invoices made, seconds, peak RSS (MB) of a separate closing process (`processes`:
    "default" or a number)."""
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(TIERS_DIR), AS_OF, processes],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"the closing process exited with {process.returncode}")
    result = json.loads(output)
    return result["invoices"], result["seconds"], usage.ru_maxrss / 1024


def run(name: str, url: str, processes: str = "default") -> tuple[float, float]:  # float-ok
    started = time.perf_counter()
    prepare(url)
    took = time.perf_counter() - started
    say(f"{name}: prepared {CUSTOMERS:,} customers x 6 products in {took:.1f} s")
    invoices, seconds, rss = close(url, processes)
    rate = invoices / seconds
    say(
        f"   closed {invoices:,} invoices in {seconds:.1f} s "
        f"({'1 process' if processes == '1' else processes + ' processes'}): "
        f"{rate:,.0f} invoices/s, peak RSS {rss:,.0f} MB"
    )
    if invoices != CUSTOMERS:
        say(f"   MISMATCH: expected {CUSTOMERS:,} invoices")
    return rate, rss


def main() -> None:
    say(f"Period close benchmark, {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="billing-close-") as tmp:
        results["SQLite"] = run("SQLite", f"sqlite:///{Path(tmp) / 'close.db'}")
    reason = postgres_unreachable(POSTGRES_URL)
    if reason is None:
        with postgres_database(POSTGRES_URL) as (_, url):
            results["PostgreSQL, 1 process"] = run("PostgreSQL, 1 process", url, "1")
        with postgres_database(POSTGRES_URL) as (_, url):
            results["PostgreSQL"] = run("PostgreSQL", url)
    else:
        say(f"PostgreSQL: skipped ({reason})")
    say("summary")
    for name, (rate, rss) in results.items():
        speed = "met" if rate >= GOAL_PER_SECOND else "NOT MET"
        memory = "met" if rss < GOAL_RSS_MB else "NOT MET"
        goal = f"goal >= {GOAL_PER_SECOND:,}/s: {speed}; " if "process" not in name else ""
        say(
            f"   {name}: {rate:,.0f} invoices/s ({goal}"
            f"peak RSS {rss:,.0f} MB: goal < {GOAL_RSS_MB} MB: {memory})"
        )
    if "PostgreSQL, 1 process" in results and "PostgreSQL" in results:
        alone, side_by_side = results["PostgreSQL, 1 process"][0], results["PostgreSQL"][0]
        say(
            f"   PostgreSQL default processes / 1 process: {side_by_side / alone:.2f} "
            "(the same run)"
        )


if __name__ == "__main__":
    main()
