"""`billing tiers`: validate tier files, print their JSON Schema."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter

from billing.backtest import render
from billing.backtest.read import closed_records, month_after, month_start
from billing.backtest.records import SnapshotError, UsageRecord, loads_snapshot
from billing.backtest.reprice import backtest as run_backtest
from billing.backtest.rules import RuleError, parse_rule, violations
from billing.catalog import Catalog, load_catalog, validate_directory
from billing.catalog.diff import change_as_json, diff_catalogs
from billing.catalog.schema import DiscountsFile, OverrideFile, ProductFile, SettingsFile
from billing.cli.common import fail, open_session
from billing.errors import CatalogError
from billing.settings import get_settings

app = typer.Typer(
    help="Tier files: validate them, print their JSON Schema, diff and backtest a change."
)


@app.command("validate")
def tiers_validate(
    directory: Annotated[Path | None, typer.Argument(help="tier directory")] = None,
) -> None:
    """Report every problem in a tier directory (file, key path, reason); exit 1 if any."""
    directory = directory or get_settings().tiers_dir
    problems = validate_directory(directory)
    if problems:
        for problem in problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"{len(problems)} problem(s) in {directory}", err=True)
        raise typer.Exit(1)
    catalog = load_catalog(directory)
    brackets = len(catalog.schedule.brackets) if catalog.schedule else 0
    typer.echo(f"ok: {len(catalog.products)} products, {brackets} commitment brackets")


@app.command("schema")
def tiers_schema(
    kind: Annotated[
        str, typer.Argument(help="product, discounts, settings or override")
    ] = "product",
) -> None:
    """Print the JSON Schema of a product file, of discounts.toml, of settings.toml or of a
    customer's override file (overrides/<customer>.toml)."""
    models: dict[str, Any] = {
        "product": ProductFile,
        "discounts": DiscountsFile,
        "settings": SettingsFile,
        "override": OverrideFile,
    }
    if kind not in models:
        raise fail(f"kind must be product, discounts, settings or override, got {kind!r}")
    typer.echo(json.dumps(TypeAdapter(models[kind]).json_schema(), indent=2))


@app.command("diff")
def tiers_diff(
    old: Annotated[Path, typer.Argument(help="the tier directory in force (e.g. main's)")],
    new: Annotated[Path, typer.Argument(help="the proposed tier directory")],
    backtest: Annotated[
        str | None,
        typer.Option(
            help="YYYY-MM..YYYY-MM: re-price every closed period starting in these months "
            "under both directories (from BILLING_DATABASE_URL, or --usage)"
        ),
    ] = None,
    usage: Annotated[
        Path | None,
        typer.Option(help="a snapshot from `billing usage export` instead of the database"),
    ] = None,
    output: Annotated[
        str, typer.Option("--format", help="table, json or markdown (a pull-request comment)")
    ] = "table",
    fail_if: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-if",
            help="a rule that fails the command (exit 1), e.g. 'customer_increase_pct > 10'; "
            "repeatable",
        ),
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="YYYY-MM-DD: the day whose prices are compared")
    ] = None,
) -> None:
    """What a tier-file change changes, and what every customer would have paid under it.

    Exit 0: no rule violated; 1: a rule violated, or the old directory does not reproduce
    the issued invoices; 2: bad input (docs/pricing-changes.md)."""
    if output not in ("table", "json", "markdown"):
        raise fail(f"--format: one of table, json, markdown, not {output!r}")
    try:
        rules = [parse_rule(text) for text in fail_if or []]
    except RuleError as error:
        raise fail(f"--fail-if: {error}") from None
    try:
        day = dt.date.fromisoformat(at) if at else dt.datetime.now(dt.UTC).date()
    except ValueError:
        raise fail(f"--at: not a date (YYYY-MM-DD): {at!r}") from None
    before, after = _catalog_or_exit(old), _catalog_or_exit(new)
    changes = [change_as_json(c) for c in diff_catalogs(before, after, at=day)]
    report = None
    if usage is not None and backtest is None:
        raise fail("--usage needs --backtest FROM..TO (the months to re-price)")
    if backtest is not None:
        first, _, last = backtest.partition("..")
        records = _records(first, last or first, usage)
        report = run_backtest(before, after, records)
    broken = violations(report, rules) if report is not None else []
    if report is None and rules:
        raise fail("--fail-if needs --backtest: rules are about re-priced bills")
    shown = {"table": render.as_table, "json": render.as_json, "markdown": render.as_markdown}
    typer.echo(shown[output](changes, report, broken), nl=output == "json")
    if broken:
        raise typer.Exit(1)


def _catalog_or_exit(directory: Path) -> Catalog:
    try:
        return load_catalog(directory)
    except CatalogError as error:
        typer.echo(error.message, err=True)
        raise fail(f"{directory}: not a valid tier directory") from None


def _records(first: str, last: str, usage: Path | None) -> list[UsageRecord]:
    """The usage records of months first..last: from the snapshot file, or the database."""
    try:
        start, end = month_start(first), month_after(last)
    except ValueError as error:
        raise fail(f"--backtest: {error}") from None
    if end <= start:
        raise fail(f"--backtest: {first}..{last} ends before it starts")
    if usage is not None:
        try:
            records = loads_snapshot(usage.read_text())
        except OSError as error:
            raise fail(f"--usage: cannot read {usage}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise fail(f"--usage: {usage}: not UTF-8 text (a snapshot is JSON Lines)") from None
        except SnapshotError as error:
            raise fail(f"--usage: {usage}: {error}") from None
        chosen = [r for r in records if start <= r.period_start < end]
        if not chosen:
            raise fail(f"--usage: {usage} has no record in {first}..{last}")
        return chosen
    with open_session() as session:
        return closed_records(session.connection(), first, last)
