"""Group commit: queued requests share one transaction and each gets its own answer."""

from billing.metering.writer import IngestWriter, _Job
from tests.metering.helpers import add_customer, event, recent


def test_requests_queued_together_are_one_group_answered_separately(engine, catalog, session):
    add_customer(session)
    at = recent().isoformat()
    first = [event("a", 1, at=at), event("b", 2, at=at)]
    second = [event("b", 2, at=at), event("c", -1, at=at), event("d", 4, at=at)]
    third = [event("a", 9, at=at)]
    writer = IngestWriter(engine, catalog)
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
