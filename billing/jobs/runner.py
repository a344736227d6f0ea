"""Running a background job exclusively across processes, and remembering each run.

On PostgreSQL a job run first takes a session-level advisory lock named after the job; the
scheduler and the finance page's retry try it (`pg_try_advisory_lock`) and skip the run when
another process holds it, because that process is running the job right now; the command
twins wait for it (`pg_advisory_lock`), because a replay must not be skipped. On SQLite (one
machine) jobs are safe to overlap: each one works under row locks and re-reads its progress
(periods close under the customer's lock, webhooks are claimed, commitments re-read), so no
lock is taken there. Every run that does take place is recorded in `job_run` (start, end,
outcome, the summary or the error).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine, insert, text, update

from billing.db import table_of
from billing.jobs.context import JobContext
from billing.jobs.models import JobRun
from billing.jobs.registry import Job
from billing.observability.metrics import JOBS

logger = logging.getLogger(__name__)
RUNNER = f"{socket.gethostname()}:{os.getpid()}"
R = TypeVar("R")


def lock_key(job: str, schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for a job of the deployment in `schema`.

    NOTE: advisory locks belong to the whole database, not to a schema: two deployments in
    two schemas of one database (or two test runs) must not take each other's locks.
    """
    digest = hashlib.sha256(f"billing job {schema}.{job}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def job_lock_key(engine: Engine, job: str) -> int:
    """The advisory-lock key of `job` for the schema `engine` works in (PostgreSQL)."""
    with engine.connect() as connection:
        return _key(connection, job)


def _key(connection: Connection, job: str) -> int:
    schema = connection.execute(text("SELECT current_schema()")).scalar()
    return lock_key(job, str(schema))


def run_if_free(job: Job[R], context: JobContext, as_of: dt.datetime | None = None) -> R | None:
    """Run `job` unless another process runs it now: its report, or None when skipped."""
    with _lock(context.engine, job.name, wait=False) as acquired:
        if not acquired:
            logger.debug("job %s: running in another process, skipped", job.name)
            return None
        return _recorded(job, context, as_of)


def run_waiting(job: Job[R], context: JobContext, as_of: dt.datetime | None = None) -> R:
    """Run `job`, first waiting for a run of it in another process to end; its report."""
    with _lock(context.engine, job.name, wait=True):
        return _recorded(job, context, as_of)


@contextmanager
def _lock(engine: Engine, job: str, *, wait: bool) -> Iterator[bool]:
    """Hold the job's advisory lock (PostgreSQL) for the block; yields whether it is held."""
    with engine.connect() as holder:
        if engine.dialect.name != "postgresql":
            yield True
            return
        key = _key(holder, job)
        if wait:
            holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            acquired = True
        else:
            acquired = bool(
                holder.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            )
        holder.commit()
        if not acquired:
            yield False
            return
        try:
            yield True
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            holder.commit()


def _recorded(job: Job[R], context: JobContext, as_of: dt.datetime | None) -> R:
    table = table_of(JobRun)
    with context.engine.begin() as connection:
        run_id = connection.execute(
            insert(table)
            .values(
                job=job.name, runner=RUNNER, started_at=dt.datetime.now(dt.UTC), status="running"
            )
            .returning(table.c.id)
        ).scalar_one()
    status, detail = "ok", ""
    try:
        report = job.run(context, as_of)
        detail = str(report)
        return report
    except Exception as error:
        status, detail = "failed", f"{type(error).__name__}: {error}"
        logger.exception("job %s failed", job.name)
        raise
    finally:
        JOBS.labels(job.name, status).inc()
        with context.engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.id == run_id)
                .values(finished_at=dt.datetime.now(dt.UTC), status=status, detail=detail[:500])
            )
