"""Liveness (/healthz), readiness (/readyz) and Prometheus metrics (/metrics).

/healthz and /readyz's status answer anyone: load balancers probe them without a key.
/readyz's details (database, migrations, jobs, scheduler, Stripe sync, the read replica) and
/metrics need an admin key or BILLING_METRICS_TOKEN as a bearer (`operator_access`); /metrics
without one is 401, /readyz without one answers its status alone."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from alembic.runtime.migration import MigrationContext
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field
from sqlalchemy import Engine, func, select, text

from billing import __version__
from billing.api.deps import OperatorAccess
from billing.api.schemas import ErrorOut
from billing.db import head_revision, table_of
from billing.errors import Unauthorized
from billing.http.deps import CatalogDep
from billing.jobs.models import JobRun
from billing.public import PublicModel, Timestamp
from billing.stripe_sync.models import InvoiceSync

router = APIRouter(tags=["operations"])
logger = logging.getLogger(__name__)


class CatalogStatePublic(PublicModel):
    directory: str
    products: int


class HealthPublic(PublicModel):
    status: str = Field(examples=["ok"])
    version: str
    catalog: CatalogStatePublic
    stripe_sync: str = Field(description="on, or off and why")
    email: str = Field(description="on, or off and why (docs/email.md)")


class MigrationsPublic(PublicModel):
    database: str | None = Field(description="the revision the database is at")
    code: str | None = Field(description="the revision this build needs")


class SyncStatePublic(PublicModel):
    pending: int | None = None
    failed: int | None = None
    lag_seconds: int | None = Field(None, description="age of the oldest invoice waiting")
    state: str = Field(description="on, or off and why")


class ReadinessStatusPublic(PublicModel):
    """/readyz without credentials: whether the process is ready, nothing more."""

    status: str = Field(description="ready | not ready")


class ReadinessPublic(PublicModel):
    """/readyz with an admin key or BILLING_METRICS_TOKEN. Keys a check could not reach are
    left out (e.g. `migrations` without a database)."""

    problems: list[str]
    database: str = Field(description="ok | unreachable")
    stripe_sync: SyncStatePublic
    jobs: dict[str, Timestamp] = Field(description="the last start of each scheduled job")
    migrations: MigrationsPublic | None = None
    scheduler: str
    replica: str = Field(
        description="the read replica: off, ok, lagging or unreachable (then its reads go to "
        "the primary; not a readiness problem)"
    )
    status: str = Field(description="ready | not ready")


@router.get("/healthz")
async def healthz(catalog: CatalogDep, request: Request) -> HealthPublic:
    """Liveness: the process is up and its catalogue loaded; whether Stripe sync and email
    run."""
    return HealthPublic(
        status="ok",
        version=__version__,
        catalog=CatalogStatePublic(directory=catalog.directory, products=len(catalog.products)),
        stripe_sync=request.app.state.settings.stripe_sync_state,
        email=request.app.state.settings.email_state,
    )


@router.get(
    "/readyz",
    response_model=ReadinessPublic | ReadinessStatusPublic,
    responses={
        401: {"model": ErrorOut, "description": "a bearer that is no admin key nor the token"},
        403: {"model": ErrorOut, "description": "a key of another role than admin"},
        503: {
            "model": ReadinessPublic | ReadinessStatusPublic,
            "description": "not ready: see `problems`",
        },
    },
)
async def readyz(request: Request, details: OperatorAccess) -> JSONResponse:
    """Readiness: the database answers, its schema is at this build's migration, the process
    is not shutting down. Anyone gets the status; an admin key or BILLING_METRICS_TOKEN (as
    a bearer) also gets why, the scheduler's state, the last run of each job, and how far
    behind Stripe sync is (the oldest invoice waiting to be sent)."""
    state = request.app.state
    answer = await run_in_threadpool(_readiness, state.engine)
    if state.draining:
        answer["problems"].append("shutting down")
    settings = state.settings
    answer["scheduler"] = "on" if settings.scheduler else "off (run by `billing worker`)"
    answer["stripe_sync"]["state"] = settings.stripe_sync_state
    if details:  # a probe without credentials does not check the replica
        answer["replica"] = await run_in_threadpool(state.reads.state)
    answer["status"] = "ready" if not answer["problems"] else "not ready"
    shown = answer if details else {"status": answer["status"]}
    return JSONResponse(shown, status_code=200 if not answer["problems"] else 503)


def _readiness(engine: Engine) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    answer: dict[str, Any] = {"problems": [], "database": "ok", "stripe_sync": {}, "jobs": {}}
    try:
        with engine.connect() as opened:
            connection = opened.execution_options(sqlite_begin="DEFERRED")  # reads only
            connection.execute(text("SELECT 1"))
            context = MigrationContext.configure(connection)
            revision, head = context.get_current_revision(), head_revision()
            answer["migrations"] = {"database": revision, "code": head}
            if revision != head:
                answer["problems"].append(
                    f"database at revision {revision}, this build needs {head}: "
                    "run `billing db upgrade`"
                )
                return answer
            runs = table_of(JobRun)
            latest = connection.execute(
                select(runs.c.job, func.max(runs.c.started_at)).group_by(runs.c.job)
            )
            answer["jobs"] = {job: started.isoformat() for job, started in latest}
            sync = table_of(InvoiceSync)
            waiting, oldest = connection.execute(
                select(func.count(), func.min(sync.c.updated_at)).where(sync.c.status == "pending")
            ).one()
            failed = connection.execute(
                select(func.count()).where(sync.c.status.in_(("sync_failed", "mismatch")))
            ).scalar_one()
            answer["stripe_sync"] = {
                "pending": waiting,
                "failed": failed,
                "lag_seconds": 0 if oldest is None else int((now - oldest).total_seconds()),
            }
    except Exception as error:  # the answer is the report: never a 500
        logger.warning("readiness: the database check failed", exc_info=True)
        answer["database"] = "unreachable"
        answer["problems"].append(f"database: {type(error).__name__}")
    return answer


@router.get("/metrics", include_in_schema=False)
async def metrics(allowed: OperatorAccess) -> Response:
    """Prometheus metrics of this process (an admin key or BILLING_METRICS_TOKEN)."""
    if not allowed:
        raise Unauthorized(
            "/metrics needs an admin key or BILLING_METRICS_TOKEN: Authorization: Bearer <token>"
        )
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
