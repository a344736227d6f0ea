"""Migrations create exactly the schema the models describe, on both engines."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import billing.models  # noqa: F401
from billing.db import current_revision


def test_migrations_reach_head_and_match_the_models(engine):
    assert current_revision(engine) == "0001"
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []
