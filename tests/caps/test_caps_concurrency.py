"""Eight clients against `billing serve` with two worker processes, sending 20x the caps of
two products in overlapping batches: no line is billed past its cap, every event has one
outcome, and no request fails. PostgreSQL (row locks) and SQLite (one writer)."""

import datetime as dt
import random
import threading
from collections import Counter
from decimal import Decimal as D

import pytest
from sqlalchemy import text
from sqlmodel import Session

from billing.caps.quota import line_total
from billing.customers.periods import period_for
from tests.caps.helpers import set_cap
from tests.conftest import run_together
from tests.metering.helpers import ingest_key, recent
from tests.servers import Server, post_json

pytestmark = pytest.mark.slow

# product: (cap, events, quantity each). $1 buys 1,020,000 analytics events (1,000,000
# free + 20,000 at $0.00005) and 5,200 recordings (5,000 free + 200 at $0.005); each pool
# carries the free allowance plus 20 times what the cap buys beyond it.
POOLS = {
    "product_analytics": (D(1), 4_000, 350),  # 1,400,000
    "session_replay": (D(1), 3_000, 3),  # 9,000
}


def test_concurrent_batches_never_bill_past_the_cap(engine, database_url, catalog):
    key = ingest_key(engine)
    now = dt.datetime.now(dt.UTC)
    with Session(engine) as session:
        for product, (cap, _, _) in POOLS.items():
            set_cap(session.connection(), catalog, "cust_1", product, cap, now)
        session.commit()
    at = recent(now)
    pool = [
        {
            "id": f"{product}-{i}",
            "customer": "cust_1",
            "product": product,
            "quantity": quantity,
            "timestamp": at.isoformat(),
        }
        for product, (_, count, quantity) in POOLS.items()
        for i in range(count)
    ]
    random.Random(4).shuffle(pool)
    outcomes: Counter[str] = Counter()
    sent = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    server = Server(database_url=database_url, workers=2)
    server.start()

    def post(batch):
        status, answer = post_json(f"{server.base}/v1/events", {"events": batch}, key, timeout=120)
        with lock:
            sent["events"] += len(batch)
            if status != 200:
                failures.append(f"{status}: {answer}")
                return
            outcomes["accepted"] += answer["accepted"]
            outcomes["duplicates"] += answer["duplicates"]
            outcomes["over_limit"] += len(answer["over_limit"])
            outcomes["rejected"] += len(answer["rejected"])

    try:

        def client(seed):
            local = random.Random(seed)
            for size in (1_000, 1_500, 200, 50, 1_000):  # threadpool and group-commit paths
                post(local.sample(pool, size))  # ids overlap across clients and batches

        run_together(client, [(seed,) for seed in range(8)])
        for offset in range(0, len(pool), 2_000):  # every pooled event at least once
            post(pool[offset : offset + 2_000])
    finally:
        server.stop()
    assert not failures, failures[:3]
    assert outcomes["rejected"] == 0
    assert sum(outcomes.values()) == sent["events"]  # one outcome per event sent
    with engine.connect() as connection:
        stored = dict(
            connection.execute(text("SELECT status, COUNT(*) FROM event GROUP BY status")).all()
        )
        usage = {
            row.product: row
            for row in connection.execute(
                text(
                    "SELECT product, quantity, events, over_limit_events, limit_quantity FROM usage"
                )
            )
        }
    assert sum(stored.values()) == len(pool)  # each id stored once
    assert stored["accepted"] == outcomes["accepted"]
    assert stored["over_limit"] == outcomes["over_limit"]
    assert outcomes["duplicates"] == sent["events"] - len(pool)
    for product, (cap, _, quantity) in POOLS.items():
        row = usage[product]
        accepted, limit = D(row.quantity), D(row.limit_quantity)
        plan = catalog.plan_for_period(product, period_for(1, at).start)
        billed = min(accepted, limit)
        assert line_total(plan, billed, D(0)) <= cap  # the billed line never exceeds the cap
        assert limit <= accepted < limit + quantity  # stopped at the crossing event
        assert row.events + row.over_limit_events == POOLS[product][1]
