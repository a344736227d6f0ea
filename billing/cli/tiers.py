"""`billing tiers`: validate tier files, print their JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter

from billing.catalog import load_catalog, validate_directory
from billing.catalog.schema import DiscountsFile, ProductFile, SettingsFile
from billing.cli.common import fail
from billing.settings import get_settings

app = typer.Typer(help="Tier files: validate them, print their JSON Schema.")


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
    kind: Annotated[str, typer.Argument(help="product, discounts or settings")] = "product",
) -> None:
    """Print the JSON Schema of a product file, of discounts.toml or of settings.toml."""
    models: dict[str, Any] = {
        "product": ProductFile,
        "discounts": DiscountsFile,
        "settings": SettingsFile,
    }
    if kind not in models:
        raise fail(f"kind must be product, discounts or settings, got {kind!r}")
    typer.echo(json.dumps(TypeAdapter(models[kind]).json_schema(), indent=2))
