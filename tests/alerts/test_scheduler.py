"""`billing serve` sends alert webhooks by itself: its scheduler delivers the outbox."""

import datetime as dt
import time
from decimal import Decimal as D

import pytest
from sqlmodel import Session

from billing.alerts.settings import update_settings
from billing.metering import quota as quota_service
from tests.metering.helpers import recent
from tests.metering.test_crash_and_concurrency import prepare
from tests.servers import Receiver, Server, post_json

pytestmark = pytest.mark.slow


def test_the_server_delivers_webhooks_on_its_own(engine, database_url, catalog):
    receiver = Receiver()
    key = prepare(engine)
    now = dt.datetime.now(dt.UTC)
    with Session(engine) as session:
        update_settings(
            session=session,
            customer_id="cust_1",
            changes={"webhook_url": receiver.url},
            allow_private=True,
        )
        session.flush()
        quota_service.set_cap(
            connection=session.connection(),
            catalog=catalog,
            customer_id="cust_1",
            product="product_analytics",
            amount=D(10),
            actor="test",
            now=now,
        )
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
        deadline = time.monotonic() + 20
        while len(receiver.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.stop()
        receiver.close()
    kinds = sorted(body.split(b'"kind":"')[1].split(b'"')[0] for _, body in receiver.requests)
    assert kinds == [b"cap_50", b"free_allowance"]
