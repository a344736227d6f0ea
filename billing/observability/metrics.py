"""Prometheus metrics (served at /metrics). Each process counts its own; with
`billing serve --workers N`, scrape each worker or run one worker per replica."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "billing_events_total",
    "Events received by POST /v1/events, by outcome (accepted, duplicate, over_limit, "
    "rejected) and, for rejections, the reason",
    ["outcome", "reason"],
)
INGEST_SECONDS = Histogram(
    "billing_ingest_seconds",
    "Time to ingest a POST /v1/events request, committed, answered",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),  # float-ok: seconds
)
STRIPE_SYNC = Counter(
    "billing_stripe_sync_total",
    "Invoices pushed to Stripe by outcome (synced, retrying, failed, mismatched, voided)",
    ["outcome"],
)
JOBS = Counter("billing_jobs_total", "Background job runs by job and status", ["job", "status"])
HTTP_REQUESTS = Counter(
    "billing_http_requests_total", "HTTP requests by method and status class", ["method", "status"]
)
RATE_LIMITED = Counter("billing_rate_limited_total", "Requests refused by a rate limit", ["path"])
REPLICA_FALLBACKS = Counter(
    "billing_replica_fallbacks_total",
    "Reads meant for the read replica sent to the primary, by reason (lagging, unreachable, "
    "unchecked: the first check still running)",
    ["reason"],
)
REPLICA_LAG = Gauge(
    "billing_replica_lag_seconds",
    "How far behind its primary the read replica was when last checked",
)


def record_ingest(answer: dict[str, Any], seconds: float) -> None:  # float-ok: seconds
    """Count one ingestion answer (the JSON of POST /v1/events)."""
    INGEST_SECONDS.observe(seconds)
    if answer["accepted"]:
        EVENTS.labels("accepted", "").inc(answer["accepted"])
    if answer["duplicates"]:
        EVENTS.labels("duplicate", "").inc(answer["duplicates"])
    if answer["over_limit"]:
        EVENTS.labels("over_limit", "").inc(len(answer["over_limit"]))
    for rejection in answer["rejected"]:
        EVENTS.labels("rejected", rejection["error"]).inc()


def record_sync(report: Any) -> None:
    """Count one Stripe sync run's report."""
    for outcome in ("synced", "retrying", "failed", "mismatched", "voided"):
        count = getattr(report, outcome)
        if count:
            STRIPE_SYNC.labels(outcome).inc(count)
