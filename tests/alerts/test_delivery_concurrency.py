"""Delivery runs receivers side by side: a held receiver delays only its own messages, one
URL's messages go out one at a time in order, and a URL that does not answer costs one
attempt per run, not one per message. Real receivers on 127.0.0.1."""

import threading
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from billing.alerts.delivery import deliver_due
from billing.alerts.models import Alert, Outbox
from billing.alerts.settings import update_settings
from billing.db import table_of
from billing.metering import service as metering_service
from tests.caps.helpers import set_cap
from tests.metering.helpers import NOW, add_customer, event
from tests.webhooks_out.endpoints import Endpoint, closed_port, wait_until


def fire(session, catalog, customer, url, *quantities):
    """`customer` with a $10 cap and webhooks to `url`; each quantity ingested in turn
    (1_100_000 is $5.00: cap_50; 60_000 more reaches $8.00: cap_80)."""
    add_customer(session, customer)
    update_settings(
        connection=session.connection(),
        customer_id=customer,
        changes={"webhook_url": url, "free_allowance": False},
        allow_private=True,
    )
    session.commit()
    set_cap(session.connection(), catalog, customer, "product_analytics", D(10), NOW)
    for index, quantity in enumerate(quantities):
        metering_service.ingest(
            connection=session.connection(),
            catalog=catalog,
            raw_events=[event(f"{customer}-{index}", quantity, customer=customer)],
            now=NOW,
        )
        session.commit()


def deliveries(engine, customer):
    alert, outbox = table_of(Alert), table_of(Outbox)
    with engine.connect() as connection:
        rows = connection.execute(
            select(alert.c.kind, alert.c.delivery, outbox.c.attempts)
            .join(outbox, outbox.c.alert_id == alert.c.id)
            .where(alert.c.customer_id == customer)
            .order_by(alert.c.id)
        ).all()
    return [tuple(row) for row in rows]


@pytest.fixture
def endpoints():
    made = []
    yield lambda **options: made.append(Endpoint(**options)) or made[-1]
    for endpoint in made:
        endpoint.close()


def test_a_held_receiver_delays_only_itself(engine, session, catalog, endpoints):
    released = threading.Event()
    held, quick = endpoints(hold=released), endpoints()
    fire(session, catalog, "cust_1", held.url(), 1_100_000)  # claimed first
    fire(session, catalog, "cust_2", quick.url(), 1_100_000)
    reports = []
    run = threading.Thread(
        target=lambda: reports.append(deliver_due(engine, now=NOW, timeout=30, allow_private=True))
    )
    run.start()
    try:
        assert wait_until(lambda: deliveries(engine, "cust_2") == [("cap_50", "delivered", 1)])
        assert held.arrived.is_set()
        assert run.is_alive()  # the held delivery is still waiting for its answer
        assert deliveries(engine, "cust_1") == [("cap_50", "pending", 0)]
    finally:
        released.set()
        run.join(30)
    [report] = reports
    assert (report.delivered, report.retrying, report.failed) == (2, 0, 0)
    assert deliveries(engine, "cust_1") == [("cap_50", "delivered", 1)]


def test_one_urls_messages_go_out_one_at_a_time_in_order(engine, session, catalog, endpoints):
    receiver = endpoints()
    receiver.delay = 0.2
    fire(session, catalog, "cust_1", receiver.url(), 1_100_000, 60_000)
    assert deliver_due(engine, now=NOW, allow_private=True).delivered == 2
    kinds = [request.body.split(b'"kind":"')[1].split(b'"')[0] for request in receiver.requests]
    assert kinds == [b"cap_50", b"cap_80"]
    assert receiver.most_at_once == 1


def test_a_url_that_does_not_answer_costs_one_attempt_per_run(engine, session, catalog):
    fire(session, catalog, "cust_1", f"http://127.0.0.1:{closed_port()}/x", 1_100_000, 60_000)
    report = deliver_due(engine, now=NOW, allow_private=True)
    assert (report.delivered, report.retrying, report.failed) == (0, 2, 0)
    # The first was tried and failed; the second waits for its lease to end, untried.
    assert deliveries(engine, "cust_1") == [("cap_50", "pending", 1), ("cap_80", "pending", 0)]
