"""Retention on both engines (docs/operations.md, "Retention: archiving raw events"): the raw
events of closed periods before a cut-off are exported as JSON Lines and deleted; open
periods keep theirs; invoices and running totals do not move; a re-sent archived event is
refused period_closed, never counted again; a dry run deletes nothing; the command refuses
a cut-off inside the late-usage window."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal as D

from sqlalchemy import func, select

from billing.db import table_of
from billing.invoicing.models import Invoice
from billing.metering.archive import archive_events, latest_cut_off
from billing.metering.models import Event, Usage
from billing.pipeline import close_due
from tests.conftest import TIERS
from tests.metering.helpers import add_customer, ingest
from tests.servers import billing_cli

SEPT = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
OCT = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
NOV = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _event(event_id, at, quantity=1_500_000, properties=None):
    made = {
        "id": event_id,
        "customer": "cust_1",
        "product": "product_analytics",
        "quantity": quantity,
        "timestamp": at,
    }
    if properties:
        made["properties"] = properties
    return made


def _closed_september(engine, session, catalog):
    """cust_1: two September events (one with a property), one in October; September
    closed (October still open)."""
    add_customer(session, "cust_1", billing_start=SEPT)
    ingest(
        session,
        catalog,
        [
            _event("s1", "2026-09-10T08:00:00Z", properties={"project": "web"}),
            _event("s2", "2026-09-20T08:00:00Z", quantity=10),
            _event("o1", "2026-10-05T08:00:00Z", quantity=7),
        ],
        now=dt.datetime(2026, 10, 6, tzinfo=dt.UTC),
    )
    close_due(engine, catalog, dt.datetime(2026, 10, 2, tzinfo=dt.UTC), dt.timedelta(hours=1))


def _state(engine):
    invoices, usage, events = table_of(Invoice), table_of(Usage), table_of(Event)
    with engine.connect() as connection:
        billed = connection.execute(
            select(invoices.c.number, invoices.c.total).order_by(invoices.c.number)
        ).all()
        totals = connection.execute(
            select(usage.c.product, usage.c.period_start, usage.c.quantity).order_by(
                usage.c.period_start, usage.c.product
            )
        ).all()
        ids = set(connection.execute(select(events.c.id)).scalars())
    return billed, totals, ids


def test_closed_periods_are_exported_and_deleted_open_ones_kept(engine, session, catalog):
    _closed_september(engine, session, catalog)
    billed, totals, ids = _state(engine)
    assert ids == {"s1", "s2", "o1"}
    assert [total for _, total in billed] == [D("25.00")]  # 1,500,010 events in September
    written: list[dict] = []
    done = archive_events(engine, before=NOV, write=written.extend)
    # October is not closed: its event stays, whatever the cut-off
    assert (done.events, done.periods) == (2, 1)
    assert [line["id"] for line in written] == ["s1", "s2"]
    assert written[0] == {
        "id": "s1",
        "customer": "cust_1",
        "product": "product_analytics",
        "quantity": "1500000",
        "timestamp": "2026-09-10T08:00:00Z",
        "period_start": "2026-09-01T00:00:00Z",
        "status": "accepted",
        "received_at": "2026-10-06T00:00:00Z",
        "properties": {"project": "web"},
        "over_limit_products": None,
    }
    after_billed, after_totals, after_ids = _state(engine)
    assert (after_billed, after_totals) == (billed, totals)  # nothing that bills moved
    assert after_ids == {"o1"}
    # a re-sent archived event is refused: its period is closed, it is never counted again
    again = ingest(
        session, catalog, [_event("s1", "2026-09-10T08:00:00Z")], now=dt.datetime.now(dt.UTC)
    )
    assert (again.accepted, [r.error for r in again.rejected]) == (0, ["period_closed"])
    assert archive_events(engine, before=NOV, write=written.extend).events == 0


def test_a_dry_run_exports_and_deletes_nothing(engine, session, catalog):
    _closed_september(engine, session, catalog)
    written: list[dict] = []
    done = archive_events(engine, before=OCT, write=written.extend, delete_after=False)
    assert done.events == 2
    assert _state(engine)[2] == {"s1", "s2", "o1"}


def test_the_cut_off_leaves_the_late_usage_window_behind():
    now = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
    assert latest_cut_off(now, dt.timedelta(0)) == dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    assert latest_cut_off(now, dt.timedelta(days=20)) == dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    assert latest_cut_off(now, dt.timedelta(days=45)) == dt.datetime(2026, 9, 1, tzinfo=dt.UTC)


def test_the_command_writes_a_new_file_and_refuses_a_recent_cut_off(
    engine, session, catalog, database_url, tmp_path
):
    _closed_september(engine, session, catalog)
    env = {**os.environ, "BILLING_DATABASE_URL": database_url, "BILLING_TIERS_DIR": str(TIERS)}
    now = dt.datetime.now(dt.UTC)
    soon = f"{now.year}-{now.month:02d}"
    refused = billing_cli("events", "archive", "--before", soon, "-o", str(tmp_path / "x"), env=env)
    assert refused.returncode == 2
    assert "is too recent" in refused.stderr
    target = tmp_path / "events-2026-09.jsonl"
    done = billing_cli("events", "archive", "--before", "2026-10", "-o", str(target), env=env)
    assert done.returncode == 0, done.stderr
    assert "archived 2 events of 1 customer-product periods" in done.stdout
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["s1", "s2"]
    again = billing_cli("events", "archive", "--before", "2026-10", "-o", str(target), env=env)
    assert again.returncode == 2
    assert "exists" in again.stderr
    events = table_of(Event)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(events)).scalar() == 1


def test_chunks_follow_the_key_and_export_each_event_once(engine, session, catalog, monkeypatch):
    """Chunks of 2 over three customers' events (keyset pagination on customer, period
    start, id): every archivable event exported once, in key order, then deleted."""
    import billing.metering.archive as archive

    monkeypatch.setattr(archive, "CHUNK", 2)
    for customer in ("cust_a", "cust_b", "cust_c"):
        add_customer(session, customer, billing_start=SEPT)
    sent = [
        {**_event(f"{customer[-1]}{n}", f"2026-09-{10 + n}T08:00:00Z", 5), "customer": customer}
        for customer in ("cust_c", "cust_a", "cust_b")
        for n in range(3)
    ]
    ingest(session, catalog, sent, now=dt.datetime(2026, 10, 6, tzinfo=dt.UTC))
    close_due(engine, catalog, dt.datetime(2026, 10, 2, tzinfo=dt.UTC), dt.timedelta(hours=1))
    written: list[dict] = []
    done = archive_events(engine, before=OCT, write=written.extend)
    assert done.events == 9
    assert [line["id"] for line in written] == [f"{c}{n}" for c in "abc" for n in range(3)]
    assert _state(engine)[2] == set()
