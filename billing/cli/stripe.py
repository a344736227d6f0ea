"""`billing stripe`: push finalized invoices to Stripe (the `sync_stripe` job's twin)."""

from __future__ import annotations

import typer

from billing.cli.common import AsOfOption, run_job

app = typer.Typer(help="Stripe: push finalized invoices.")


@app.command("sync")
def stripe_sync(
    as_of: AsOfOption = None,
) -> None:
    """Push finalized invoices to Stripe and void there what was voided (the scheduler's job)."""
    from billing.jobs.registry import SYNC_STRIPE

    report = run_job(SYNC_STRIPE, as_of)
    typer.echo(f"stripe: {report}")
