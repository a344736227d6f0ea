"""Each job's command twin runs the registry's job through the runner: it prints the job's
report, and its run is recorded in job_run like a scheduled one."""

import os
import shutil
import subprocess

import pytest
from sqlalchemy import select

from billing.db import make_engine, table_of
from billing.jobs.models import JobRun
from tests.conftest import TIERS
from tests.servers import BILLING

pytestmark = pytest.mark.slow
AS_OF = "2026-11-01T01:00:00+00:00"


@pytest.fixture
def sqlite_url(sqlite_template, tmp_path):
    path = tmp_path / "billing.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


def billing(database_url, *args):
    env = {**os.environ, "BILLING_DATABASE_URL": database_url, "BILLING_TIERS_DIR": str(TIERS)}
    env.pop("BILLING_STRIPE_API_KEY", None)
    return subprocess.run(
        [str(BILLING), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_each_twin_prints_its_report_and_records_its_run(sqlite_url):
    printed = {
        "close_periods": billing(sqlite_url, "invoices", "close", "--as-of", AS_OF),
        "deliver_alerts": billing(sqlite_url, "alerts", "deliver", "--as-of", AS_OF),
        "run_commitments": billing(sqlite_url, "credits", "release", "--as-of", AS_OF),
    }
    assert {job: (p.returncode, p.stdout) for job, p in printed.items()} == {
        "close_periods": (0, "closed: 0 invoices for 0 customers (0.00 USD due)\n"),
        "deliver_alerts": (0, "webhooks: 0 delivered, 0 to retry, 0 failed\n"),
        "run_commitments": (0, "credits: 0 commitments moved, 0 invoices, 0 entries\n"),
    }
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            table = table_of(JobRun)
            recorded = connection.execute(select(table.c.job, table.c.status, table.c.detail))
            rows = {job: (status, detail) for job, status, detail in recorded}
    finally:
        engine.dispose()
    assert rows == {
        "close_periods": ("ok", "0 invoices for 0 customers"),
        "deliver_alerts": ("ok", "0 delivered, 0 to retry, 0 failed"),
        "run_commitments": ("ok", "0 commitments moved"),
    }


def test_a_twin_refuses_a_job_that_is_off_and_an_instant_without_a_zone(sqlite_url):
    off = billing(sqlite_url, "stripe", "sync")
    assert (off.returncode, off.stderr) == (
        1,
        "error: Stripe sync is off: BILLING_STRIPE_API_KEY is not set\n",
    )
    naive = billing(sqlite_url, "invoices", "close", "--as-of", "2026-11-01T01:00:00")
    assert naive.returncode == 2
    assert "--as-of: needs a time zone (Z or +00:00)" in naive.stderr
