"""`billing email`: send the email outbox (the `send_email` job's twin)."""

from __future__ import annotations

import typer

from billing.cli.common import AsOfOption, run_job

app = typer.Typer(help="Email: send the usage-alert and invoice emails that are due.")


@app.command("send")
def email_send(
    as_of: AsOfOption = None,
) -> None:
    """Send the emails that are due (the scheduler runs this every 30 s); needs
    BILLING_SMTP_HOST."""
    from billing.jobs.registry import SEND_EMAIL

    report = run_job(SEND_EMAIL, as_of)
    typer.echo(f"email: {report}")
