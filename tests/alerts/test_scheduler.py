"""`billing serve` sends alert webhooks by itself: its scheduler delivers the outbox."""

import datetime as dt
from decimal import Decimal as D

import pytest
from sqlmodel import Session

from billing.alerts.settings import update_settings
from tests.caps.helpers import set_cap
from tests.metering.helpers import ingest_key, recent
from tests.servers import Server, post_json, wait_for

pytestmark = pytest.mark.slow


def test_the_server_delivers_webhooks_on_its_own(engine, database_url, catalog, receiver):
    key = ingest_key(engine)
    now = dt.datetime.now(dt.UTC)
    with Session(engine) as session:
        update_settings(
            connection=session.connection(),
            customer_id="cust_1",
            changes={"webhook_url": receiver.url},
            allow_private=True,
        )
        session.flush()
        set_cap(session.connection(), catalog, "cust_1", "product_analytics", D(10), now)
        session.commit()
    server = Server(database_url=database_url)
    server.env.update(BILLING_WEBHOOK_ALLOW_PRIVATE="1", BILLING_ALERT_DELIVERY_SECONDS="0.5")
    server.start()
    try:
        at = recent(now).isoformat()
        event = {"id": "e1", "customer": "cust_1", "product": "product_analytics"}
        status, _ = post_json(
            f"{server.base}/v1/events",
            {"events": [{**event, "quantity": 1_100_000, "timestamp": at}]},
            key,
        )
        assert status == 200
        wait_for(lambda: len(receiver.requests) >= 2)
    finally:
        server.stop()
    kinds = sorted(body.split(b'"kind":"')[1].split(b'"')[0] for _, body in receiver.requests)
    assert kinds == [b"cap_50", b"free_allowance"]
