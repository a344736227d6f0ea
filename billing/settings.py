"""Settings from the environment, every one prefixed BILLING_."""

from __future__ import annotations

import datetime as dt
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The shortest interval between checkpoints of SQLite's write-ahead log (billing/sqlite_wal.py):
# shorter would only spin on an idle log.
SQLITE_CHECKPOINT_MIN_SECONDS = 0.01  # float-ok: seconds


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_", extra="ignore")

    database_url: str = Field(
        "sqlite:///./billing.db", description="SQLAlchemy URL; PostgreSQL via postgresql+psycopg"
    )
    tiers_dir: Path = Field(Path("pricing_tiers"), description="directory of tier files")
    replica_url: str | None = Field(
        None,
        description="SQLAlchemy URL of a read replica of the database: the finance reports, the "
        "finance invoice list and revenue pages and the portal overview read there (docs/"
        'operations.md, "Read replica"); writes never do; unset: everything reads the primary',
    )
    replica_max_lag_seconds: float = Field(  # float-ok: seconds
        30.0,
        gt=0,
        description="how far behind the primary the read replica may be; further behind (or "
        "unreachable), its reads go to the primary",
    )
    # --- raw events: partitions and retention (docs/operations.md) -------------------------
    events_partitions_ahead: int = Field(
        3,
        ge=0,
        le=24,
        description="how many months after the current one have their event partition made "
        "ahead by the partition_events job (PostgreSQL)",
    )
    events_keep_months: int | None = Field(
        None,
        ge=0,
        description="when set, the partition_events job archives the raw events of closed "
        "periods starting before this many whole months before the current one (never inside "
        "the late-usage window); unset: raw events are kept",
    )
    events_retention: Literal["export", "drop"] = Field(
        "export",
        description="what archiving does with raw events: export them as JSON Lines to "
        "BILLING_EVENTS_ARCHIVE_DIR, then delete them; or drop them without an export",
    )
    events_archive_dir: Path | None = Field(
        None,
        description="where the partition_events job writes its archives (events-before-"
        "YYYY-MM-<time>.jsonl); needed when BILLING_EVENTS_KEEP_MONTHS is set with export",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    log_format: str = Field(
        "auto",
        pattern="^(auto|json|text)$",
        description="auto: text on a terminal, JSON otherwise; json: one JSON object a line; text",
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        gt=0,
        description="largest request body accepted (POST /v1/events has its own 5 MB limit)",
    )
    quote_rate_per_minute: int = Field(
        120,
        ge=0,
        description="quotes a minute per client IP, POST /v1/quote and GET /pricing together "
        "(0: no limit)",
    )
    signin_rate_per_minute: int = Field(
        10, ge=0, description="finance key sign-in attempts a minute per client IP (0: no limit)"
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="origins allowed to call the API from a browser (JSON list); none by default",
    )
    forwarded_allow_ips: str | None = Field(
        None,
        description="proxies whose X-Forwarded-For/-Proto are trusted (uvicorn's "
        "--forwarded-allow-ips); unset: none",
    )
    ingest_writers: int | None = Field(
        None,
        ge=1,
        le=16,
        description="threads per process that write grouped ingestion requests (under 1,000 "
        "events), each in transactions of its own; unset: 2 on PostgreSQL (one group's Python "
        "work runs while another waits for the database) when `billing serve` runs one worker "
        "process, 1 with several (their writers already run side by side) and on SQLite (one "
        "writer at a time)",
    )
    sqlite_checkpoint_seconds: float = Field(  # float-ok: seconds
        0.25,
        ge=0,
        le=60,
        description="on SQLite, how often `billing serve` checkpoints the write-ahead log from "
        "a thread of its own (0, or 0.01 to 60; 0: off, and commits checkpoint it past "
        "10,000 pages of log, as they do when they never pause long enough for the thread)",
    )
    migrate_on_start: bool = Field(
        True, description="`billing serve` applies migrations before starting (off in production)"
    )
    key_cache_seconds: float = Field(  # float-ok: seconds
        2.0,
        ge=0,
        description="how long a verified API key is trusted without asking the database; "
        "a revoked key stops working within this time (0: check every request)",
    )
    demo_data: bool = Field(True, description="`billing demo --if-empty` seeds an empty database")
    scheduler: bool = Field(
        True,
        description="run the background jobs (alert webhooks every 30 s) inside `billing serve`; "
        "off to run them elsewhere (`billing alerts deliver` from cron, say)",
    )
    alert_delivery_seconds: float = Field(  # float-ok: seconds
        30.0, gt=0, description="how often the scheduler sends due alert webhooks"
    )
    stripe_api_key: str | None = Field(
        None, description="Stripe secret key; without it Stripe sync is off (and says so)"
    )
    stripe_api_base: str | None = Field(
        None, description="Stripe API address, for a local Stripe stand-in in tests"
    )
    stripe_webhook_secret: str | None = Field(
        None, description="signing secret of the Stripe webhook endpoint (whsec_...)"
    )
    stripe_collection_method: Literal["send_invoice", "charge_automatically"] = Field(
        "send_invoice",
        description="how Stripe collects our invoices: send_invoice emails them, payable "
        "within stripe_days_until_due days; charge_automatically has Stripe charge the "
        'customer\'s default payment method (docs/stripe.md, "Collection")',
    )
    stripe_days_until_due: int = Field(
        30, ge=1, description="days a sent invoice gives the customer to pay (send_invoice)"
    )
    stripe_sync_every_seconds: float = Field(  # float-ok: seconds
        300.0, gt=0, description="how often finalized invoices are pushed to Stripe"
    )
    close_every_seconds: float = Field(  # float-ok: seconds
        300.0, gt=0, description="how often the scheduler closes due periods"
    )
    close_grace: dt.timedelta = Field(
        dt.timedelta(hours=1),
        ge=dt.timedelta(0),
        description="how long after a period ends it is closed (seconds, or ISO 8601 like PT1H; "
        "not negative: a period is never closed before it ends)",
    )
    close_processes: int | None = Field(
        None,
        ge=1,
        le=64,
        description="processes the period close runs its transactions in, side by side, when "
        "it has 10 or more to run (2,000 customers); unset: 2 on PostgreSQL, 1 on SQLite "
        "(always 1 there)",
    )
    quota_cache_seconds: float = Field(  # float-ok: seconds
        1.0,
        ge=0,
        description="GET /v1/quota/limited answers from memory for at most this long before "
        "re-reading limits changed by other processes (changes made by this process show at "
        "once)",
    )
    webhook_allow_private: bool = Field(
        False,
        description="allow alert webhooks to loopback and private addresses (development and "
        "tests; keep off in production)",
    )
    webhook_timeout_seconds: float = Field(  # float-ok: seconds
        5.0,
        gt=0,
        description="how long one webhook delivery attempt may take in all: resolving, "
        "connecting, sending and reading the answer",
    )
    metrics_token: str | None = Field(
        None,
        min_length=16,
        description="a bearer token that reads /metrics and /readyz's details without an API "
        "key (for a Prometheus scraper or a dashboard); an admin key always can; unset: only "
        "admin keys (at least 16 characters)",
    )
    secret_key: str | None = Field(
        None,
        min_length=32,
        description="signs portal links, session cookies and CSRF tokens (at least 32 "
        "characters; without it a key generated once is kept in the database)",
    )
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="the address people reach the service at; portal links are made with it",
    )
    portal_link_ttl: dt.timedelta = Field(
        dt.timedelta(minutes=15), description="how long a sign-in link stays usable by default"
    )
    session_ttl: dt.timedelta = Field(
        dt.timedelta(hours=8), description="how long a portal or finance sign-in lasts"
    )
    # The seller on every invoice PDF (docs/invoicing.md, "PDF"): demo values until set.
    seller_name: str = Field(
        "Example Billing Inc.", min_length=1, description="who issues the invoices"
    )
    seller_address: str = Field(
        "100 Example Street\nSpringfield, IL 62701\nUnited States",
        description="the seller's postal address; lines separated by newlines (or the two "
        "characters \\n, for one-line environment files)",
    )
    seller_email: str | None = Field(
        "billing@example.com", description="where customers write about an invoice (empty: none)"
    )
    seller_tax_id: str | None = Field(
        None, description="the seller's VAT or tax number, printed when set"
    )

    @property
    def invoice_due_days(self) -> int:
        """Days after the day of issue (UTC) an invoice is due (docs/invoicing.md, "Due date"):
        what a sent invoice gives (stripe_days_until_due) under send_invoice; 0 under
        charge_automatically, where Stripe charges the invoice as it is issued."""
        return self.stripe_days_until_due if self.stripe_collection_method == "send_invoice" else 0

    @property
    def seller_address_lines(self) -> list[str]:
        """The seller's address, a line each (newlines or literal \\n separate them)."""
        lines = self.seller_address.replace("\\n", "\n").splitlines()
        return [line.strip() for line in lines if line.strip()]

    # --- email (docs/email.md): usage alerts and invoice notices through SMTP -------------
    smtp_host: str | None = Field(
        None, description="SMTP server for email; unset: no email is sent (and the logs say so)"
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port (587: submission)")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description="starttls: upgrade the connection with STARTTLS (port 587); tls: TLS from "
        "the start (port 465); none: plain text, for a relay on this machine only",
    )
    smtp_username: str | None = Field(None, description="SMTP user name; unset: no login")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (never logged)")
    smtp_from: str | None = Field(
        None,
        description='who email comes from, "Name <address>" (e.g. "Acme Billing '
        '<billing@acme.example>"); needed with BILLING_SMTP_HOST',
    )
    smtp_timeout_seconds: float = Field(  # float-ok: seconds
        30.0, gt=0, description="how long one email may take to send, all steps together"
    )
    admin_email: str | None = Field(
        None,
        max_length=320,
        description="where notices to the operators go by email (a webhook endpoint disabled "
        "after failing); unset: the log and the webhook_endpoint.disabled event only",
    )

    @model_validator(mode="after")
    def _checkpoints_spaced(self) -> Settings:
        if 0 < self.sqlite_checkpoint_seconds < SQLITE_CHECKPOINT_MIN_SECONDS:
            raise ValueError(
                "BILLING_SQLITE_CHECKPOINT_SECONDS must be 0 (off) or at least "
                f"{SQLITE_CHECKPOINT_MIN_SECONDS}, "
                f"got {self.sqlite_checkpoint_seconds}"
            )
        return self

    @model_validator(mode="after")
    def _archive_has_a_place(self) -> Settings:
        exporting = self.events_keep_months is not None and self.events_retention == "export"
        if exporting and self.events_archive_dir is None:
            raise ValueError(
                "BILLING_EVENTS_ARCHIVE_DIR must be set when BILLING_EVENTS_KEEP_MONTHS is set "
                "and BILLING_EVENTS_RETENTION is export (or set it to drop)"
            )
        return self

    @model_validator(mode="after")
    def _smtp_complete(self) -> Settings:
        if not self.smtp_host:
            return self
        if not self.smtp_from or "@" not in parseaddr(self.smtp_from)[1]:
            raise ValueError(
                'BILLING_SMTP_FROM must be set to "Name <address>" when BILLING_SMTP_HOST is '
                f"set, got {self.smtp_from!r}"
            )
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("set both BILLING_SMTP_USERNAME and BILLING_SMTP_PASSWORD, or neither")
        if self.smtp_username is not None and self.smtp_security == "none":
            raise ValueError(
                "BILLING_SMTP_SECURITY=none would send BILLING_SMTP_PASSWORD in clear: "
                "use starttls or tls"
            )
        return self

    @property
    def email_state(self) -> str:
        """What /healthz and the logs say about email."""
        if not self.smtp_host:
            return "off: BILLING_SMTP_HOST is not set"
        return "on" if self.scheduler else "on (run by `billing worker` or `billing email send`)"

    # --- end of email ---------------------------------------------------------------------

    @property
    def stripe_sync_state(self) -> str:
        """What /healthz and the logs say about Stripe sync."""
        if not self.stripe_api_key:
            return "off: BILLING_STRIPE_API_KEY is not set"
        return "on" if self.scheduler else "on (run by `billing worker` or `billing stripe sync`)"


@lru_cache
def get_settings() -> Settings:
    """The process settings, read once."""
    return Settings()
