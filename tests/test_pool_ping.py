"""Pooled PostgreSQL connections are pinged on checkout only after being idle a while
(billing/db.py): a connection the database dropped while it sat in the pool is replaced
before a request uses it; a busy pool sends no ping per checkout."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text

from billing import db

pytestmark = pytest.mark.postgres


@pytest.fixture
def pooled(postgres_url, monkeypatch):
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.2)
    engine = db.make_engine(postgres_url)
    yield engine
    engine.dispose()


def _pid(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_dropped_while_idle_is_replaced_before_use(pooled, postgres_url):
    first = _pid(pooled)
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    admin.dispose()
    time.sleep(0.3)  # idle past the threshold: the checkout pings, finds it dead
    assert _pid(pooled) != first  # a new connection, and no error


def test_a_busy_pool_does_not_ping_on_every_checkout(pooled):
    pid = _pid(pooled)
    pings: list[object] = []
    original = pooled.dialect.do_ping
    pooled.dialect.do_ping = lambda connection: pings.append(connection) or original(connection)
    try:
        for _ in range(5):
            assert _pid(pooled) == pid
        assert pings == []  # used within the threshold: trusted
        time.sleep(0.3)
        assert _pid(pooled) == pid
        assert len(pings) == 1  # idle past it: pinged once, alive
    finally:
        pooled.dialect.do_ping = original
