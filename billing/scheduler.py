"""Background jobs inside `billing serve` (APScheduler 3.x, one thread per process).

- deliver alert webhooks, every BILLING_ALERT_DELIVERY_SECONDS (30 s);
- run commitments (release credit, invoice contract years, end terms), hourly and at start;
- close due billing periods into invoices, every 5 minutes and at start.

Jobs never overlap themselves within a process (`max_instances=1`, missed runs coalesce),
and each is safe to run in several processes at once: webhook delivery claims every
message before sending it (alerts/delivery.py). BILLING_SCHEDULER=0 turns them off, for
instance to run `billing alerts deliver` from cron instead.
"""

from __future__ import annotations

import datetime as dt
import logging

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from billing.alerts.delivery import deliver_due
from billing.catalog import Catalog
from billing.commitments import service as commitments
from billing.db import session_scope
from billing.invoicing.close import close_due
from billing.settings import Settings

logger = logging.getLogger(__name__)


def start(engine: Engine, catalog: Catalog, settings: Settings) -> BackgroundScheduler:
    """Start the jobs; the caller shuts the scheduler down on the way out."""
    scheduler = BackgroundScheduler(timezone="UTC")

    def deliver_alerts() -> None:
        report = deliver_due(
            engine,
            timeout=settings.webhook_timeout_seconds,
            allow_private=settings.webhook_allow_private,
        )
        if report.delivered or report.retrying or report.failed:
            logger.info("alert webhooks: %s", report)

    def run_commitments() -> None:
        with session_scope(engine) as session:
            outcomes = commitments.run_due(session.connection(), catalog, dt.datetime.now(dt.UTC))
        if outcomes:
            logger.info("commitments: %d moved", len(outcomes))

    def close_periods() -> None:
        report = close_due(engine, catalog, dt.datetime.now(dt.UTC), settings.close_grace)
        if report.invoices:
            logger.info("period close: %s", report)

    scheduler.add_job(
        close_periods,
        "interval",
        minutes=5,
        id="close_periods",
        max_instances=1,
        coalesce=True,
        next_run_time=dt.datetime.now(dt.UTC),
    )
    scheduler.add_job(
        run_commitments,
        "interval",
        hours=1,
        id="run_commitments",
        max_instances=1,
        coalesce=True,
        next_run_time=dt.datetime.now(dt.UTC),  # and once at start
    )
    scheduler.add_job(
        deliver_alerts,
        "interval",
        seconds=settings.alert_delivery_seconds,
        id="deliver_alerts",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler
