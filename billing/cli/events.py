"""`billing events archive`: export the raw events of long-invoiced periods as JSON Lines,
then delete them (docs/operations.md, "Retention: archiving raw events")."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from billing.backtest.read import month_start
from billing.cli.common import TiersOption, fail, load_tiers, migrated_engine
from billing.metering.archive import archive_events, latest_cut_off

app = typer.Typer(help="Raw events: archive those of long-invoiced periods.")


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
        months = now.year * 12 + now.month - 1 - keep_months
        cut = dt.datetime(months // 12, months % 12 + 1, 1, tzinfo=dt.UTC)
    window = load_tiers(tiers).late_usage.window
    latest = latest_cut_off(now, window)
    if cut > latest:
        raise fail(
            f"before: {cut:%Y-%m} is too recent: periods starting before it may still take "
            f"late usage (window {window.days} days); the latest cut-off today is "
            f"{latest:%Y-%m}"
        )
    if output.exists():
        raise fail(f"output: {output} exists; an archive is written to a new file")
    engine = migrated_engine()
    with output.open("x", encoding="utf-8") as handle:

        def write(lines: list[dict[str, Any]]) -> None:
            for line in lines:
                handle.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False))
                handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())

        done = archive_events(engine, before=cut, write=write, delete_after=not dry_run)
    verb = "would archive" if dry_run else "archived"
    typer.echo(
        f"{verb} {done.events} events of {done.periods} customer-product periods starting "
        f"before {cut:%Y-%m} to {output}"
    )
