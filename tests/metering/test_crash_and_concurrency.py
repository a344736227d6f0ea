"""Real processes: a server killed mid-stream loses nothing acknowledged and counts nothing
twice; eight clients with overlapping batches get exact totals. SQLite and PostgreSQL."""

import random
import threading
import time
from decimal import Decimal as D

import pytest

from billing.customers import service as customers_service
from billing.customers.periods import period_for
from billing.metering import service as metering_service
from tests.conftest import run_together
from tests.metering.helpers import ingest_key, recent
from tests.servers import Server, post_json

pytestmark = pytest.mark.slow


def batches_of(prefix, count, size, rng, at, customers=("cust_1",)):
    """`count` batches of `size` events stamped `at`."""
    return [
        [
            {
                "id": f"{prefix}-{b}-{i}",
                "customer": rng.choice(customers),
                "product": "product_analytics",
                "quantity": rng.randint(1, 1000),
                "timestamp": at.isoformat(),
            }
            for i in range(size)
        ]
        for b in range(count)
    ]


def totals(engine, customer_id, at):
    """Quantity and event count per product in the period of `at`."""
    with engine.connect() as connection:
        customer = customers_service.get_customer(connection=connection, customer_id=customer_id)
        rows = metering_service.usage_for(
            connection=connection,
            customer_id=customer_id,
            period=period_for(customer.billing_anchor_day, at),
        )
        return {r.product: (r.quantity, r.events) for r in rows}


def test_a_crash_mid_stream_loses_nothing_acknowledged_and_counts_nothing_twice(
    engine, database_url
):
    key = ingest_key(engine)
    at = recent()
    batches = batches_of("crash", 30, 500, random.Random(1), at)
    server = Server(database_url=database_url)
    server.start()
    acknowledged: set[int] = set()
    try:
        done = threading.Event()

        def stream():
            for index, batch in enumerate(batches):
                try:
                    status, _ = post_json(f"{server.base}/v1/events", {"events": batch}, key)
                except OSError:
                    continue  # the server died under us: this batch is not acknowledged
                if status == 200:
                    acknowledged.add(index)
            done.set()

        client = threading.Thread(target=stream)
        client.start()
        deadline = time.monotonic() + 120
        while len(acknowledged) < 8:
            assert not done.is_set(), "the stream ended before 8 batches were acknowledged"
            assert time.monotonic() < deadline, "no 8 batches acknowledged within 2 minutes"
            time.sleep(0.01)
        server.kill()
        client.join(timeout=120)
        assert done.is_set()
        assert 8 <= len(acknowledged) < len(batches), "the kill must land mid-stream"
        server.start()
        for index, batch in enumerate(batches):
            if index not in acknowledged:
                status, answer = post_json(f"{server.base}/v1/events", {"events": batch}, key)
                assert status == 200, answer
                assert answer["rejected"] == []
    finally:
        server.stop()
    expected = sum((D(e["quantity"]) for batch in batches for e in batch), D(0))
    assert totals(engine, "cust_1", at) == {"product_analytics": (expected, 30 * 500)}


def test_eight_clients_with_overlapping_batches_get_exact_totals(engine, database_url):
    customers = ("a", "b", "c")
    key = ingest_key(engine, customers)
    rng = random.Random(2)
    at = recent()
    pool = [e for batch in batches_of("shared", 40, 100, rng, at, customers) for e in batch]
    server = Server(database_url=database_url)
    server.start()
    failures: list[str] = []
    try:

        def client(seed):
            local = random.Random(seed)
            for _ in range(12):
                batch = local.sample(pool, 150)  # ids overlap across clients and batches
                status, answer = post_json(
                    f"{server.base}/v1/events", {"events": batch}, key, timeout=60
                )
                if status != 200 or answer["rejected"]:
                    failures.append(f"{status}: {answer}")

        run_together(client, [(seed,) for seed in range(8)])
        assert not failures, failures[:3]
        # Whatever was not sent yet goes in once more, so every pooled event is in.
        for offset in range(0, len(pool), 1000):
            status, _ = post_json(
                f"{server.base}/v1/events", {"events": pool[offset : offset + 1000]}, key
            )
            assert status == 200
    finally:
        server.stop()
    for customer in customers:
        mine = [e for e in pool if e["customer"] == customer]
        expected = sum((D(e["quantity"]) for e in mine), D(0))
        assert totals(engine, customer, at) == {"product_analytics": (expected, len(mine))}
