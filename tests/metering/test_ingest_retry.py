"""A batch that PostgreSQL aborts to break a real deadlock is run again by ingest_batch: the
client gets its answer, and every event is stored once."""

import threading

import pytest
from sqlalchemy import text

from billing.metering import service as metering_service
from tests.conftest import blocked_by
from tests.metering.helpers import add_customer, event, recent
from tests.servers import wait_for

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_batch_aborted_by_a_deadlock_is_retried_and_answered(engine, session, catalog):
    add_customer(session)
    at = recent().isoformat()
    first = metering_service.ingest_batch(
        engine=engine, catalog=catalog, raw_events=[event("e0", 1, at=at)]
    )
    assert first.accepted == 1  # the running total of product_analytics now exists
    answers, errors = [], []
    with engine.connect() as other:
        # Another transaction stores event e2 (as a recording) and keeps it uncommitted.
        metering_service.ingest(
            connection=other,
            catalog=catalog,
            raw_events=[event("e2", 1, "session_replay", at=at)],
            now=recent(),
        )
        other_pid = other.execute(text("SELECT pg_backend_pid()")).scalar_one()

        def batch():
            try:
                answers.append(
                    metering_service.ingest_batch(
                        engine=engine,
                        catalog=catalog,
                        raw_events=[event("e1", 2, at=at), event("e2", 3, at=at)],
                    )
                )
            except Exception as error:  # the test reports it below
                errors.append(error)

        # The batch locks the product_analytics total, then waits on e2 for `other`...
        runner = threading.Thread(target=batch)
        runner.start()
        assert wait_for(lambda: blocked_by(engine, other_pid) == 1), "the batch never waited"
        # ...which now asks for that total: a lock cycle. The batch waited first, so its
        # deadlock check runs first and PostgreSQL aborts the batch (40P01), not `other`.
        locked = other.execute(
            text(
                "SELECT quantity FROM usage WHERE customer_id = 'cust_1' "
                "AND product = 'product_analytics' FOR UPDATE"
            )
        ).scalar_one()
        # `other` holds the lock the batch held, so the batch's transaction ended without
        # committing: it was aborted.
        assert int(locked) == 1
        other.rollback()  # e2 as a recording never happened
    runner.join(timeout=60)
    assert errors == []
    [answer] = answers
    assert (answer.accepted, answer.duplicates, answer.rejected) == (2, 0, [])
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT id, product, quantity FROM event ORDER BY id")
        ).all()
        total = connection.execute(
            text("SELECT quantity, events FROM usage WHERE product = 'product_analytics'")
        ).one()
    assert [(i, p, int(q)) for i, p, q in stored] == [
        ("e0", "product_analytics", 1),
        ("e1", "product_analytics", 2),
        ("e2", "product_analytics", 3),
    ]
    assert (int(total.quantity), total.events) == (6, 3)
