"""`billing demo`: seed demo customers with this month's usage."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from billing.cli.common import fail, load_tiers, migrated_engine
from billing.errors import BillingError
from billing.settings import get_settings


def demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="only into an empty database")
    ] = False,
) -> None:
    """Seed demo customers with this month's usage (BILLING_DEMO_DATA=0 turns --if-empty off)."""
    from billing import demo as demo_data

    settings = get_settings()
    if if_empty and not settings.demo_data:
        typer.echo("demo data is off (BILLING_DEMO_DATA=0)")
        return
    catalog = load_tiers(None)
    engine = migrated_engine(settings.database_url)
    try:
        if if_empty and not demo_data.is_empty(engine):
            typer.echo("the database has customers already: no demo data added")
            return
        sent = demo_data.seed(engine=engine, catalog=catalog, now=dt.datetime.now(dt.UTC))
    except BillingError as error:
        raise fail(error.message) from None
    finally:
        engine.dispose()
    ids = ", ".join(c[0] for c in demo_data.DEMO_CUSTOMERS)
    typer.echo(f"demo data: customers {ids}; {sent:,} events")
