"""Fixtures of the Stripe sync tests: a closed October to sync."""

import pytest
from sqlalchemy import text

from billing.pipeline import close_due
from tests.invoicing.test_close import GRACE, NOV_1, at_oct, created, ingest

AFTER = NOV_1 + GRACE


@pytest.fixture
def closed(engine, session, catalog):
    """Customer cust_1 with October closed: product_analytics 10.00 + session_replay 25.00."""
    created(session)
    ingest(session, catalog, [at_oct("a", 1_200_000), at_oct("b", 10_000, "session_replay")])
    session.close()
    close_due(engine, catalog, AFTER, GRACE)
    with engine.connect() as connection:
        return connection.execute(text("SELECT id, amount_due FROM invoice")).one()
