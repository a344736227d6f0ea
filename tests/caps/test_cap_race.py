"""A cap lowered while a batch is in flight: the batch read the old cap, then waited for the
running total the change holds; once the change commits, the batch is admitted under the
new cap, never under the one it replaced (PostgreSQL, where the two run side by side)."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal as D

import pytest
from sqlalchemy import text

from billing.customers.periods import period_for
from billing.metering import quota as quota_service
from billing.metering import service as metering_service
from billing.metering import store
from tests.metering.helpers import add_customer, recent, waiting_backend

PA = "product_analytics"  # 1,000,000 free, then $0.00005 per event up to 2,000,000


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_batch_waiting_for_a_cap_change_is_admitted_under_the_new_cap(engine, session, catalog):
    add_customer(session, "c1")
    now = dt.datetime.now(dt.UTC)
    stamp = recent(now).isoformat().replace("+00:00", "Z")

    def set_cap(connection, amount: str) -> None:
        quota_service.set_cap(
            connection=connection,
            catalog=catalog,
            customer_id="c1",
            product=PA,
            amount=D(amount),
            actor="admin key 1",
            now=now,
        )

    def event(event_id: str, quantity: int) -> dict[str, object]:
        return {
            "id": event_id,
            "customer": "c1",
            "product": PA,
            "quantity": quantity,
            "timestamp": stamp,
        }

    with engine.begin() as connection:
        set_cap(connection, "20")  # 200,000 paid events: up to 1,400,000
    first = metering_service.ingest_batch(
        engine=engine, catalog=catalog, raw_events=[event("e0", 1_100_000)]
    )
    assert first.accepted == 1
    holder = engine.connect()
    holder.begin()
    set_cap(holder, "1")  # buys 1,020,000, below what is accepted: the limit freezes there
    holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
    answers: list = []
    thread = threading.Thread(
        target=lambda: answers.append(
            metering_service.ingest_batch(
                engine=engine, catalog=catalog, raw_events=[event("e1", 50_000)]
            )
        )
    )
    thread.start()
    try:
        waiting_backend(engine, holder_pid)  # read the $20 cap, now waits for the total
        holder.commit()
    finally:
        holder.close()
        thread.join(30)
    assert not thread.is_alive()
    assert answers[0].over_limit == ["e1"]  # under the $20 cap it was accepted
    key = ("c1", PA, period_for(1, now).start)
    with engine.connect() as connection:
        row = store.lock_usage(connection, [key], now)[key]
    assert row.quota.cap_amount == D(1)  # the batch did not write the old cap back
    assert (row.quota.accepted, row.quota.limit_quantity) == (D(1_100_000), D(1_100_000))
