"""The job registry drives the scheduler, and the runner records every run it makes."""

import datetime as dt
import logging
import uuid

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import REGISTRY
from sqlalchemy import select

from billing.db import table_of
from billing.jobs import registry, runner, scheduler
from billing.jobs.context import JobContext
from billing.jobs.models import JobRun
from billing.pipeline import CloseReport
from billing.settings import Settings
from tests.conftest import TIERS


def settings(**changes):
    return Settings(tiers_dir=TIERS, database_url="sqlite://", **changes)


def scheduled(chosen):
    context = JobContext(engine=None, settings=chosen)  # nothing runs: the scheduler is not started
    jobs = scheduler.schedule(BackgroundScheduler(timezone="UTC"), context).get_jobs()
    return {job.id: job for job in jobs}


def runs(engine, job):
    table = table_of(JobRun)
    with engine.connect() as connection:
        return list(connection.execute(select(table).where(table.c.job == job)))


def counted(job, status):
    value = REGISTRY.get_sample_value("billing_jobs_total", {"job": job, "status": status})
    return value or 0


def test_the_scheduler_runs_every_job_of_the_registry_on_the_interval_its_settings_give():
    jobs = scheduled(
        settings(
            stripe_api_key="sk_test_x",
            smtp_host="smtp.example.com",
            smtp_from="Billing <billing@example.com>",
            close_every_seconds=7,
            alert_delivery_seconds=3,
            stripe_sync_every_seconds=11,
        )
    )
    assert list(jobs) == [job.name for job in registry.JOBS]
    every = {name: job.trigger.interval for name, job in jobs.items()}
    assert every == {
        "close_periods": dt.timedelta(seconds=7),
        "deliver_alerts": dt.timedelta(seconds=3),
        "deliver_events": dt.timedelta(seconds=3),
        "run_commitments": dt.timedelta(hours=1),
        "sync_stripe": dt.timedelta(seconds=11),
        "purge_idempotency_keys": dt.timedelta(hours=1),
        "send_email": dt.timedelta(seconds=30),
        "partition_events": dt.timedelta(hours=1),
    }
    assert all(job.max_instances == 1 and job.coalesce for job in jobs.values())


def test_without_a_stripe_key_the_sync_job_is_off_and_the_log_says_so(caplog):
    caplog.set_level(logging.WARNING, logger="billing.jobs.scheduler")
    jobs = scheduled(settings(stripe_api_key=None))
    assert list(jobs) == [
        "close_periods",
        "deliver_alerts",
        "deliver_events",
        "run_commitments",
        "purge_idempotency_keys",
        "partition_events",
    ]
    assert "Stripe sync is off: BILLING_STRIPE_API_KEY is not set" in caplog.messages
    assert not registry.SYNC_STRIPE.enabled(settings(stripe_api_key=None))
    assert registry.SYNC_STRIPE.enabled(settings(stripe_api_key="sk_test_x"))


def test_a_run_is_recorded_with_its_summary_and_counted(engine, catalog):
    context = JobContext(engine=engine, settings=settings(), catalog=catalog)
    before = counted("close_periods", "ok")
    report = runner.run_waiting(registry.CLOSE_PERIODS, context)
    assert isinstance(report, CloseReport)
    [run] = runs(engine, "close_periods")
    assert (run.status, run.detail, run.runner) == ("ok", str(report), runner.RUNNER)
    assert run.started_at <= run.finished_at
    assert counted("close_periods", "ok") == before + 1


def test_a_failed_run_is_recorded_with_its_error_and_raised(engine, catalog):
    def broken(context, as_of):
        raise ValueError(f"no clock at {as_of:%Y-%m-%d}")

    name = f"test_{uuid.uuid4().hex[:8]}"
    job = registry.Job(name, lambda s: 1.0, broken)
    context = JobContext(engine=engine, settings=settings(), catalog=catalog)
    with pytest.raises(ValueError, match="no clock"):
        runner.run_if_free(job, context, dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    [run] = runs(engine, name)
    assert (run.status, run.detail) == ("failed", "ValueError: no clock at 2026-11-01")
    assert run.finished_at is not None
    assert counted(name, "failed") == 1
