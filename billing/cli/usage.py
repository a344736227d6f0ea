"""`billing usage`: a customer's usage per product in one period."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from billing.cli.common import fail, open_session, show_number
from billing.customers import service as customers_service
from billing.customers.periods import period_for, period_from_label
from billing.metering import service as metering_service
from billing.money import format_quantity


def usage(
    customer: Annotated[str, typer.Argument(help="customer id")],
    period: Annotated[str | None, typer.Option(help="YYYY-MM (default: current)")] = None,
) -> None:
    """Print a customer's usage per product in one period."""
    with open_session() as session:
        connection = session.connection()
        found = customers_service.get_customer(connection=connection, customer_id=customer)
        try:
            chosen = (
                period_from_label(period, found.billing_anchor_day)
                if period
                else period_for(found.billing_anchor_day, dt.datetime.now(dt.UTC))
            )
        except ValueError as error:
            raise fail(f"period: {error}") from None
        rows = metering_service.usage_for(
            connection=connection, customer_id=customer, period=chosen
        )
    typer.echo(f"{customer} {chosen.label} ({chosen.start:%Y-%m-%d} .. {chosen.end:%Y-%m-%d})")
    if not rows:
        typer.echo("  no usage")
    for row in rows:
        typer.echo(
            f"  {row.product:<20} {show_number(format_quantity(row.quantity)):>20}  "
            f"{row.events} events, {row.duplicates} duplicates, {row.rejected} rejected"
        )
