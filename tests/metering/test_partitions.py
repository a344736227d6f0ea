"""The event table by month (docs/operations.md, "Partitions" and "Retention"): on PostgreSQL
monthly partitions are made ahead of time (by the migration, the job and the command), a
month that started in the default partition is moved out of it when its partition is made,
and an archived month is exported, then dropped whole — invoices and running totals
unchanged, its ids out of event_key, a re-sent event refused. On both engines an event id
stays unique across customers and months (a conflict, never a second event)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from billing.db import table_of
from billing.invoicing.models import Invoice
from billing.jobs import registry, runner
from billing.jobs.context import JobContext
from billing.metering import partitions
from billing.metering.archive import archive_events
from billing.metering.models import Event, EventKey, Usage
from billing.pipeline import close_due
from billing.settings import Settings
from tests.conftest import TIERS
from tests.metering.helpers import add_customer, ingest

ONLY_POSTGRES = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
SEPT = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
NOV = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
AFTER = dt.datetime(2026, 10, 6, tzinfo=dt.UTC)  # the clock of the ingestion below


def _event(event_id, at, quantity=1_500_000, customer="cust_1"):
    return {
        "id": event_id,
        "customer": customer,
        "product": "product_analytics",
        "quantity": quantity,
        "timestamp": at,
    }


def _held(engine, table):
    """The event ids a partition (or table) holds."""
    with engine.connect() as connection:
        return set(connection.execute(text(f'SELECT id FROM "{table}"')).scalars())


def _september_closed(engine, session, catalog):
    add_customer(session, "cust_1", billing_start=SEPT)
    ingest(
        session,
        catalog,
        [
            _event("s1", "2026-09-10T08:00:00Z"),
            _event("s2", "2026-09-20T08:00:00Z", quantity=10),
            _event("o1", "2026-10-05T08:00:00Z", quantity=7),
        ],
        now=AFTER,
    )
    close_due(engine, catalog, dt.datetime(2026, 10, 2, tzinfo=dt.UTC), dt.timedelta(hours=1))


def _billed(engine):
    invoices, usage = table_of(Invoice), table_of(Usage)
    with engine.connect() as connection:
        return (
            connection.execute(select(invoices.c.number, invoices.c.total)).all(),
            connection.execute(
                select(usage.c.product, usage.c.period_start, usage.c.quantity).order_by(
                    usage.c.period_start
                )
            ).all(),
        )


@ONLY_POSTGRES
def test_the_migration_makes_this_month_and_three_ahead(engine):
    now = dt.datetime.now(dt.UTC)
    this = partitions.month_of(now)
    with engine.connect() as connection:
        held = partitions.months(connection)
        names = set(connection.execute(partitions._PARTITIONS).scalars())
    assert held == [partitions.add_months(this, n) for n in range(4)]
    assert partitions.DEFAULT_PARTITION in names


@ONLY_POSTGRES
def test_a_month_made_late_takes_its_events_out_of_the_default_partition(engine, session, catalog):
    add_customer(session, "cust_1", billing_start=SEPT)
    ingest(session, catalog, [_event("s1", "2026-09-10T08:00:00Z")], now=AFTER)
    assert _held(engine, "event_default") == {"s1"}  # no September partition yet
    with engine.begin() as connection:
        made = partitions.create_ahead(connection, SEPT, ahead=1)
    assert made == [dt.date(2026, 9, 1), dt.date(2026, 10, 1)]
    assert _held(engine, "event_2026_09") == {"s1"}
    assert _held(engine, "event_default") == set()
    # new events go to their month's partition; the moved one is still a duplicate
    again = ingest(
        session,
        catalog,
        [_event("s1", "2026-09-10T08:00:00Z"), _event("o1", "2026-10-05T08:00:00Z", 7)],
        now=AFTER,
    )
    assert (again.accepted, again.duplicates) == (1, 1)
    assert _held(engine, "event_2026_10") == {"o1"}
    with engine.begin() as connection:  # made already: nothing to do
        assert partitions.create_ahead(connection, SEPT, ahead=1) == []


@ONLY_POSTGRES
def test_an_archived_month_is_exported_then_its_partition_dropped(engine, session, catalog):
    _september_closed(engine, session, catalog)
    with engine.begin() as connection:
        partitions.create_ahead(connection, SEPT, ahead=1)
    before = _billed(engine)
    assert [total for _, total in before[0]] == [D("25.00")]
    written: list[dict] = []
    done = archive_events(engine, before=NOV, write=written.extend)
    assert (done.events, done.periods) == (2, 1)
    assert [line["id"] for line in written] == ["s1", "s2"]
    with engine.connect() as connection:
        held = partitions.months(connection)
        keys = set(connection.execute(select(table_of(EventKey).c.id)).scalars())
    assert dt.date(2026, 9, 1) not in held  # dropped whole
    assert dt.date(2026, 10, 1) in held  # October is open: kept
    assert keys == {"o1"}
    assert _billed(engine) == before  # nothing that bills moved
    resent = ingest(session, catalog, [_event("s1", "2026-09-10T08:00:00Z")], now=AFTER)
    assert [r.error for r in resent.rejected] == ["period_closed"]


@ONLY_POSTGRES
def test_a_month_still_holding_an_open_period_is_archived_row_by_row(engine, session, catalog):
    # cust_2 never closed September: the month's partition must stay, cust_1's rows go
    _september_closed(engine, session, catalog)
    add_customer(session, "cust_2", billing_start=SEPT)
    ingest(session, catalog, [_event("x1", "2026-09-12T08:00:00Z", 3, "cust_2")], now=AFTER)
    with engine.begin() as connection:
        partitions.create_ahead(connection, SEPT, ahead=0)
        # the close above ran before cust_2 existed: September is open for cust_2
    written: list[dict] = []
    done = archive_events(engine, before=NOV, write=written.extend)
    assert sorted(line["id"] for line in written) == ["s1", "s2"]
    assert done.events == 2
    assert _held(engine, "event_2026_09") == {"x1"}


@ONLY_POSTGRES
def test_a_partition_is_never_dropped_with_events_that_were_not_exported(engine, session, catalog):
    _september_closed(engine, session, catalog)
    with engine.begin() as connection:
        partitions.create_ahead(connection, SEPT, ahead=0)
    with (
        pytest.raises(DBAPIError, match="holds 2 events, 1 were exported"),
        engine.begin() as connection,
    ):
        partitions.drop_month(connection, dt.date(2026, 9, 1), exported=1)
    assert _held(engine, "event_2026_09") == {"s1", "s2"}


def test_the_job_makes_partitions_ahead_and_archives_with_keep_months(
    engine, session, catalog, database_url, tmp_path
):
    _september_closed(engine, session, catalog)
    archives = tmp_path / "archives"
    archives.mkdir()
    settings = Settings(
        tiers_dir=TIERS,
        database_url=database_url,
        events_partitions_ahead=2,
        events_keep_months=1,
        events_archive_dir=archives,
    )
    context = JobContext(engine=engine, settings=settings, catalog=catalog)
    # on 2026-12-01 one month kept: periods starting before November would go, but the
    # late-usage window bounds it: the latest cut-off that day is October
    on = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    report = runner.run_waiting(registry.PARTITION_EVENTS, context, on)
    assert "; 2 events of 1 customer-product periods starting before 2026-10 archived to" in str(
        report
    )
    [archive] = archives.iterdir()
    assert archive.name == "events-before-2026-10-20261201T000000Z.jsonl"
    assert [json.loads(line)["id"] for line in archive.read_text().splitlines()] == ["s1", "s2"]
    with engine.connect() as connection:
        assert set(connection.execute(select(table_of(Event).c.id)).scalars()) == {"o1"}
        assert set(connection.execute(select(table_of(EventKey).c.id)).scalars()) == {"o1"}
    later = runner.run_waiting(
        registry.PARTITION_EVENTS, context, dt.datetime(2027, 6, 1, tzinfo=dt.UTC)
    )
    with engine.connect() as connection:
        if partitions.partitioned(connection):
            assert str(later).startswith("3 event partitions made (2027-06, 2027-07, 2027-08)")
        else:
            assert str(later).startswith("0 event partitions made;")


@pytest.mark.parametrize(
    "second",
    [
        _event("e1", "2026-10-05T08:00:00Z", customer="cust_2"),  # another customer
        _event("e1", "2026-10-05T08:00:00Z", customer="cust_1", quantity=1_500_000),
    ],
    ids=["other-customer", "other-month"],
)
def test_an_id_is_stored_once_across_customers_and_months(engine, session, catalog, second):
    add_customer(session, "cust_1", billing_start=SEPT)
    add_customer(session, "cust_2", billing_start=SEPT)
    first = ingest(session, catalog, [_event("e1", "2026-09-10T08:00:00Z")], now=AFTER)
    assert first.accepted == 1
    again = ingest(session, catalog, [second], now=AFTER)
    assert (again.accepted, [r.error for r in again.rejected]) == (0, ["conflict"])
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(table_of(Event))).scalar() == 1


@ONLY_POSTGRES
def test_a_month_made_while_its_events_arrive_loses_none(engine, session, catalog):
    """Ingestion into a month without a partition (its events go to the default one) goes on
    while the month's partition is made: every accepted event ends in the new partition,
    once; the move waits for ingestion and ingestion for the move, neither fails."""
    import threading

    from billing.metering import service as metering_service

    add_customer(session, "cust_1", billing_start=SEPT)
    accepted: list[int] = []
    failures: list[BaseException] = []

    def send() -> None:
        try:
            for round_ in range(30):
                events = [
                    _event(f"r{round_}-{n}", f"2026-09-{1 + n % 28:02d}T08:00:00Z", 1)
                    for n in range(20)
                ]
                with engine.begin() as connection:
                    answer = metering_service.ingest(
                        connection=connection, catalog=catalog, raw_events=events, now=AFTER
                    )
                accepted.append(answer.accepted)
                if round_ == 5:
                    some_in_default.set()
        except BaseException as error:  # reported below
            failures.append(error)

    some_in_default = threading.Event()
    sender = threading.Thread(target=send)
    sender.start()
    assert some_in_default.wait(30)  # the month's first events are in the default partition
    with engine.begin() as connection:
        made = partitions.create_ahead(connection, SEPT, ahead=0)
    sender.join()
    assert failures == []
    assert made == [dt.date(2026, 9, 1)]
    assert sum(accepted) == 30 * 20
    assert len(_held(engine, "event_2026_09")) == 30 * 20
    assert _held(engine, "event_default") == set()
