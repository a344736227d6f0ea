"""`billing events archive`: export the raw events of long-invoiced periods as JSON Lines,
then delete them (docs/operations.md, "Retention: archiving raw events"); `billing events
partitions`: make the event table's monthly partitions ahead (docs/operations.md,
"Partitions")."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from billing.backtest.read import month_start
from billing.cli.common import TiersOption, fail, load_tiers, migrated_engine
from billing.metering import partitions
from billing.metering.archive import (
    JsonLinesFile,
    archive_events,
    kept_months_cut_off,
    latest_cut_off,
)
from billing.settings import get_settings

app = typer.Typer(
    help="Raw events: archive those of long-invoiced periods; make monthly partitions."
)


@app.command("archive")
def archive(
    output: Annotated[Path, typer.Option("--output", "-o", help="the JSON Lines file to write")],
    before: Annotated[
        str | None,
        typer.Option(help="YYYY-MM: archive events of periods starting before this month"),
    ] = None,
    keep_months: Annotated[
        int | None,
        typer.Option(help="keep this many whole months before the current one (instead)"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="export what would go; delete nothing")
    ] = False,
    tiers: TiersOption = None,
) -> None:
    """Export the raw events of closed periods starting before a month to a new JSON Lines
    file (one event a line), then delete them; running totals and invoices are kept. The
    cut-off must leave the late-usage window behind (settings.toml), so a re-sent archived
    event is refused period_closed, never counted again."""
    if (before is None) == (keep_months is None):
        raise fail("give --before YYYY-MM or --keep-months N (one of them)")
    now = dt.datetime.now(dt.UTC)
    if before is not None:
        try:
            cut = month_start(before)
        except ValueError as error:
            raise fail(f"before: {error}") from None
    else:
        if keep_months is None or keep_months < 0:
            raise fail("keep-months: a whole number of months, 0 or more")
        cut = kept_months_cut_off(now, keep_months)
    window = load_tiers(tiers).late_usage.window
    latest = latest_cut_off(now, window)
    if cut > latest:
        raise fail(
            f"before: {cut:%Y-%m} is too recent: periods starting before it may still take "
            f"late usage (window {window.days} days); the latest cut-off today is "
            f"{latest:%Y-%m}"
        )
    try:
        archive = JsonLinesFile(output)
    except FileExistsError as error:
        raise fail(f"output: {error}") from None
    engine = migrated_engine()
    try:
        done = archive_events(engine, before=cut, write=archive.write, delete_after=not dry_run)
    finally:
        archive.close()
    verb = "would archive" if dry_run else "archived"
    typer.echo(
        f"{verb} {done.events} events of {done.periods} customer-product periods starting "
        f"before {cut:%Y-%m} to {output}"
    )


@app.command("partitions")
def partitions_command(
    ahead: Annotated[
        int | None,
        typer.Option(help="months after the current one (default BILLING_EVENTS_PARTITIONS_AHEAD)"),
    ] = None,
) -> None:
    """Make the event table's monthly partitions for this month and the months ahead
    (PostgreSQL; what the partition_events job does), then list the months partitioned."""
    engine = migrated_engine()
    count = get_settings().events_partitions_ahead if ahead is None else ahead
    if count < 0:
        raise fail("ahead: a number of months, 0 or more")
    with engine.begin() as connection:
        if not partitions.partitioned(connection):
            typer.echo("SQLite does not partition the event table: nothing to do")
            return
        created = partitions.create_ahead(connection, dt.datetime.now(dt.UTC), count)
        held = partitions.months(connection)
    typer.echo(f"created {len(created)}: {', '.join(f'{m:%Y-%m}' for m in created) or '-'}")
    typer.echo(f"partitioned months: {', '.join(f'{m:%Y-%m}' for m in held) or '-'}")
