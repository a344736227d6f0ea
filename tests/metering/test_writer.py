"""Group commit: queued requests share one transaction and each gets its own answer."""

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing.db import table_of
from billing.metering.models import Event, Usage
from billing.metering.writer import IngestWriter, _Job, default_writers
from tests.metering.helpers import add_customer, event, recent


def test_requests_queued_together_are_one_group_answered_separately(engine, catalog, session):
    add_customer(session)
    at = recent().isoformat()
    first = [event("a", 1, at=at), event("b", 2, at=at)]
    second = [event("b", 2, at=at), event("c", -1, at=at), event("d", 4, at=at)]
    third = [event("a", 9, at=at)]
    writer = IngestWriter(engine, catalog, writers=1)  # a second thread could take a job
    futures = []
    # Queue all three before the writer thread starts, so it takes them as one group.
    for events in (first, second, third):
        job = _Job(events)
        writer._queue.put(job)
        futures.append(job.future)
    writer._ensure_started()
    answers = [future.result(timeout=30) for future in futures]
    writer.stop()
    assert answers[0] == {
        "accepted": 2,
        "duplicates": 0,
        "over_limit": [],
        "over_limit_products": {},
        "rejected": [],
    }
    assert (answers[1]["accepted"], answers[1]["duplicates"]) == (1, 1)  # d; b repeats the first
    assert answers[1]["rejected"] == [
        {
            "index": 1,
            "id": "c",
            "error": "invalid: quantity: quantity must be a non-negative number, got -1",
        }
    ]
    assert answers[2]["rejected"] == [{"index": 0, "id": "a", "error": "conflict"}]


def test_a_stopped_writer_answers_what_was_queued(engine, catalog, session):
    add_customer(session)
    writer = IngestWriter(engine, catalog)
    at = recent().isoformat()
    futures = [writer.submit([event(f"e{i}", at=at)]) for i in range(50)]
    writer.stop()
    assert sum(f.result(timeout=30)["accepted"] for f in futures) == 50


def test_writers_default_to_two_on_postgresql_and_one_on_sqlite(engine, catalog):
    expected = 2 if engine.dialect.name == "postgresql" else 1
    assert default_writers(engine) == expected
    assert IngestWriter(engine, catalog)._writers == expected
    with pytest.raises(ValueError, match="at least 1"):
        IngestWriter(engine, catalog, writers=0)


@pytest.mark.parametrize("writers", [2, 4])
def test_several_writers_store_each_id_once_and_count_it_once(engine, catalog, session, writers):
    """Requests sent at once to several writer threads, every id in two requests (with the
    same content): each id is accepted once and answered a duplicate once, whichever thread
    stores it first, and the running totals hold each event once."""
    customers = ["cust_1", "cust_2", "cust_3"]
    for customer in customers:
        add_customer(session, customer)
    at = recent().isoformat()

    def sent(n: int) -> dict:
        return event(f"e{n}", 1 + n % 7, customer=customers[n % 3], at=at)

    requests = [[sent(n) for n in range(start, start + 5)] for start in range(0, 300, 5)]
    requests += [[sent(n) for n in range(start, start + 5)] for start in range(150, 450, 5)]
    writer = IngestWriter(engine, catalog, writers=writers)
    futures = [writer.submit(events) for events in requests]
    answers = [future.result(timeout=60) for future in futures]
    writer.stop()

    assert all(a["rejected"] == [] and a["over_limit"] == [] for a in answers)
    assert sum(a["accepted"] for a in answers) == 450
    assert sum(a["duplicates"] for a in answers) == 150
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(table_of(Event))).scalar()
        usage = table_of(Usage)
        totals = connection.execute(
            select(
                func.sum(usage.c.quantity), func.sum(usage.c.events), func.sum(usage.c.duplicates)
            )
        ).one()
    assert stored == 450
    assert totals == (Decimal(sum(1 + n % 7 for n in range(450))), 450, 150)


def test_a_cancelled_request_is_dropped_and_the_others_answered(engine, catalog, session):
    """A request whose client went away (its future cancelled before the writer took it)
    is not ingested: it was never answered, so nothing of it was acknowledged. The rest of
    its group is answered and the writer keeps working."""
    add_customer(session)
    at = recent().isoformat()
    writer = IngestWriter(engine, catalog, writers=1)
    jobs = [_Job([event(f"e{n}", at=at)]) for n in range(3)]
    assert jobs[1].future.cancel()
    for job in jobs:
        writer._queue.put(job)
    writer._ensure_started()
    answers = [jobs[0].future.result(timeout=30), jobs[2].future.result(timeout=30)]
    later = writer.submit([event("e9", at=at)]).result(timeout=30)
    writer.stop()
    assert [a["accepted"] for a in answers] == [1, 1]
    assert later["accepted"] == 1
    with engine.connect() as connection:
        ids = connection.execute(select(table_of(Event).c.id)).scalars().all()
    assert sorted(ids) == ["e0", "e2", "e9"]
