"""The `billing` command assembled from its command modules, in the order `--help` lists."""

from __future__ import annotations

import typer

from billing.cli import (
    alerts,
    caps,
    commitments,
    credit_notes,
    credits,
    customers,
    db,
    demo,
    email,
    events,
    invoices,
    keys,
    portal_link,
    quote,
    report,
    server,
    stripe,
    tiers,
    usage,
)

app = typer.Typer(help="Usage-based billing and pricing engine.", no_args_is_help=True)
app.command()(server.serve)
app.command()(server.worker)
app.command("portal-link")(portal_link.portal_link)
app.add_typer(usage.app, name="usage")
app.add_typer(events.app, name="events")
app.command()(demo.demo)
app.command()(quote.quote)
app.add_typer(tiers.app, name="tiers")
app.add_typer(db.app, name="db")
app.add_typer(keys.app, name="keys")
app.add_typer(customers.app, name="customers")
app.add_typer(alerts.app, name="alerts")
app.add_typer(email.app, name="email")
app.add_typer(caps.app, name="caps")
app.add_typer(report.app, name="report")
app.add_typer(stripe.app, name="stripe")
app.add_typer(commitments.app, name="commitments")
app.add_typer(invoices.app, name="invoices")
app.add_typer(credits.app, name="credits")
app.add_typer(credit_notes.app, name="credit-notes")


def main() -> None:
    """Entry point of the `billing` console script."""
    app()
