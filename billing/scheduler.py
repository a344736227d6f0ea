"""Background jobs (APScheduler 3.x), inside `billing serve` or alone as `billing worker`.

- close_periods: close due billing periods into invoices, every BILLING_CLOSE_EVERY_SECONDS
  (300 s);
- deliver_alerts: send due alert webhooks, every BILLING_ALERT_DELIVERY_SECONDS (30 s);
- run_commitments: release credit, invoice contract years, end terms, hourly;
- sync_stripe: push finalized invoices to Stripe, every BILLING_STRIPE_SYNC_EVERY_SECONDS
  (300 s), only when BILLING_STRIPE_API_KEY is set.

Each runs once at start too. Within a process a job never overlaps itself
(`max_instances=1`, missed runs coalesce); across processes on PostgreSQL each run takes
an advisory lock first (billing/jobs.py), so with several replicas only one runs a job at
a time. BILLING_SCHEDULER=0 keeps `billing serve` from running them (run `billing worker`,
or each job's command from cron, instead).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine

from billing.alerts.delivery import deliver_due
from billing.catalog import Catalog
from billing.commitments import service as commitments
from billing.db import session_scope
from billing.invoicing.close import close_due
from billing.jobs import run_exclusive
from billing.settings import Settings
from billing.stripe_sync.sync import make_client, sync_due

logger = logging.getLogger(__name__)


def jobs(engine: Engine, catalog: Catalog, settings: Settings) -> dict[str, Callable[[], str]]:
    """Each job as a function of no arguments returning a one-line summary."""

    def close_periods() -> str:
        return str(close_due(engine, catalog, dt.datetime.now(dt.UTC), settings.close_grace))

    def deliver_alerts() -> str:
        return str(
            deliver_due(
                engine,
                timeout=settings.webhook_timeout_seconds,
                allow_private=settings.webhook_allow_private,
            )
        )

    def run_commitments() -> str:
        with session_scope(engine) as session:
            moved = commitments.run_due(session.connection(), catalog, dt.datetime.now(dt.UTC))
        return f"{len(moved)} commitments moved"

    found = {
        "close_periods": close_periods,
        "deliver_alerts": deliver_alerts,
        "run_commitments": run_commitments,
    }
    if settings.stripe_api_key:
        client = make_client(settings.stripe_api_key, settings.stripe_api_base)

        def sync_stripe() -> str:
            return str(sync_due(engine, client))

        found["sync_stripe"] = sync_stripe
    else:
        logger.warning("Stripe sync is %s", settings.stripe_sync_state)
    return found


def schedule(
    scheduler: BaseScheduler, engine: Engine, catalog: Catalog, settings: Settings
) -> BaseScheduler:
    every = {
        "close_periods": settings.close_every_seconds,
        "deliver_alerts": settings.alert_delivery_seconds,
        "run_commitments": 3600.0,  # float-ok: seconds
        "sync_stripe": settings.stripe_sync_every_seconds,
    }
    for name, work in jobs(engine, catalog, settings).items():

        def run(name: str = name, work: Callable[[], str] = work) -> None:
            summary = run_exclusive(engine, name, work)
            if summary:
                logger.info("job %s: %s", name, summary)

        scheduler.add_job(
            run,
            "interval",
            seconds=every[name],
            id=name,
            max_instances=1,
            coalesce=True,
            next_run_time=dt.datetime.now(dt.UTC),
        )
    return scheduler


def start(engine: Engine, catalog: Catalog, settings: Settings) -> Any:
    """Start the jobs in a background thread; the caller shuts them down on the way out."""
    scheduler = schedule(BackgroundScheduler(timezone="UTC"), engine, catalog, settings)
    scheduler.start()
    return scheduler
