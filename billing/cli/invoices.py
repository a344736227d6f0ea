"""`billing invoices`: close due periods (the `close_periods` job's twin)."""

from __future__ import annotations

import typer

from billing.cli.common import AsOfOption, TiersOption, load_tiers, run_job
from billing.money import format_amount

app = typer.Typer(help="Invoices: close due periods.")


@app.command("close")
def invoices_close(
    as_of: AsOfOption = None,
    tiers: TiersOption = None,
) -> None:
    """Close every period that ended more than BILLING_CLOSE_GRACE ago (the scheduler's job)."""
    from billing.jobs.registry import CLOSE_PERIODS

    catalog = load_tiers(tiers)
    report = run_job(CLOSE_PERIODS, as_of, catalog)
    typer.echo(
        f"closed: {report} ({format_amount(report.amount_due, catalog.currency)} "
        f"{catalog.currency} due)"
    )
