"""`billing credits`: release credit and invoice contract years (the `run_commitments`
job's twin)."""

from __future__ import annotations

import typer

from billing.cli.common import AsOfOption, TiersOption, load_tiers, run_job

app = typer.Typer(help="Credits: release what is due, invoice contract years.")


@app.command("release")
def credits_release(
    as_of: AsOfOption = None,
    tiers: TiersOption = None,
) -> None:
    """Release credit, invoice contract years and end terms, as far as now (hourly job)."""
    from billing.jobs.registry import RUN_COMMITMENTS

    catalog = load_tiers(tiers)
    run = run_job(RUN_COMMITMENTS, as_of, catalog)
    typer.echo(f"credits: {run}, {run.invoices} invoices, {run.entries} entries")
