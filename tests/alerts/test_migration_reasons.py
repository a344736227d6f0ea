"""Migration 0014 on data: failures stored before it keep their detail for admins and get a
public reason for the customer (the status their endpoint answered, or the generic one)."""

import sqlalchemy as sa

from billing.db import upgrade
from tests.metering.test_migration_orphans import insert


def test_stored_failures_get_a_reason_the_customer_may_see(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0013")
    old = sa.create_engine(url)
    with old.begin() as connection:
        insert(connection, "customer", id="acme", billing_anchor_day=1)
        stored = {1: "HTTP 500", 2: "no answer: timed out", 3: None}
        for alert_id, error in stored.items():
            insert(connection, "alert", id=alert_id, customer_id="acme", kind=f"k{alert_id}")
            insert(connection, "outbox", id=alert_id, alert_id=alert_id, last_error=error)
    old.dispose()
    upgrade(url)
    with sa.create_engine(url).connect() as connection:
        rows = connection.execute(
            sa.text("SELECT id, last_error, public_error FROM outbox ORDER BY id")
        ).all()
    assert [tuple(row) for row in rows] == [
        (1, "HTTP 500", "your endpoint answered HTTP 500"),
        (2, "no answer: timed out", "could not deliver to your endpoint: no HTTP answer"),
        (3, None, None),
    ]
