"""What every `billing` command shares: failing with one sentence, the tier directory, the
database session, `--as-of`, parsed fields, printed tables, and running a job's twin."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic_core import PydanticCustomError
from sqlalchemy import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from billing.catalog import Catalog, load_catalog
from billing.db import current_revision, make_engine, session_scope
from billing.errors import BillingError, CatalogError
from billing.settings import get_settings

if TYPE_CHECKING:
    from billing.jobs.registry import Job

T = TypeVar("T")

AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="act as at this instant, ISO 8601 with a zone (replays)"),
]
TiersOption = Annotated[
    Path | None,
    typer.Option("--tiers", help="tier directory (default: BILLING_TIERS_DIR or ./pricing_tiers)"),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: message` to stderr; the exit to raise (code 2: bad input)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def load_tiers(tiers: Path | None) -> Catalog:
    """The catalogue in `tiers` (default BILLING_TIERS_DIR); exits 1 printing every problem."""
    try:
        return load_catalog(tiers or get_settings().tiers_dir)
    except CatalogError as error:
        typer.echo(error.message, err=True)
        raise typer.Exit(1) from None


def migrated_engine(url: str | None = None) -> Engine:
    """An engine on `url` (default BILLING_DATABASE_URL) whose database exists and is
    migrated; otherwise exits 1 with one sentence naming BILLING_DATABASE_URL and `billing db
    upgrade`. A SQLite file that does not exist is never created here (only `billing db
    upgrade` and `billing serve` create one)."""
    url = url or get_settings().database_url
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    hint = "set BILLING_DATABASE_URL to your database, or create this one with `billing db upgrade`"
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(str(file)).exists():
        raise fail(f"no database at {shown} (in {Path.cwd()}): {hint}", 1)
    engine = make_engine(url)
    try:
        revision = current_revision(engine)
    except SQLAlchemyError as error:
        engine.dispose()
        reason = str(error.orig if hasattr(error, "orig") else error).splitlines()[0]
        raise fail(f"cannot reach the database at {shown} ({reason}): {hint}", 1) from None
    if revision is None:
        engine.dispose()
        raise fail(f"the database at {shown} is not set up: {hint}", 1)
    return engine


@contextmanager
def open_session() -> Iterator[Session]:
    """A session on BILLING_DATABASE_URL, committed at the end; a BillingError exits 2; a
    missing or unmigrated database exits 1 with one sentence (`migrated_engine`)."""
    engine = migrated_engine()
    try:
        with session_scope(engine) as session:
            yield session
    except BillingError as error:
        raise fail(f"{error.field}: {error.message}" if error.field else error.message) from None
    finally:
        engine.dispose()


def parse_as_of(value: str | None) -> dt.datetime | None:
    """`--as-of` as a UTC instant (None when not given); exits 2 without a time zone or when
    it is later than now."""
    if value is None:
        return None
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"--as-of: not an ISO 8601 date-time: {value!r}") from None
    if at.tzinfo is None:
        raise fail(f"--as-of: needs a time zone (Z or +00:00): {value!r}")
    at = at.astimezone(dt.UTC)
    now = dt.datetime.now(dt.UTC)
    if at > now:
        # NOTE: replays replay the past: a run as of a later time would close a period
        # before its usage is all in (docs/invoicing.md, "The clock").
        raise fail(
            f"--as-of: {at.isoformat()} is later than now ({now.isoformat(timespec='seconds')});"
            " replays run as of a past time"
        )
    return at


def parse_field(name: str, parse: Callable[[Any], T], value: Any) -> T:
    """`parse(value)`; exits 2 naming the field when it does not parse."""
    try:
        return parse(value)
    except PydanticCustomError as error:
        raise fail(f"{name}: {error.message()}") from None


def show_number(text: str) -> str:
    """A decimal quantity with thousands grouped ("1,000,000.5"); "inf" as ∞."""
    if text == "inf":
        return "∞"
    whole, _, fraction = text.partition(".")
    grouped = f"{int(whole):,}"
    return f"{grouped}.{fraction}" if fraction else grouped


def print_rows(rows: list[dict[str, str]], columns: tuple[str, ...], form: str, title: str) -> None:
    """Print rows as a table, CSV or JSON (`form`); exits 2 on another form."""
    if form == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif form == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif form == "table":
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for column in columns:
            table.add_column(column, justify="left" if column in columns[:2] else "right")
        for row in rows:
            table.add_row(*(row[column] for column in columns))
        # NOTE: piped output gets a wide table rather than one folded to 80 columns.
        Console(width=None if sys.stdout.isatty() else 200).print(table)
    else:
        raise fail(f"--format: table, csv or json, not {form!r}")


def run_job(job: Job[T], as_of: str | None, catalog: Catalog | None = None) -> T:
    """A job's command twin: run it once as at `--as-of` under the job's lock, waiting for a
    run elsewhere (the scheduler on another replica) to end rather than skipping; its report.
    Exits 1 when the job is off under these settings."""
    from billing.jobs import runner
    from billing.jobs.context import JobContext

    settings = get_settings()
    reason = job.off_reason(settings)
    if reason is not None:
        raise fail(reason, 1)
    at = parse_as_of(as_of)
    engine = migrated_engine(settings.database_url)
    try:
        context = JobContext(engine=engine, settings=settings, catalog=catalog)
        return runner.run_waiting(job, context, at)
    finally:
        engine.dispose()
