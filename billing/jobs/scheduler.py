"""The jobs of the registry on APScheduler 3.x, inside `billing serve` or alone as
`billing worker`.

Each job that is on runs once at start, then every `interval` seconds. Within a process a job
never overlaps itself (`max_instances=1`, missed runs coalesce); across processes on
PostgreSQL each run tries the job's advisory lock first and skips when another process holds
it (billing/jobs/runner.py), so with several replicas only one runs a job at a time.
BILLING_SCHEDULER=0 keeps `billing serve` from running them (run `billing worker`, or each
job's command from cron, instead).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from functools import partial
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine

from billing.catalog import Catalog
from billing.jobs import registry, runner
from billing.jobs.context import JobContext
from billing.settings import Settings

logger = logging.getLogger(__name__)


def schedule(scheduler: BaseScheduler, context: JobContext) -> BaseScheduler:
    """Add every job that is on under the context's settings, each first due now."""
    settings = context.settings
    for job in registry.JOBS:
        reason = job.off_reason(settings)
        if reason is not None:
            logger.warning("%s", reason)
            continue
        scheduler.add_job(
            partial(_tick, job, context),
            "interval",
            seconds=job.interval(settings),
            id=job.name,
            max_instances=1,
            coalesce=True,
            next_run_time=dt.datetime.now(dt.UTC),
        )
    return scheduler


def _tick(job: registry.Job[object], context: JobContext) -> None:
    """One scheduled run: skipped when another process runs the job, else its summary logged."""
    report = runner.run_if_free(job, context)
    summary = "" if report is None else str(report)
    if summary:
        # a run that found nothing to do is a heartbeat: debug, not a line every 30 s
        level = logging.INFO if did_something(summary) else logging.DEBUG
        logger.log(level, "job %s: %s", job.name, summary)


def did_something(summary: str) -> bool:
    """Whether a job's one-line summary counts anything (a number other than 0 in it)."""
    return any(int(number) for number in re.findall(r"\d+", summary))


def start(engine: Engine, catalog: Catalog, settings: Settings) -> Any:
    """Start the jobs in a background thread; the caller shuts them down on the way out."""
    context = JobContext(engine=engine, settings=settings, catalog=catalog)
    scheduler = schedule(BackgroundScheduler(timezone="UTC"), context)
    scheduler.start()
    return scheduler
