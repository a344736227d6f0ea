"""Running a background job exclusively across processes, and remembering each run.

On PostgreSQL a job run first takes a session-level advisory lock named after the job
(`pg_try_advisory_lock`); a process that cannot get it skips that run, because another
process is running the job right now. On SQLite (one machine) jobs are safe to overlap:
each one works under row locks and re-reads its progress (periods close under the
customer's lock, webhooks are claimed, commitments re-read), so no lock is taken there.
Every run that does take place is recorded in `job_run` (start, end, outcome).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, insert, text, update

from billing.db import table_of
from billing.jobs_models import JobRun
from billing.observability.metrics import JOBS

logger = logging.getLogger(__name__)
RUNNER = f"{socket.gethostname()}:{os.getpid()}"


def lock_key(job: str) -> int:
    """A stable signed 64-bit advisory-lock key for a job name."""
    digest = hashlib.sha256(f"billing job {job}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def run_exclusive(
    engine: Engine, job: str, work: Callable[[], str], *, wait: bool = False
) -> str | None:
    """Run `work` unless another process runs `job` now; its summary, or None if skipped.

    With `wait` (the CLI twins: a replay must not be skipped), wait for the other run to end
    instead of skipping.
    """
    with engine.connect() as holder:
        if engine.dialect.name == "postgresql":
            key = lock_key(job)
            if wait:
                holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                acquired: Any = True
            else:
                acquired = holder.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": key}
                ).scalar()
            holder.commit()
            if not acquired:
                logger.debug("job %s: running in another process, skipped", job)
                return None
        try:
            return _recorded(engine, job, work)
        finally:
            if engine.dialect.name == "postgresql":
                holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(job)})
                holder.commit()


def _recorded(engine: Engine, job: str, work: Callable[[], str]) -> str:
    table = table_of(JobRun)
    with engine.begin() as connection:
        run_id = connection.execute(
            insert(table)
            .values(job=job, runner=RUNNER, started_at=dt.datetime.now(dt.UTC), status="running")
            .returning(table.c.id)
        ).scalar_one()
    status, detail = "ok", ""
    try:
        detail = work()
        return detail
    except Exception as error:
        status, detail = "failed", f"{type(error).__name__}: {error}"
        logger.exception("job %s failed", job)
        raise
    finally:
        JOBS.labels(job, status).inc()
        with engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.id == run_id)
                .values(finished_at=dt.datetime.now(dt.UTC), status=status, detail=detail[:500])
            )
