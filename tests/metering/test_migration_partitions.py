"""Migration 0019 on data, on SQLite and PostgreSQL: the events stored under 0018 (keyed by id
alone) are all there after the upgrade, keyed by customer, period start and id, each id in
event_key; on PostgreSQL each in its month's partition. A re-sent one is still a duplicate,
and the downgrade gives the same rows back."""

import datetime as dt
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
from alembic import command

from billing.db import alembic_config, make_engine, upgrade
from billing.metering import partitions
from billing.metering import service as metering_service
from tests.conftest import database_at
from tests.metering.helpers import NOW

ROWS = [  # id, customer, period start, quantity
    ("a1", "cust_1", dt.datetime(2026, 10, 1, tzinfo=dt.UTC), D("1.5")),
    ("a2", "cust_1", dt.datetime(2026, 11, 1, tzinfo=dt.UTC), D(2)),
    ("b1", "cust_2", dt.datetime(2026, 11, 15, tzinfo=dt.UTC), D(3)),
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url_at_0018(request, tmp_path):
    yield from database_at(request, tmp_path, "0018")


def _events(engine):
    with engine.connect() as connection:
        return sorted(
            (row.id, row.customer_id, row.period_start, D(row.quantity))
            for row in connection.execute(
                sa.text("SELECT id, customer_id, period_start, quantity FROM event")
            )
        )


def test_events_stored_before_are_kept_keyed_and_partitioned(url_at_0018, catalog):
    engine = make_engine(url_at_0018)
    metadata = sa.MetaData()
    metadata.reflect(engine, only=["customer", "event"])
    customers, events = metadata.tables["customer"], metadata.tables["event"]
    with engine.begin() as connection:
        for customer in ("cust_1", "cust_2"):
            connection.execute(
                customers.insert().values(
                    id=customer,
                    name=customer,
                    billing_anchor_day=1 if customer == "cust_1" else 15,
                    created_at=NOW,
                    currency="USD",
                    billing_start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC),
                )
            )
        for event_id, customer, start, quantity in ROWS:
            connection.execute(
                events.insert().values(
                    id=event_id,
                    customer_id=customer,
                    product="product_analytics",
                    quantity=str(quantity),
                    timestamp=start + dt.timedelta(days=2),
                    period_start=start,
                    status="accepted",
                    received_at=start + dt.timedelta(days=2),
                )
            )
    before = _events(engine)
    assert [row[0] for row in before] == ["a1", "a2", "b1"]
    engine.dispose()
    upgrade(url_at_0018)
    engine = make_engine(url_at_0018)
    assert _events(engine) == before
    with engine.connect() as connection:
        keys = connection.execute(
            sa.text("SELECT id, customer_id FROM event_key ORDER BY id")
        ).all()
        assert [tuple(key) for key in keys] == [
            ("a1", "cust_1"),
            ("a2", "cust_1"),
            ("b1", "cust_2"),
        ]
        if partitions.partitioned(connection):
            months = partitions.months(connection)
            assert {dt.date(2026, 10, 1), dt.date(2026, 11, 1)} <= set(months)
            held = connection.execute(sa.text("SELECT id FROM event_2026_11 ORDER BY id"))
            assert list(held.scalars()) == ["a2", "b1"]
            assert connection.execute(sa.text("SELECT count(*) FROM event_default")).scalar() == 0
    # a re-sent event stored before the upgrade is a duplicate, not a second event
    again = metering_service.ingest_batch(
        engine=engine,
        catalog=catalog,
        raw_events=[
            {
                "id": "a2",
                "customer": "cust_1",
                "product": "product_analytics",
                "quantity": 2,
                "timestamp": "2026-11-03T00:00:00Z",
            }
        ],
    )
    assert (again.accepted, again.duplicates, again.rejected) == (0, 1, [])
    engine.dispose()
    command.downgrade(alembic_config(url_at_0018), "0018")  # back: the same rows, keyed by id
    engine = make_engine(url_at_0018)
    assert _events(engine) == before
    engine.dispose()
