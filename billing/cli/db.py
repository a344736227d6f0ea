"""`billing db`: apply migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from billing.db import current_revision, make_engine, upgrade
from billing.settings import get_settings

app = typer.Typer(help="The database: apply migrations.")


@app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Apply database migrations (BILLING_DATABASE_URL)."""
    settings = get_settings()
    upgrade(settings.database_url, revision)
    engine = make_engine(settings.database_url)
    try:
        typer.echo(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()
