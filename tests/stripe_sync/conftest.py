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


def kill_sync_while(stripe_api, database_url, hang_on, as_of):
    """Run `billing stripe sync --as-of` as a process, SIGKILL it while Stripe answers a
    request to `hang_on` (the request still completes in Stripe), then let Stripe go on."""
    import os
    import signal
    import subprocess

    from tests.conftest import TIERS
    from tests.servers import BILLING

    stripe_api.hang_on = hang_on
    env = {
        **os.environ,
        "BILLING_DATABASE_URL": database_url,
        "BILLING_TIERS_DIR": str(TIERS),
        "BILLING_STRIPE_API_KEY": "sk_test_emulator",
        "BILLING_STRIPE_API_BASE": stripe_api.base,
    }
    process = subprocess.Popen(
        [str(BILLING), "stripe", "sync", "--as-of", as_of.isoformat()],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert stripe_api.hung.wait(60)  # Stripe is working on the held request
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        stripe_api.release.set()
        if process.poll() is None:
            process.kill()
    stripe_api.hang_on = None
