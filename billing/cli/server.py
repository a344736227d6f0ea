"""`billing serve` (the HTTP API, with the scheduler unless BILLING_SCHEDULER=0) and
`billing worker` (the background jobs alone)."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Annotated

import typer

from billing.cli.common import TiersOption, fail, load_tiers
from billing.db import alembic_config, current_revision, in_memory, make_engine, upgrade
from billing.settings import get_settings


def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes")] = 1,
    tiers: TiersOption = None,
) -> None:
    """Start the HTTP API (refuses to start on an invalid tier directory)."""
    import uvicorn

    if tiers is not None:
        os.environ["BILLING_TIERS_DIR"] = str(tiers)
        get_settings.cache_clear()
    workers_environment(workers, os.environ)  # the worker processes read it
    load_tiers(tiers)
    settings = get_settings()
    _refuse_in_memory(settings.database_url, "serve")
    if settings.migrate_on_start:
        upgrade(settings.database_url)
    else:
        _check_schema(settings.database_url)
    from billing.observability.logs import log_config, resolved_format

    if resolved_format(settings.log_format) == "text":  # a person reads it: say where things are
        _banner(host, port, workers)
    uvicorn.run(
        "billing.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level, settings.log_format),
        access_log=False,  # one structured line per request comes from RequestContext
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # SIGTERM: stop accepting, let requests in flight finish (and their batches commit)
        timeout_graceful_shutdown=30,
    )


def workers_environment(workers: int, environ: MutableMapping[str, str]) -> None:
    """Settings `billing serve --workers N` gives its worker processes, unless `environ`
    sets them: with several workers, one ingestion writer each (BILLING_INGEST_WRITERS=1).

    NOTE: each worker process groups its own requests; with two writers in each, four
    smaller groups commit side by side where two larger ones did: more statements and
    commits for the same events (docs/benchmarks.md)."""
    if workers > 1:
        environ.setdefault("BILLING_INGEST_WRITERS", "1")


def _banner(host: str, port: int, workers: int) -> None:
    """Where everything is, printed once at start (stderr), before the logs begin."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    lines = [
        f"billing: serving {base} ({workers} worker{'s' if workers != 1 else ''})",
        f"  start here       {base}/",
        f"  pricing page     {base}/pricing",
        f"  API docs         {base}/docs",
        "  customer portal  billing portal-link <customer>   (a single-use sign-in link)",
        "  finance pages    billing portal-link --finance",
    ]
    typer.echo("\n".join(lines), err=True)


def worker(tiers: TiersOption = None) -> None:
    """Run the background jobs without the HTTP API (close periods, alerts, commitments)."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    from billing.jobs import scheduler
    from billing.jobs.context import JobContext
    from billing.observability.logs import configure

    catalog = load_tiers(tiers)
    settings = get_settings()
    _refuse_in_memory(settings.database_url, "worker")
    configure(settings.log_level, settings.log_format)
    if settings.migrate_on_start:
        upgrade(settings.database_url)
    else:
        _check_schema(settings.database_url)
    engine = make_engine(settings.database_url)
    context = JobContext(engine=engine, settings=settings, catalog=catalog)
    jobs = scheduler.schedule(BlockingScheduler(timezone="UTC"), context)
    typer.echo(f"worker: running {', '.join(job.id for job in jobs.get_jobs())}", err=True)
    try:
        jobs.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        engine.dispose()


def _refuse_in_memory(url: str, command: str) -> None:
    """Exit 1 on an in-memory SQLite database: the migrations made before start would be
    gone, and each request and job thread would open its own empty database."""
    if in_memory(url):
        raise fail(
            f"`billing {command}` needs a database that outlives one connection; "
            f"BILLING_DATABASE_URL={url} is an in-memory SQLite database: use a file "
            "(sqlite:///./billing.db) or PostgreSQL",
            1,
        )


def _check_schema(url: str) -> None:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = make_engine(url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    if current != head:
        typer.echo(
            f"error: the database is at revision {current}, not {head}: run `billing db upgrade` "
            "(BILLING_MIGRATE_ON_START=0 is set, so serve does not migrate by itself)",
            err=True,
        )
        raise typer.Exit(1)
