"""`billing alerts`: deliver the webhook outbox (the `deliver_alerts` job's twin)."""

from __future__ import annotations

import typer

from billing.cli.common import AsOfOption, run_job

app = typer.Typer(help="Alerts: deliver the webhook outbox.")


@app.command("deliver")
def alerts_deliver(
    as_of: AsOfOption = None,
) -> None:
    """Send the alert webhooks that are due (the scheduler runs this every 30 s)."""
    from billing.jobs.registry import DELIVER_ALERTS

    report = run_job(DELIVER_ALERTS, as_of)
    typer.echo(f"webhooks: {report}")
