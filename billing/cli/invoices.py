"""`billing invoices`: close due periods (the `close_periods` job's twin); verify an invoice."""

from __future__ import annotations

from typing import Annotated

import typer

from billing.cli.common import AsOfOption, TiersOption, load_tiers, open_session, run_job
from billing.money import format_amount

app = typer.Typer(help="Invoices: close due periods, verify one.")


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


@app.command("verify")
def invoices_verify(
    number: Annotated[str, typer.Argument(help="the invoice number (INV-000123) or id")],
    tiers: TiersOption = None,
) -> None:
    """Re-derive a period invoice from what it was priced with, under the tier files (default
    BILLING_TIERS_DIR): print `match`, or the first difference and exit 1."""
    from billing.invoicing.verify import verify_invoice

    catalog = load_tiers(tiers)
    with open_session() as session:
        verdict = verify_invoice(session.connection(), catalog, number)
    recorded = verdict.recorded_digest or "not recorded"
    if verdict.matches:
        typer.echo(f"match: {verdict.number}, {verdict.lines} lines re-derived")
    else:
        typer.echo(f"difference: {verdict.number}: {verdict.differences[0]}")
        for more in verdict.differences[1:]:
            typer.echo(f"  also: {more}")
    same = "the same files" if recorded == verdict.digest else f"now {verdict.digest}"
    typer.echo(f"tier files: priced with sha256 {recorded}; verified with {same}")
    if not verdict.matches:
        raise typer.Exit(1)
