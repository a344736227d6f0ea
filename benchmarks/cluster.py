"""Several replicas on one PostgreSQL, under load, with crashes: does anything get lost,
counted twice, billed over a cap, invoiced twice, or sent to Stripe twice?

Starts `billing serve` x REPLICAS (no scheduler) and `billing worker` x WORKERS (every job,
on short intervals, so they contend) on a fresh PostgreSQL database; CLIENTS threads spread
batches of events over the replicas for SECONDS (10 % of each batch re-sends events already
acknowledged; 1 % are invalid; some customers are capped and go over). At 40 % of the run
one API replica and one worker are SIGKILLed and restarted; a batch whose answer was lost
is retried on the next replica with the same ids. The load is dated in the last month due for
its close (the workers' close grace is long, so they close nothing meanwhile); then that
period is closed and synced to a Stripe emulator with `--as-of` replays, and every invariant
is checked. Prints events/s
(overall and per replica), ingestion latency p50/p99 and a PASS/FAIL table; exits 1 on any
FAIL.

    python benchmarks/cluster.py [--seconds 120] [--replicas 3] [--workers 2] [--clients 6]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal
from typing import IO, Any

from harness import (
    HOST,
    REPO,
    TIERS_DIR,
    billing_command,
    free_port,
    percentiles,
    start_server,
    stop_server,
    tail,
    wait_healthy,
)
from ingest import POSTGRES_URL, postgres_database, postgres_unreachable
from sqlalchemy import bindparam, create_engine, text

sys.path.insert(0, str(REPO))
from billing.stripe_emulator import StripeEmulator

CUSTOMERS = [f"c{n:02d}" for n in range(20)]
CAPPED = CUSTOMERS[:5]  # session_replay capped at $10: 7,000 recordings
CAP = Decimal("10.00")
BATCH = 100
RETRIED_SHARE = 0.10  # float-ok: a share of events, not money
INVALID_SHARE = 0.01  # float-ok
GRACE = dt.timedelta(hours=1)


class Ledger:
    """What the clients sent and what the replicas acknowledged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: dict[str, dict[str, Any]] = {}  # id -> event, valid and unique
        self.invalid: set[str] = set()
        self.acknowledged: set[str] = set()
        self.in_order: list[str] = []  # the acknowledged ids, to pick retries from cheaply
        self.per_replica: Counter[int] = Counter()
        self.latencies: list[float] = []  # float-ok: seconds
        self.lost_answers = 0  # batches whose answer never came (retried elsewhere)
        self.failures: list[str] = []


def load_period(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The billing period the load is dated in: the last month that is due for its close now
    (a close never runs ahead of the real clock), as [start, end)."""
    end = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if now < end + GRACE + dt.timedelta(minutes=1):
        end = (end - dt.timedelta(days=1)).replace(day=1)
    return (end - dt.timedelta(days=1)).replace(day=1), end


def make_batch(rng: random.Random, ids: Any, ledger: Ledger, now: dt.datetime) -> list[Any]:
    batch = []
    with ledger.lock:
        known = len(ledger.in_order)
    stamp = (
        load_period(now)[0] + dt.timedelta(days=14, seconds=int(now.timestamp()) % 86400)
    ).isoformat()
    for _ in range(BATCH):
        roll = rng.random()
        if roll < RETRIED_SHARE and known:
            retried = ledger.in_order[rng.randrange(known)]
            batch.append(ledger.sent[retried])  # a retry of an acknowledged event
            continue
        event_id = f"e{next(ids)}"
        customer = rng.choice(CUSTOMERS)
        if roll > 1 - INVALID_SHARE:
            event = {
                "id": event_id,
                "customer": customer,
                "product": "no_such_product",
                "quantity": 1,
                "timestamp": stamp,
            }
            with ledger.lock:
                ledger.invalid.add(event_id)
        else:
            product = rng.choice(("product_analytics", "session_replay", "feature_flags"))
            quantity = {
                "product_analytics": rng.randint(1000, 5000),
                "session_replay": rng.randint(10, 50),
                "feature_flags": rng.randint(100, 900),
            }[product]
            event = {
                "id": event_id,
                "customer": customer,
                "product": product,
                "quantity": quantity,
                "timestamp": stamp,
            }
            with ledger.lock:
                ledger.sent[event_id] = event
        batch.append(event)
    return batch


def client(number: int, ports: list[int], key: str, ledger: Ledger, stop: threading.Event) -> None:
    rng = random.Random(number)
    ids = (f"{number}-{n}" for n in itertools.count())
    connections: dict[int, http.client.HTTPConnection] = {}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    turn = number
    while not stop.is_set():
        batch = make_batch(rng, ids, ledger, dt.datetime.now(dt.UTC))
        body = json.dumps({"events": batch})
        for attempt in range(30):  # until some replica acknowledges this batch
            replica = (turn + attempt) % len(ports)
            try:
                connection = connections.get(replica)
                if connection is None:
                    connection = http.client.HTTPConnection(HOST, ports[replica], timeout=30)
                    connections[replica] = connection
                started = time.perf_counter()
                connection.request("POST", "/v1/events", body, headers)
                response = connection.getresponse()
                answer = json.loads(response.read())
                took = time.perf_counter() - started
            except (OSError, http.client.HTTPException, ValueError):
                connections.pop(replica, None)
                with ledger.lock:
                    ledger.lost_answers += 1
                time.sleep(0.2)
                continue
            if response.status != 200:
                with ledger.lock:
                    ledger.failures.append(f"{response.status}: {answer}")
                break
            with ledger.lock:
                ledger.latencies.append(took)
                ledger.per_replica[replica] += len(batch)
                rejected = {r["id"] for r in answer["rejected"]}
                for event in batch:
                    if event["id"] not in rejected:
                        if event["id"] not in ledger.acknowledged:
                            ledger.in_order.append(event["id"])
                        ledger.acknowledged.add(event["id"])
                    elif event["id"] not in ledger.invalid:
                        ledger.failures.append(f"valid event rejected: {event['id']}")
            break
        else:
            with ledger.lock:
                ledger.failures.append("a batch was never acknowledged")
        turn += 1


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*billing_command(), *args], capture_output=True, text=True, env=env, cwd=REPO
    )
    if done.returncode != 0:
        raise RuntimeError(f"billing {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def start_worker(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*billing_command(), "worker"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )


def run(args: argparse.Namespace, url: str) -> bool:
    stripe = StripeEmulator()
    env = {
        **os.environ,
        "BILLING_DATABASE_URL": url,
        "BILLING_TIERS_DIR": str(TIERS_DIR),
        "BILLING_LOG_LEVEL": "warning",
        "BILLING_MIGRATE_ON_START": "0",
        "BILLING_STRIPE_API_KEY": "sk_test_cluster",
        "BILLING_STRIPE_API_BASE": stripe.base,
    }
    cli(env, "db", "upgrade")
    start, _ = load_period(dt.datetime.now(dt.UTC))
    for customer in CUSTOMERS:
        cli(
            env,
            "customers",
            "create",
            customer,
            "--name",
            f"Customer {customer}",
            "--billing-start",
            start.isoformat(),
        )
    for customer in CAPPED:
        cli(env, "caps", "set", customer, "session_replay", str(CAP))
    key = cli(env, "keys", "create", "--role", "ingest")
    serve_env = {**env, "BILLING_SCHEDULER": "0"}
    worker_env = {
        **env,
        # The workers run every job, but close nothing while the load is sent: the period
        # the load is dated in is closed by the CLI once the load has stopped.
        "BILLING_CLOSE_GRACE": "P3650D",
        "BILLING_CLOSE_EVERY_SECONDS": "2",
        "BILLING_ALERT_DELIVERY_SECONDS": "1",
        "BILLING_STRIPE_SYNC_EVERY_SECONDS": "2",
    }
    logs = [tempfile.TemporaryFile() for _ in range(args.replicas + args.workers)]  # noqa: SIM115
    ports = [free_port() for _ in range(args.replicas)]
    replicas = [start_server(p, 1, logs[i], serve_env) for i, p in enumerate(ports)]
    for process, port, log in zip(replicas, ports, logs[: args.replicas], strict=True):
        wait_healthy(process, port, log)
    workers = [start_worker(worker_env, logs[args.replicas + i]) for i in range(args.workers)]
    ledger = Ledger()
    stop = threading.Event()
    threads = [
        threading.Thread(target=client, args=(n, ports, key, ledger, stop), daemon=True)
        for n in range(args.clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    print(
        f"load: {args.clients} clients, {args.replicas} replicas, {args.workers} workers, "
        f"{args.seconds} s",
        flush=True,
    )
    time.sleep(args.seconds * 0.4)
    killed_worker_pid = workers[0].pid
    os.killpg(replicas[0].pid, signal.SIGKILL)
    os.killpg(workers[0].pid, signal.SIGKILL)
    replicas[0].wait()
    workers[0].wait()
    killed_at = dt.datetime.now(dt.UTC)
    print(f"  {time.perf_counter() - started:5.1f} s: SIGKILL replica 0 and worker 0", flush=True)
    time.sleep(2)
    replicas[0] = start_server(ports[0], 1, logs[0], serve_env)
    wait_healthy(replicas[0], ports[0], logs[0])
    workers[0] = start_worker(worker_env, logs[args.replicas])
    print(f"  {time.perf_counter() - started:5.1f} s: both restarted", flush=True)
    time.sleep(max(0.0, args.seconds - (time.perf_counter() - started)))
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.perf_counter() - started

    _, period_end = load_period(dt.datetime.now(dt.UTC))
    as_of = (period_end + GRACE + dt.timedelta(minutes=1)).isoformat()
    for process in replicas:
        stop_server(process)
    closed = cli(env, "invoices", "close", "--as-of", as_of)
    synced = [cli(env, "stripe", "sync", "--as-of", as_of) for _ in range(2)]
    for process in workers:
        process.terminate()
        process.wait(timeout=30)

    events = len(ledger.acknowledged)
    p50, p99 = percentiles(ledger.latencies)
    print(
        f"\nacknowledged {events:,} unique events (+{len(ledger.invalid):,} invalid, "
        f"{ledger.lost_answers} answers lost to crashes and retried) in {elapsed:.1f} s"
    )
    print(
        f"throughput: {events / elapsed:,.0f} unique events/s acknowledged; per replica "
        "(received, with re-sends and invalid): "
        + ", ".join(f"#{r} {n / elapsed:,.0f}/s" for r, n in sorted(ledger.per_replica.items()))
    )
    print(
        f"ingestion latency per {BATCH}-event batch: p50 {p50 * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms ({len(ledger.latencies):,} batches)"
    )
    print(f"close: {closed}")
    print(f"stripe sync: {synced[0]} / again: {synced[1]}")
    checks = check(url, ledger, stripe, killed_worker_pid, killed_at)
    stripe.close()
    width = max(len(name) for name, _, _ in checks)
    print(f"\n{'check':<{width}}  result  detail")
    for name, ok, detail in checks:
        print(f"{name:<{width}}  {'PASS' if ok else 'FAIL':<6}  {detail}")
    for index, log in enumerate(logs):
        text_ = tail(log, 5)
        if "Traceback" in text_:
            print(f"\nprocess {index} logged an error:\n{text_}")
    return all(ok for _, ok, _ in checks)


def check(
    url: str, ledger: Ledger, stripe: StripeEmulator, killed_pid: int, killed_at: dt.datetime
) -> list[tuple[str, bool, str]]:
    engine = create_engine(url)
    results = []
    with engine.connect() as db:
        stored = {
            r.id: r
            for r in db.execute(
                text("SELECT id, customer_id, product, quantity, status FROM event")
            )
        }
        missing = ledger.acknowledged - stored.keys()
        extra = stored.keys() - ledger.acknowledged
        results.append(
            (
                "every acknowledged event stored exactly once",
                not missing and not extra and not (stored.keys() & ledger.invalid),
                f"{len(stored):,} stored, {len(missing)} missing, {len(extra)} unexpected",
            )
        )
        sent: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for event_id in ledger.acknowledged:
            event = ledger.sent[event_id]
            sent[event["customer"], event["product"]] += Decimal(event["quantity"])
        usage = {
            (r.customer_id, r.product): r
            for r in db.execute(
                text("SELECT customer_id, product, quantity, over_limit_quantity FROM usage")
            )
        }
        wrong = [
            pair
            for pair, total in sent.items()
            if pair not in usage or usage[pair].quantity + usage[pair].over_limit_quantity != total
        ]
        over = sum((u.over_limit_quantity for u in usage.values()), Decimal(0))
        results.append(
            (
                "usage = sent - over limit - rejected",
                not wrong and not ledger.failures,
                f"{len(sent)} customer x product totals, {over:,.0f} units over limit, "
                f"{len(ledger.invalid):,} rejected; mismatches {wrong[:3]}; "
                f"client errors {ledger.failures[:2]}",
            )
        )
        accepted = defaultdict(Decimal)
        for row in stored.values():
            if row.status == "accepted":
                accepted[row.customer_id, row.product] += row.quantity
        drift = [p for p, u in usage.items() if accepted[p] != u.quantity]
        results.append(("running totals = sum of stored events", not drift, f"drift {drift[:3]}"))
        lines = list(
            db.execute(
                text(
                    "SELECT i.customer_id, l.product, l.amount FROM invoice_line l "
                    "JOIN invoice i ON i.id = l.invoice_id WHERE l.kind = 'usage' "
                    "AND l.product = 'session_replay' AND i.customer_id IN :capped"
                )
                .bindparams(bindparam("capped", value=list(CAPPED), expanding=True))
                .columns()
            )
        )
        above = [r for r in lines if r.amount > CAP]
        results.append(
            (
                "no line above its cap",
                not above and len(lines) == len(CAPPED),
                f"{len(lines)} capped lines, largest "
                f"{max((r.amount for r in lines), default=Decimal(0)).normalize():f} "
                f"(cap {CAP})",
            )
        )
        per_period = list(
            db.execute(
                text(
                    "SELECT customer_id, period_start, count(*) AS n FROM invoice "
                    "WHERE kind = 'usage' AND status = 'finalized' "
                    "GROUP BY customer_id, period_start"
                )
            )
        )
        doubled = [r for r in per_period if r.n != 1]
        customers = {r.customer_id for r in per_period}
        numbers = [r.number for r in db.execute(text("SELECT number FROM invoice ORDER BY number"))]
        results.append(
            (
                "one invoice per customer and period, gapless",
                not doubled
                and customers == set(CUSTOMERS)
                and numbers == list(range(1, len(numbers) + 1)),
                f"{len(per_period)} invoices for {len(customers)} customers, "
                f"numbers 1..{len(numbers)}",
            )
        )
        due = {
            r.id: r.amount_due
            for r in db.execute(
                text(
                    "SELECT id, amount_due FROM invoice "
                    "WHERE status = 'finalized' AND amount_due > 0"
                )
            )
        }
        remote = defaultdict(list)
        for invoice in stripe.invoices.values():
            remote[invoice["metadata"].get("billing_invoice_id")].append(invoice)
        wrong_totals = [
            i
            for i, a in due.items()
            if len(remote.get(i, [])) != 1 or remote[i][0]["total"] != int(a * 100)
        ]
        results.append(
            (
                "Stripe: one invoice each, totals = amounts due",
                not wrong_totals and len(stripe.invoices) == len(due),
                f"{len(due)} invoices due, {len(stripe.invoices)} in Stripe, "
                f"{len(wrong_totals)} wrong",
            )
        )
        runs = list(
            db.execute(
                text(
                    "SELECT job, runner, started_at, finished_at, status FROM job_run "
                    "ORDER BY started_at"
                )
            )
        )
        overlaps = 0
        by_job = defaultdict(list)
        for r in runs:
            end = r.finished_at
            if end is None and r.runner.endswith(f":{killed_pid}"):
                end = killed_at  # the killed worker's last run ended with it
            by_job[r.job].append((r.started_at, end))
        for spans in by_job.values():
            for (_, end), (start, _) in itertools.pairwise(spans):
                if end is None or start < end:
                    overlaps += 1
        results.append(
            (
                "no job ever ran twice at once",
                overlaps == 0 and bool(runs),
                f"{len(runs)} runs of {len(by_job)} jobs by "
                f"{len({r.runner for r in runs})} processes, {overlaps} overlapping",
            )
        )
    engine.dispose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)  # float-ok
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=6)
    args = parser.parse_args()
    problem = postgres_unreachable(POSTGRES_URL)
    if problem:
        print(f"cluster: needs PostgreSQL at BILLING_TEST_POSTGRES_URL ({problem})")
        return 2
    with postgres_database(POSTGRES_URL) as (_, url):
        ok = run(args, url)
    print("\nPASS" if ok else "\nFAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
