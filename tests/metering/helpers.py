"""Customers, events and ingestion for service tests."""

import datetime as dt
import threading
import time
from typing import Any

from sqlalchemy import text, update
from sqlmodel import Session

from billing.auth.models import Role
from billing.auth.service import create_key
from billing.customers import service as customers_service
from billing.customers.models import Customer, CustomerCreate
from billing.customers.periods import period_for
from billing.db import table_of
from billing.metering import service as metering_service

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def recent(now=None):
    """A minute before `now` (the real clock by default), but never before the start of
    now's period (anchor day 1): an event stamped then is in the current period, also in the
    first minute of a month. Tests that read a period back name the stamp's period."""
    now = now or dt.datetime.now(dt.UTC)
    return max(now - dt.timedelta(minutes=1), period_for(1, now).start)


def add_customer(session, customer_id="cust_1", anchor=1, billing_start=None):
    """A customer, committed; billed from `billing_start` (default: the start of the period
    holding NOW, the tests' fixed clock, when the real clock is later: the events these
    tests send are dated around NOW, and a default taken from the real clock alone refused
    them as before_billing_start once the real month moved on)."""
    if billing_start is None:
        real = period_for(anchor, dt.datetime.now(dt.UTC)).start
        billing_start = min(real, period_for(anchor, NOW).start)
    customer = customers_service.create_customer(
        connection=session.connection(),
        data=CustomerCreate(
            id=customer_id,
            name=f"Customer {customer_id}",
            billing_anchor_day=anchor,
            billing_start=billing_start,
        ),
        currency="USD",
    )
    session.commit()
    return customer


def event(
    event_id, quantity=1, product="product_analytics", customer="cust_1", at="2026-11-24T10:00:00Z"
):
    return {
        "id": event_id,
        "customer": customer,
        "product": product,
        "quantity": quantity,
        "timestamp": at,
    }


def update_customers(connection, customer=None, **values):
    """Set columns of one customer, or of every customer: backdate `created_at` (billing
    starts there too, unless `billing_start` is given), give a discount, move
    `closed_through`."""
    if "created_at" in values:
        values.setdefault("billing_start", values["created_at"])
    table = table_of(Customer)
    statement = update(table).values(**values)
    if customer is not None:
        statement = statement.where(table.c.id == customer)
    connection.execute(statement)


def ingest(session, catalog, events, now=NOW):
    """Ingest `events` through the service at `now` and commit; the result."""
    result = metering_service.ingest(
        connection=session.connection(), catalog=catalog, raw_events=events, now=now
    )
    session.commit()
    return result


def ingest_key(engine, customers=("cust_1",)):
    """The customers, and an ingest key for them (in clear), for tests of a served process."""
    with Session(engine, expire_on_commit=False) as session:
        for customer in customers:
            add_customer(session, customer)
        key, _ = create_key(connection=session.connection(), role=Role.INGEST)
        session.commit()
    return key


def waiting_backend(
    engine, holder: int, seconds: float = 10, *, unless: threading.Thread | None = None
) -> Any:  # float-ok: seconds
    """The backend waiting for a lock the backend `holder` (a pid) holds, as (pid, query),
    once there is one; None when the thread `unless` finishes first."""
    deadline = time.monotonic() + seconds
    with engine.connect() as watcher:
        while time.monotonic() < deadline:
            if unless is not None and not unless.is_alive():
                return None
            found = watcher.execute(
                text(
                    "SELECT pid, query FROM pg_stat_activity "
                    "WHERE :holder = ANY(pg_blocking_pids(pid))"
                ),
                {"holder": holder},
            ).first()
            if found is not None:
                return found
            watcher.rollback()
            time.sleep(0.02)
    raise AssertionError(f"no backend waited for a lock of backend {holder}")
