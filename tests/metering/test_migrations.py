"""Migrations create exactly the schema the models describe, on both engines: tables,
columns with their types and nullability, indexes and unique constraints. So a model change
without its migration fails here (docs/operations.md promises it), as the altered copies of
the models below show."""

from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlmodel import SQLModel

import billing.models  # noqa: F401
from billing.db import alembic_config, current_revision
from billing.metering.partitions import include_name


def unbounded_text_is_text(context, inspected_column, metadata_column, inspected, declared):
    """TEXT in the database and a String without a length in a model are one type on both
    engines (PostgreSQL's VARCHAR without a length is TEXT; SQLite has one text affinity).
    Any other pair is left to alembic's own comparison (None)."""
    declared = getattr(declared, "impl_instance", declared)  # SQLModel's AutoString wraps String
    unbounded = isinstance(declared, String) and not isinstance(declared, Text)
    if isinstance(inspected, Text) and unbounded and declared.length is None:
        return False
    return None


def differences(engine: Engine, metadata: MetaData) -> list[str]:
    """What `alembic revision --autogenerate` would write to bring the database to
    `metadata`, one `kind table.column` line per change."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": unbounded_text_is_text, "include_name": include_name},
        )
        found = compare_metadata(context, metadata)
    lines = []
    for diff in found:
        for step in diff if isinstance(diff, list) else [diff]:
            lines.append(_describe(step))
    return sorted(lines)


def _describe(step: tuple) -> str:
    kind = step[0]
    if kind.startswith("modify_"):  # (kind, schema, table, column, existing, old, new)
        return f"{kind} {step[2]}.{step[3]}"
    if kind in ("add_column", "remove_column"):  # (kind, schema, table, column)
        return f"{kind} {step[2]}.{step[3].name}"
    if kind in ("add_table", "remove_table"):
        return f"{kind} {step[1].name}"
    return f"{kind} {step[1].table.name}.{step[1].name}"  # indexes and constraints


def test_migrations_reach_head_and_match_the_models(engine):
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    assert head is not None
    assert int(head) >= 2
    assert current_revision(engine) == head
    assert differences(engine, SQLModel.metadata) == []


def _models_copy() -> MetaData:
    copy = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(copy)
    return copy


def _retype(table: str, column: str, kind) -> Callable[[MetaData], None]:
    def change(metadata: MetaData) -> None:
        metadata.tables[table].c[column].type = kind

    return change


def _flip_nullable(metadata: MetaData) -> None:
    column = metadata.tables["customer"].c.email
    assert column.nullable
    column.nullable = False


def _add_index(metadata: MetaData) -> None:
    Index("ix_customer_name", metadata.tables["customer"].c.name)


def _add_unique(metadata: MetaData) -> None:
    metadata.tables["customer"].append_constraint(UniqueConstraint("name", name="uq_customer_name"))


def _drop_index(metadata: MetaData) -> None:
    table = metadata.tables["outbox"]
    table.indexes.remove(next(i for i in table.indexes if i.name == "ix_outbox_due"))


def _add_column(metadata: MetaData) -> None:
    metadata.tables["customer"].append_column(Column("nickname", String(32), nullable=True))


def _add_table(metadata: MetaData) -> None:
    Table("refund", metadata, Column("id", String(32), primary_key=True))


MODEL_CHANGES = {
    "a column's type": (_retype("customer", "name", Integer()), "modify_type customer.name"),
    "a length given to a TEXT column": (
        _retype("invoice_line", "detail", String(2000)),
        "modify_type invoice_line.detail",
    ),
    "nullability": (_flip_nullable, "modify_nullable customer.email"),
    "a new index": (_add_index, "add_index customer.ix_customer_name"),
    "a new unique constraint": (_add_unique, "add_constraint customer.uq_customer_name"),
    "an index dropped": (_drop_index, "remove_index outbox.ix_outbox_due"),
    "a new column": (_add_column, "add_column customer.nickname"),
    "a new table": (_add_table, "add_table refund"),
}


@pytest.mark.parametrize("change", MODEL_CHANGES, ids=lambda name: name.replace(" ", "_"))
def test_a_model_change_without_its_migration_is_a_difference(engine, change):
    alter, expected = MODEL_CHANGES[change]
    models = _models_copy()
    alter(models)
    assert differences(engine, models) == [expected]
