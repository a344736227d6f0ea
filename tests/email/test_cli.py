"""`billing email send`, the `send_email` job's twin, as a person runs it: off without an
SMTP host, saying so; with one, it sends what is due and prints the job's report."""

import datetime as dt
import os
import shutil
import subprocess
from decimal import Decimal as D

import pytest
from sqlmodel import Session

from billing.catalog import load_catalog
from billing.db import make_engine
from tests.caps.helpers import set_cap
from tests.conftest import TIERS
from tests.email.conftest import FROM, add_customer, outbox_rows
from tests.metering.helpers import event, ingest, recent
from tests.servers import BILLING

pytestmark = pytest.mark.slow


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path):
    path = tmp_path / "billing.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


def billing(database_url, *args, **env):
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BILLING_SMTP_")},
        "BILLING_DATABASE_URL": database_url,
        "BILLING_TIERS_DIR": str(TIERS),
        **env,
    }
    return subprocess.run(
        [str(BILLING), *args], env=environment, capture_output=True, text=True, timeout=120
    )


def test_email_send_is_off_without_a_host_and_sends_with_one(sqlite_url, mailbox):
    off = billing(sqlite_url, "email", "send")
    assert (off.returncode, off.stdout, off.stderr) == (
        1,
        "",
        "error: Email is off: BILLING_SMTP_HOST is not set\n",
    )
    engine = make_engine(sqlite_url)
    try:
        now = dt.datetime.now(dt.UTC)
        with Session(engine) as session:  # acme passes 80 % of a 10.00 USD cap, just now
            add_customer(session)
            connection = session.connection()
            set_cap(connection, load_catalog(TIERS), "acme", "product_analytics", D(10), now)
            session.commit()
            usage = [event("e1", 1_160_000, customer="acme", at=recent(now).isoformat())]
            ingest(session, load_catalog(TIERS), usage, now=now)
        smtp = {
            "BILLING_SMTP_HOST": "127.0.0.1",
            "BILLING_SMTP_PORT": str(mailbox.port),
            "BILLING_SMTP_SECURITY": "none",
            "BILLING_SMTP_FROM": FROM,
        }
        sent = billing(sqlite_url, "email", "send", **smtp)
        assert (sent.returncode, sent.stdout) == (
            0,
            "email: 2 sent, 0 to retry, 0 failed, 0 skipped\n",
        )
        assert {m["To"] for m in mailbox.received} == {"ops@acme.example"}
        assert {r.status for r in outbox_rows(engine)} == {"sent"}
    finally:
        engine.dispose()
