"""`billing usage`: a customer's usage per product in one period (`billing usage CUSTOMER`,
the `show` command), and `billing usage export`, the snapshot of closed periods that
`billing tiers diff --usage` backtests from (docs/pricing-changes.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from billing.backtest.read import closed_records, month_after, month_start
from billing.backtest.records import dumps_snapshot, pseudonym
from billing.cli.common import fail, open_session, show_number
from billing.customers import service as customers_service
from billing.customers.periods import period_for, period_from_label
from billing.metering import service as metering_service
from billing.money import format_quantity


class _UsageGroup(TyperGroup):
    """`billing usage CUSTOMER ...` runs `show`, as it did before `export` existed."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_UsageGroup,
    help="Usage: a customer's per period (billing usage CUSTOMER), or a snapshot to backtest.",
)


@app.command("show")
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


@app.command("export")
def export(
    first: Annotated[str, typer.Option("--from", help="first month, YYYY-MM")],
    last: Annotated[str, typer.Option("--to", help="last month, YYYY-MM (inclusive)")],
    pseudonymise: Annotated[
        str | None,
        typer.Option(
            help="a secret key: customer ids become keyed hashes (the same key, the same "
            "pseudonyms)"
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="file to write (default: stdout)")
    ] = None,
) -> None:
    """Write the closed periods starting in --from..--to as JSON Lines: per customer, period
    and product the running total, limit, cap, discount and what invoices billed."""
    try:
        if month_after(last) <= month_start(first):
            raise fail(f"--to {last} is before --from {first}")
    except ValueError as error:
        raise fail(str(error)) from None
    with open_session() as session:
        records = closed_records(session.connection(), first, last)
    if pseudonymise:
        records = [_renamed(r, pseudonym(r.customer, pseudonymise)) for r in records]
    header: dict[str, Any] = {
        "from": first,
        "to": last,
        "records": len(records),
        "pseudonymised": bool(pseudonymise),
        "exported_at": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
    }
    text = dumps_snapshot(records, header)
    if output is None:
        typer.echo(text, nl=False)
    else:
        try:
            output.write_text(text)
        except OSError as error:
            raise fail(f"--output: cannot write {output}: {error.strerror}", 1) from None
        typer.echo(f"{len(records)} records written to {output}", err=True)


def _renamed(record: Any, customer: str) -> Any:
    from dataclasses import replace

    return replace(record, customer=customer)
