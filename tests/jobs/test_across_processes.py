"""Background jobs across processes on PostgreSQL: a job held by one process is skipped by
the scheduler of the others (advisory locks) and waited for by a command twin, and two
`billing worker` processes never run a job at once."""

import itertools
import os
import subprocess
import time
import uuid

import pytest
from sqlalchemy import select, text

from billing.db import make_engine, table_of
from billing.jobs import registry, runner
from billing.jobs.context import JobContext
from billing.jobs.models import JobRun
from billing.jobs.runner import job_lock_key
from billing.settings import Settings
from tests.conftest import TIERS, _postgres_schema, blocked_by
from tests.servers import BILLING

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def start_worker(database_url):
    env = {
        **os.environ,
        "BILLING_DATABASE_URL": database_url,
        "BILLING_TIERS_DIR": str(TIERS),
        "BILLING_CLOSE_EVERY_SECONDS": "0.2",
        "BILLING_ALERT_DELIVERY_SECONDS": "0.2",
        "BILLING_LOG_LEVEL": "warning",
    }
    return subprocess.Popen(
        [str(BILLING), "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def runs(engine, job=None):
    table = table_of(JobRun)
    query = select(table).order_by(table.c.started_at)
    if job:
        query = query.where(table.c.job == job)
    with engine.connect() as connection:
        return list(connection.execute(query))


def waiting_for(engine, job):
    """Whether some session waits for the job's advisory lock (a bigint key is split in two)."""
    key = job_lock_key(engine, job) & 0xFFFFFFFFFFFFFFFF
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid::bigint = :high AND objid::bigint = :low AND objsubid = 1"
    )
    with engine.connect() as connection:
        return connection.execute(query, {"high": key >> 32, "low": key & 0xFFFFFFFF}).scalar()


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def database_url(postgres_url):
    """A PostgreSQL schema of its own (advisory locks are PostgreSQL's)."""
    yield from _postgres_schema(postgres_url)


@pytest.fixture
def pg_engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_a_job_held_elsewhere_is_skipped_until_released(pg_engine, database_url):
    with pg_engine.connect() as holder:
        holder.execute(
            text("SELECT pg_advisory_lock(:k)"), {"k": job_lock_key(pg_engine, "close_periods")}
        )
        holder.commit()
        worker = start_worker(database_url)
        try:
            deadline = time.monotonic() + 30
            while len(runs(pg_engine, "deliver_alerts")) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(runs(pg_engine, "deliver_alerts")) >= 3  # the worker is running jobs
            assert runs(pg_engine, "close_periods") == []  # but not the one we hold
            holder.execute(
                text("SELECT pg_advisory_unlock(:k)"),
                {"k": job_lock_key(pg_engine, "close_periods")},
            )
            holder.commit()
            while not runs(pg_engine, "close_periods") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert runs(pg_engine, "close_periods")
        finally:
            stop(worker)


def test_two_workers_never_run_a_job_at_the_same_time(pg_engine, database_url):
    workers = [start_worker(database_url) for _ in range(2)]
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            done = [r for r in runs(pg_engine) if r.finished_at is not None]
            if len({r.runner for r in done}) == 2 and len(done) >= 30:
                break
            time.sleep(0.2)
    finally:
        for worker in workers:
            stop(worker)
    finished = [r for r in runs(pg_engine) if r.finished_at is not None]
    assert len({r.runner for r in finished}) == 2  # both workers ran jobs
    for job in ("close_periods", "deliver_alerts"):
        mine = sorted((r for r in finished if r.job == job), key=lambda r: r.started_at)
        assert len(mine) >= 5
        for earlier, later in itertools.pairwise(mine):
            assert earlier.finished_at <= later.started_at, (job, earlier, later)


def test_a_run_that_finds_its_job_held_is_skipped_and_leaves_no_record(pg_engine, database_url):
    name = f"test_{uuid.uuid4().hex[:8]}"  # a lock no other test run takes
    job = registry.Job(name, lambda s: 1.0, lambda context, as_of: "done")
    context = JobContext(engine=pg_engine, settings=Settings(database_url=database_url))
    with pg_engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": job_lock_key(pg_engine, name)})
        holder.commit()
        assert runner.run_if_free(job, context) is None
        assert runs(pg_engine, name) == []
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": job_lock_key(pg_engine, name)})
        holder.commit()
    assert runner.run_if_free(job, context) == "done"
    assert [(r.status, r.detail) for r in runs(pg_engine, name)] == [("ok", "done")]


def test_a_command_twin_waits_for_its_job_held_elsewhere_then_runs(pg_engine, database_url):
    env = {**os.environ, "BILLING_DATABASE_URL": database_url, "BILLING_TIERS_DIR": str(TIERS)}
    key = job_lock_key(pg_engine, "close_periods")
    with pg_engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        holder.commit()
        twin = subprocess.Popen(
            [str(BILLING), "invoices", "close"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not waiting_for(pg_engine, "close_periods") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert waiting_for(pg_engine, "close_periods")  # it asked for the lock and waits
            time.sleep(0.5)
            assert twin.poll() is None  # it neither skipped nor ran beside the holder
            assert runs(pg_engine, "close_periods") == []
            holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            holder.commit()
            out, err = twin.communicate(timeout=60)
        finally:
            if twin.poll() is None:
                twin.kill()
                twin.wait()
    assert twin.returncode == 0, err
    assert out == "closed: 0 invoices for 0 customers (0.00 USD due)\n"
    assert [(r.status, r.detail) for r in runs(pg_engine, "close_periods")] == [
        ("ok", "0 invoices for 0 customers")
    ]


@pytest.mark.parametrize(
    ("command", "job", "says"),
    [
        (("invoices", "close"), "close_periods", "closed:"),
        (("alerts", "deliver"), "deliver_alerts", "webhooks:"),
        (("credits", "release"), "run_commitments", "credits:"),
        (("stripe", "sync"), "sync_stripe", "stripe:"),
    ],
)
def test_a_cli_twin_waits_for_its_jobs_lock_then_runs(pg_engine, database_url, command, job, says):
    env = {
        **os.environ,
        "BILLING_DATABASE_URL": database_url,
        "BILLING_TIERS_DIR": str(TIERS),
        "BILLING_STRIPE_API_KEY": "sk_test_no_calls_made",  # nothing to sync: no request
        "BILLING_STRIPE_API_BASE": "http://127.0.0.1:9",
    }
    with pg_engine.connect() as holder:  # the scheduler of another replica runs the job
        held = job_lock_key(pg_engine, job)
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": held})
        holder.commit()
        holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
        twin = subprocess.Popen(
            [str(BILLING), *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 60
            while blocked_by(pg_engine, holder_pid) == 0:
                assert twin.poll() is None, twin.communicate()
                assert time.monotonic() < deadline, "the twin never asked for the lock"
                time.sleep(0.1)
            time.sleep(1)  # it keeps waiting: no run of its own meanwhile
            assert twin.poll() is None
            assert runs(pg_engine, job) == []
            holder.execute(
                text("SELECT pg_advisory_unlock(:k)"), {"k": job_lock_key(pg_engine, job)}
            )
            holder.commit()
            out, err = twin.communicate(timeout=60)
        finally:
            if twin.poll() is None:
                twin.kill()
                twin.communicate()
    assert twin.returncode == 0, err
    assert out.decode().startswith(says)
    [run] = runs(pg_engine, job)
    assert (run.status, run.finished_at is not None) == ("ok", True)
