"""The background jobs, each defined once.

- close_periods: close due billing periods into invoices, every BILLING_CLOSE_EVERY_SECONDS
  (300 s);
- deliver_alerts: send due alert webhooks, every BILLING_ALERT_DELIVERY_SECONDS (30 s);
- deliver_events: send billing events to webhook endpoints, on the same schedule;
- run_commitments: release credit, invoice contract years, end terms, hourly;
- sync_stripe: push finalized invoices to Stripe, every BILLING_STRIPE_SYNC_EVERY_SECONDS
  (300 s), only when BILLING_STRIPE_API_KEY is set.
- send_email: send due usage-alert and invoice emails, every 30 s, only when
  BILLING_SMTP_HOST is set;
- partition_events: make the event table's monthly partitions ahead (PostgreSQL,
  BILLING_EVENTS_PARTITIONS_AHEAD) and, when BILLING_EVENTS_KEEP_MONTHS is set, archive the
  raw events of long-closed periods; hourly.

A run does its work as at `as_of` (None: the clock, which is what the scheduler passes; the
command twins pass `--as-of` for replays) and returns a report whose `str()` is the one-line
summary that is logged and kept in `job_run`.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from billing.alerts.delivery import DeliveryReport, deliver_due
from billing.commitments import service as commitments
from billing.email.outbox import SendReport
from billing.idempotency import service as idempotency
from billing.jobs.context import JobContext
from billing.metering import partitions
from billing.metering.archive import Retained, retain
from billing.notices.sending import send_due as send_due_email
from billing.notifications import delivery as event_delivery
from billing.pipeline import CloseReport, close_due, run_commitments
from billing.settings import Settings
from billing.stripe_sync.sync import Collection, SyncReport, sync_due
from billing.webhooks_out.send import send

R_co = TypeVar("R_co", covariant=True)  # a run's report; str(report) is its summary


def _always_on(settings: Settings) -> str | None:
    return None


@dataclass(frozen=True)
class Job(Generic[R_co]):
    """A background job: its name (the lock and the `job_run` rows carry it), the seconds
    between scheduled runs under some settings, what one run does, and why it is off (None:
    on)."""

    name: str
    interval: Callable[[Settings], float]  # float-ok: seconds
    run: Callable[[JobContext, dt.datetime | None], R_co]
    off_reason: Callable[[Settings], str | None] = _always_on

    def enabled(self, settings: Settings) -> bool:
        """Whether the job runs at all under these settings."""
        return self.off_reason(settings) is None


def _now(as_of: dt.datetime | None) -> dt.datetime:
    return as_of or dt.datetime.now(dt.UTC)


def _close_periods(context: JobContext, as_of: dt.datetime | None) -> CloseReport:
    settings = context.settings
    return close_due(
        context.engine,
        context.catalog,
        _now(as_of),
        settings.close_grace,
        processes=settings.close_processes,
    )


def _deliver_alerts(context: JobContext, as_of: dt.datetime | None) -> DeliveryReport:
    settings = context.settings
    return deliver_due(
        context.engine,
        now=as_of,
        timeout=settings.webhook_timeout_seconds,
        allow_private=settings.webhook_allow_private,
    )


def _deliver_events(
    context: JobContext, as_of: dt.datetime | None
) -> event_delivery.DeliveryReport:
    settings = context.settings
    sender = functools.partial(
        send,
        deadline=settings.webhook_timeout_seconds,
        allow_private=settings.webhook_allow_private,
    )
    return event_delivery.deliver_due(context.engine, sender, now=as_of)


@dataclass(frozen=True)
class CommitmentsRun:
    """What a run of the commitments job did: each commitment it moved forward."""

    moved: tuple[commitments.Outcome, ...]

    @property
    def invoices(self) -> int:
        """Invoices issued (contract years)."""
        return sum(len(outcome.invoices) for outcome in self.moved)

    @property
    def entries(self) -> int:
        """Credit ledger entries written (releases, expiries)."""
        return sum(len(outcome.entries) for outcome in self.moved)

    def __str__(self) -> str:
        return f"{len(self.moved)} commitments moved"


def _run_commitments(context: JobContext, as_of: dt.datetime | None) -> CommitmentsRun:
    grace = context.settings.close_grace
    report = run_commitments(context.engine, context.catalog, _now(as_of), grace)
    return CommitmentsRun(tuple(report.moved))


def _sync_stripe(context: JobContext, as_of: dt.datetime | None) -> SyncReport:
    settings = context.settings
    collection = Collection(settings.stripe_collection_method, settings.stripe_days_until_due)
    return sync_due(context.engine, context.stripe, as_of, collection)


@dataclass(frozen=True)
class Purged:
    """What a purge of idempotency keys did."""

    keys: int

    def __str__(self) -> str:
        return f"{self.keys} expired idempotency keys removed"


def _purge_idempotency_keys(context: JobContext, as_of: dt.datetime | None) -> Purged:
    return Purged(idempotency.purge(context.engine, _now(as_of)))


def _stripe_off(settings: Settings) -> str | None:
    return None if settings.stripe_api_key else f"Stripe sync is {settings.stripe_sync_state}"


def _send_email(context: JobContext, as_of: dt.datetime | None) -> SendReport:
    return send_due_email(context.engine, context.settings, as_of)


def _email_off(settings: Settings) -> str | None:
    return None if settings.smtp_host else f"Email is {settings.email_state}"


@dataclass(frozen=True)
class PartitionRun:
    """What a run of partition_events did: the months whose partition it made (first days),
    and the retention it ran (None: BILLING_EVENTS_KEEP_MONTHS is not set)."""

    created: tuple[dt.date, ...]
    retained: Retained | None

    def __str__(self) -> str:
        made = ", ".join(f"{month:%Y-%m}" for month in self.created)
        summary = f"{len(self.created)} event partitions made" + (f" ({made})" if made else "")
        return summary if self.retained is None else f"{summary}; {self.retained}"


def _partition_events(context: JobContext, as_of: dt.datetime | None) -> PartitionRun:
    settings, now = context.settings, _now(as_of)
    with context.engine.begin() as connection:
        created = partitions.create_ahead(connection, now, settings.events_partitions_ahead)
    retained = None
    if settings.events_keep_months is not None:
        retained = retain(
            context.engine,
            now=now,
            keep_months=settings.events_keep_months,
            window=context.catalog.late_usage.window,
            directory=settings.events_archive_dir
            if settings.events_retention == "export"
            else None,
        )
    return PartitionRun(tuple(created), retained)


HOUR = 3600  # seconds
EMAIL_EVERY = 30  # seconds

CLOSE_PERIODS = Job(
    name="close_periods", interval=lambda s: s.close_every_seconds, run=_close_periods
)
DELIVER_ALERTS = Job(
    name="deliver_alerts", interval=lambda s: s.alert_delivery_seconds, run=_deliver_alerts
)
DELIVER_EVENTS = Job(
    name="deliver_events", interval=lambda s: s.alert_delivery_seconds, run=_deliver_events
)
RUN_COMMITMENTS = Job(name="run_commitments", interval=lambda s: HOUR, run=_run_commitments)
SYNC_STRIPE = Job(
    name="sync_stripe",
    interval=lambda s: s.stripe_sync_every_seconds,
    run=_sync_stripe,
    off_reason=_stripe_off,
)

PURGE_IDEMPOTENCY_KEYS = Job(
    name="purge_idempotency_keys", interval=lambda s: HOUR, run=_purge_idempotency_keys
)
SEND_EMAIL = Job(
    name="send_email", interval=lambda s: EMAIL_EVERY, run=_send_email, off_reason=_email_off
)

PARTITION_EVENTS = Job(name="partition_events", interval=lambda s: HOUR, run=_partition_events)

JOBS: tuple[Job[object], ...] = (
    CLOSE_PERIODS,
    DELIVER_ALERTS,
    DELIVER_EVENTS,
    RUN_COMMITMENTS,
    SYNC_STRIPE,
    PURGE_IDEMPOTENCY_KEYS,
    SEND_EMAIL,
    PARTITION_EVENTS,
)
