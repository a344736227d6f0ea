"""Keys lead with the customer (docs/operations.md, "Distribute by customer").

Every per-customer table's primary key starts with `customer_id`, so the schema can be
distributed by customer (Citus), which enforces a key only when it holds the distribution
column. The tables that had no `customer_id` (invoice and credit-note lines and syncs, the
alert outbox) get one, filled from their parent, and their foreign keys become composite,
(customer_id, parent_id) -> parent (customer_id, id), so a child lives beside its parent.
The unique (series, number) of invoices and credit notes moves to a new global table,
`document_number`, filled from the documents already issued.

Integer ids (alert, outbox, credit_entry, invoice_line, credit_note_line, spend_cap_change)
keep their sequence on PostgreSQL, where the key becomes (customer_id, id). SQLite numbers
only a lone `INTEGER PRIMARY KEY` (the rowid): there these tables keep `id` as their key, and
`alert` gets UNIQUE (customer_id, id) for the outbox's composite foreign key. Alembic does not
compare primary keys, so the models (customer_id, id) match both.

SQLite rewrites a table to change its keys, and the migrations run with foreign keys on in a
transaction (where `PRAGMA foreign_keys` cannot change): the tables concerned are renamed
aside together (SQLite points their foreign keys at the new names), created anew, filled,
and the old ones dropped children first; their triggers (migrations 0004 and 0009) are kept
and put back as they were.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table: its own key column (after customer_id)
_KEYS = {
    "alert": "id",
    "outbox": "id",
    "commitment": "id",
    "credit_entry": "id",
    "invoice": "id",
    "invoice_line": "id",
    "invoice_sync": "invoice_id",
    "credit_note": "id",
    "credit_note_line": "id",
    "credit_note_sync": "credit_note_id",
    "spend_cap_change": "id",
}
# child without customer_id: (column naming its parent, parent); it takes the parent's
_CHILDREN = {
    "outbox": ("alert_id", "alert"),
    "invoice_line": ("invoice_id", "invoice"),
    "invoice_sync": ("invoice_id", "invoice"),
    "credit_note_line": ("credit_note_id", "credit_note"),
    "credit_note_sync": ("credit_note_id", "credit_note"),
}
# every foreign key to a per-customer parent, made composite
_REFERENCES = {
    **_CHILDREN,
    "credit_note": ("invoice_id", "invoice"),
    "credit_entry": ("commitment_id", "commitment"),
}
# non-unique indexes on customer_id alone that the new keys make redundant
_REDUNDANT = {
    "invoice": "ix_invoice_customer_id",
    "credit_note": "ix_credit_note_customer_id",
    "commitment": "ix_commitment_customer_id",
}
# the lookups by id alone, which the old keys served
_LOOKUPS = {
    "invoice": ("ix_invoice_id", "id"),
    "credit_note": ("ix_credit_note_id", "id"),
    "commitment": ("ix_commitment_id", "id"),
    "invoice_sync": ("ix_invoice_sync_invoice_id", "invoice_id"),
    "credit_note_sync": ("ix_credit_note_sync_credit_note_id", "credit_note_id"),
}
_NUMBERED = {"invoice": "uq_invoice_number", "credit_note": "uq_credit_note_number"}
# PostgreSQL: the immutability triggers refuse the UPDATE that fills customer_id
_PG_LOCKED = {
    "invoice_line": (
        "ALTER TABLE invoice_line DISABLE TRIGGER invoice_line_immutable",
        "ALTER TABLE invoice_line ENABLE TRIGGER invoice_line_immutable",
    ),
    "credit_note_line": (
        "ALTER TABLE credit_note_line DISABLE TRIGGER credit_note_line_immutable",
        "ALTER TABLE credit_note_line ENABLE TRIGGER credit_note_line_immutable",
    ),
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _rebuild_sqlite(_sqlite_tables(keyed=True))
    _create_document_number()


def downgrade() -> None:
    op.drop_table("document_number")
    if op.get_bind().dialect.name == "postgresql":
        _downgrade_postgresql()
    else:
        _rebuild_sqlite(_sqlite_tables(keyed=False))


def _create_document_number() -> None:
    table = op.create_table(
        "document_number",
        sa.Column("series", sa.String(16), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("document_id", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("series", "number"),
    )
    assert table is not None
    for name in _NUMBERED:
        document = sa.table(
            name,
            sa.column("series"),
            sa.column("number"),
            sa.column("customer_id"),
            sa.column("id"),
        )
        op.execute(
            table.insert().from_select(
                ["series", "number", "customer_id", "document_id"],
                sa.select(
                    document.c.series, document.c.number, document.c.customer_id, document.c.id
                ),
            )
        )


# --- PostgreSQL: keys altered in place ----------------------------------------------------


def _upgrade_postgresql() -> None:
    for child, (column, _parent) in _REFERENCES.items():
        op.drop_constraint(child + "_" + column + "_fkey", child, type_="foreignkey")
    for child, (column, parent) in _CHILDREN.items():
        op.add_column(child, sa.Column("customer_id", sa.String(64), nullable=True))
        locked = _PG_LOCKED.get(child)
        if locked:
            op.execute(locked[0])
        op.execute(_fill_customer(child, column, parent))
        if locked:
            op.execute(locked[1])
        op.alter_column(child, "customer_id", existing_type=sa.String(64), nullable=False)
    for table, key in _KEYS.items():
        op.drop_constraint(table + "_pkey", table, type_="primary")
        op.create_primary_key(table + "_pkey", table, ["customer_id", key])
    for table, unique in _NUMBERED.items():
        op.drop_constraint(unique, table, type_="unique")
    for table, index in _REDUNDANT.items():
        op.drop_index(index, table_name=table)
    for table, (index, column) in _LOOKUPS.items():
        op.create_index(index, table, [column])
    for child, (column, parent) in _REFERENCES.items():
        op.create_foreign_key(
            child + "_customer_id_" + column + "_fkey",
            child,
            parent,
            ["customer_id", column],
            ["customer_id", "id"],
        )


def _downgrade_postgresql() -> None:
    for child, (column, _parent) in _REFERENCES.items():
        op.drop_constraint(child + "_customer_id_" + column + "_fkey", child, type_="foreignkey")
    for table, (index, _column) in _LOOKUPS.items():
        op.drop_index(index, table_name=table)
    for table, index in _REDUNDANT.items():
        op.create_index(index, table, ["customer_id"])
    for table, unique in _NUMBERED.items():
        op.create_unique_constraint(unique, table, ["series", "number"])
    for table, key in _KEYS.items():
        op.drop_constraint(table + "_pkey", table, type_="primary")
        op.create_primary_key(table + "_pkey", table, [key])
    for child in _CHILDREN:
        op.drop_column(child, "customer_id")
    for child, (column, parent) in _REFERENCES.items():
        op.create_foreign_key(child + "_" + column + "_fkey", child, parent, [column], ["id"])


def _fill_customer(child: str, column: str, parent: str) -> sa.Update:
    """UPDATE child SET customer_id = its parent's."""
    rows = sa.table(child, sa.column("customer_id"), sa.column(column))
    parents = sa.table(parent, sa.column("customer_id"), sa.column("id"))
    owner = sa.select(parents.c.customer_id).where(parents.c.id == rows.c[column])
    return rows.update().values(customer_id=owner.scalar_subquery())


# --- SQLite: the tables rewritten -----------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """What a rewritten SQLite table is besides its columns (which are read from the table)."""

    primary_key: tuple[str, ...]
    foreign_keys: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...]
    uniques: tuple[tuple[str | None, tuple[str, ...]], ...] = ()
    indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    partial: tuple[tuple[str, str, str], ...] = ()  # (name, column, where)
    customer: str = "kept"  # or "added" (filled from the parent in _CHILDREN) or "dropped"


_TO_CUSTOMER = ((("customer_id",), "customer", ("id",)),)
_TEXT_KEYS = ("commitment", "invoice", "invoice_sync", "credit_note", "credit_note_sync")


def _sqlite_tables(*, keyed: bool) -> dict[str, _Shape]:
    """The shape of each rewritten table after upgrade (`keyed`) or after downgrade, parents
    before children."""

    def reference(child: str) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
        column, parent = _REFERENCES[child]
        if keyed:
            return (("customer_id", column), parent, ("customer_id", "id"))
        return ((column,), parent, ("id",))

    def key(table: str) -> tuple[str, ...]:
        # integer ids stay the rowid on SQLite (see the module docstring)
        if keyed and table in _TEXT_KEYS:
            return ("customer_id", _KEYS[table])
        return (_KEYS[table],)

    def lookup(table: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        index, column = _LOOKUPS[table]
        return ((index, (column,)),) if keyed else ()

    def redundant(table: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return () if keyed else ((_REDUNDANT[table], ("customer_id",)),)

    def numbered(table: str) -> tuple[tuple[str | None, tuple[str, ...]], ...]:
        return () if keyed else ((_NUMBERED[table], ("series", "number")),)

    child = "added" if keyed else "dropped"
    return {
        "alert": _Shape(
            primary_key=key("alert"),
            foreign_keys=_TO_CUSTOMER,
            uniques=(
                ("uq_alert_once", ("customer_id", "product", "period_start", "kind")),
                *(((None, ("customer_id", "id")),) if keyed else ()),
            ),
        ),
        "commitment": _Shape(
            primary_key=key("commitment"),
            foreign_keys=_TO_CUSTOMER,
            indexes=(*redundant("commitment"), *lookup("commitment")),
            partial=(("uq_commitment_active", "customer_id", "status = 'active'"),),
        ),
        "invoice": _Shape(
            primary_key=key("invoice"),
            foreign_keys=_TO_CUSTOMER,
            uniques=numbered("invoice"),
            indexes=(*redundant("invoice"), *lookup("invoice")),
        ),
        "outbox": _Shape(
            primary_key=key("outbox"),
            foreign_keys=(reference("outbox"),),
            indexes=(("ix_outbox_due", ("status", "next_attempt_at")),),
            customer=child,
        ),
        "credit_entry": _Shape(
            primary_key=key("credit_entry"),
            foreign_keys=(*_TO_CUSTOMER, reference("credit_entry")),
            indexes=(("ix_credit_entry_customer_id", ("customer_id",)),),
        ),
        "invoice_line": _Shape(
            primary_key=key("invoice_line"),
            foreign_keys=(reference("invoice_line"),),
            indexes=(("ix_invoice_line_invoice_id", ("invoice_id",)),),
            customer=child,
        ),
        "invoice_sync": _Shape(
            primary_key=key("invoice_sync"),
            foreign_keys=(reference("invoice_sync"),),
            indexes=(
                ("ix_invoice_sync_status", ("status",)),
                ("ix_invoice_sync_stripe_invoice_id", ("stripe_invoice_id",)),
                *lookup("invoice_sync"),
            ),
            customer=child,
        ),
        "credit_note": _Shape(
            primary_key=key("credit_note"),
            foreign_keys=(reference("credit_note"), *_TO_CUSTOMER),
            uniques=numbered("credit_note"),
            indexes=(
                ("ix_credit_note_invoice_id", ("invoice_id",)),
                *redundant("credit_note"),
                *lookup("credit_note"),
            ),
        ),
        "credit_note_line": _Shape(
            primary_key=key("credit_note_line"),
            foreign_keys=(reference("credit_note_line"),),
            indexes=(("ix_credit_note_line_credit_note_id", ("credit_note_id",)),),
            customer=child,
        ),
        "credit_note_sync": _Shape(
            primary_key=key("credit_note_sync"),
            foreign_keys=(reference("credit_note_sync"),),
            indexes=(("ix_credit_note_sync_status", ("status",)), *lookup("credit_note_sync")),
            customer=child,
        ),
    }


# the SQLite triggers of these tables (migrations 0004 and 0009), dropped while they are
# rewritten and put back from their stored text
_SQLITE_DROP_TRIGGERS = {
    "invoice_no_delete": "DROP TRIGGER invoice_no_delete",
    "invoice_only_moves": "DROP TRIGGER invoice_only_moves",
    "invoice_line_no_change": "DROP TRIGGER invoice_line_no_change",
    "invoice_line_no_delete": "DROP TRIGGER invoice_line_no_delete",
    "invoice_line_no_growth": "DROP TRIGGER invoice_line_no_growth",
    "credit_note_no_change": "DROP TRIGGER credit_note_no_change",
    "credit_note_no_delete": "DROP TRIGGER credit_note_no_delete",
    "credit_note_line_no_change": "DROP TRIGGER credit_note_line_no_change",
    "credit_note_line_no_delete": "DROP TRIGGER credit_note_line_no_delete",
    "credit_note_line_no_growth": "DROP TRIGGER credit_note_line_no_growth",
}
_SQLITE_TRIGGERS = sa.text(
    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN :tables"
).bindparams(sa.bindparam("tables", expanding=True))


def _rebuild_sqlite(shapes: dict[str, _Shape]) -> None:
    """Rename the tables aside, create them in their new shape, copy their rows (a child's
    customer_id from its parent), drop the old ones, then their indexes and triggers."""
    bind = op.get_bind()
    triggers = bind.execute(_SQLITE_TRIGGERS, {"tables": list(shapes)}).all()
    unknown = {name for name, _sql in triggers} - set(_SQLITE_DROP_TRIGGERS)
    if unknown:
        raise RuntimeError(f"migration 0020 does not know the SQLite triggers {sorted(unknown)}")
    for name, _sql in triggers:
        op.execute(_SQLITE_DROP_TRIGGERS[name])
    old = {name: sa.Table(name, sa.MetaData(), autoload_with=bind) for name in shapes}
    for name in shapes:
        op.rename_table(name, "_old_" + name)
    new_metadata = sa.MetaData()
    sa.Table("customer", new_metadata, sa.Column("id", sa.String(64), primary_key=True))
    for name, shape in shapes.items():
        columns = [
            sa.Column(
                column.name,
                column.type,
                nullable=column.nullable,
                server_default=None if column.server_default is None else column.server_default.arg,  # type: ignore[attr-defined]
            )
            for column in old[name].columns
            if not (shape.customer == "dropped" and column.name == "customer_id")
        ]
        if shape.customer == "added":
            columns.append(sa.Column("customer_id", sa.String(64), nullable=False))
        table = sa.Table(
            name,
            new_metadata,
            *columns,
            sa.PrimaryKeyConstraint(*shape.primary_key),
            *(
                sa.ForeignKeyConstraint(list(mine), [parent + "." + c for c in theirs])
                for mine, parent, theirs in shape.foreign_keys
            ),
            *(sa.UniqueConstraint(*columns_, name=unique) for unique, columns_ in shape.uniques),
        )
        table.create(bind)
        _copy(table, old[name], shape)
    for name in reversed(list(shapes)):
        op.drop_table("_old_" + name)
    for name, shape in shapes.items():
        for index, columns_ in shape.indexes:
            op.create_index(index, name, list(columns_))
        for index, column, where in shape.partial:
            op.create_index(index, name, [column], unique=True, sqlite_where=sa.text(where))
    for _name, sql in triggers:
        op.execute(sql)


def _copy(table: sa.Table, old: sa.Table, shape: _Shape) -> None:
    """INSERT INTO table SELECT ... FROM its renamed old self (joined to the parent's old
    self for a customer_id it did not have)."""
    source = sa.table("_old_" + old.name, *(sa.column(c.name) for c in old.columns))
    names = [c.name for c in table.columns if c.name in source.c]
    picked: list[sa.ColumnElement[object]] = [source.c[n] for n in names]
    query = sa.select(*picked)
    if shape.customer == "added":
        column, parent = _CHILDREN[old.name]
        parents = sa.table("_old_" + parent, sa.column("customer_id"), sa.column("id"))
        query = sa.select(*picked, parents.c.customer_id).select_from(
            source.join(parents, parents.c.id == source.c[column])
        )
        names.append("customer_id")
    op.execute(table.insert().from_select(names, query))
