"""The distribution-key rule (docs/operations.md, "Distribute by customer"): every table is
classified, per customer or global; a per-customer table's primary key, unique constraints
and unique indexes lead with its distribution column (customer_id; the customer table's own
id), and its foreign keys to other per-customer tables carry that column, so Citus can
distribute the schema by customer with every key enforced and every child beside its parent.

PostgreSQL enforces the same rule on a table hash-partitioned by the customer: it refuses a
unique key without the partition column. The test builds each per-customer table of a
migrated schema that way, with its keys and foreign keys, and shows a wrong table refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import SQLModel

import billing.models  # noqa: F401  (every table on the metadata)
from billing.metering.partitions import is_partition

# table: its distribution column. Distributed by customer and co-located (Citus
# create_distributed_table(table, column, colocate_with => 'customer')).
PER_CUSTOMER = {
    "customer": "id",  # the customer itself: every other per-customer table follows it
    "alert": "customer_id",
    "outbox": "customer_id",  # an alert's webhook
    "commitment": "customer_id",
    "credit_entry": "customer_id",
    "credit_note": "customer_id",
    "credit_note_line": "customer_id",
    "credit_note_sync": "customer_id",
    "event": "customer_id",
    "invoice": "customer_id",
    "invoice_line": "customer_id",
    "invoice_sync": "customer_id",
    "spend_cap": "customer_id",
    "spend_cap_change": "customer_id",
    "stripe_customer": "customer_id",
    "usage": "customer_id",
    "usage_breakdown": "customer_id",
    "usage_latest": "customer_id",
    "usage_unique": "customer_id",
}
# table: why it is not distributed by customer (a Citus reference table, unless it says
# otherwise)
GLOBAL = {
    "api_key": "staff keys have no customer; a key is found by its hash, across customers",
    "document_number": "legal numbering: (series, number) unique across customers",
    "email_outbox": "staff emails have no customer; one (kind, reference) across customers",
    "event_key": "distributed by its own id: event ids are unique across customers by contract",
    "idempotency_key": "keyed by its owner, who may be staff",
    "invoice_series": "one counter per series, for every customer",
    "job_run": "the scheduler's own record",
    "notification_event": "staff events have no customer",
    "stripe_event": "Stripe's events, found by Stripe's id before we know the customer",
    "web_link": "staff links have no customer; found by token hash",
    "web_secret": "the service's signing secrets",
    "web_session": "staff sessions have no customer; found by token hash",
    "webhook_delivery": "deliveries of global endpoints and events",
    "webhook_endpoint": "staff endpoints (customer_id null) receive every customer's events",
}
PARTITIONS = 4


def _unique_keys(table: sa.Table) -> Iterable[tuple[str, list[str]]]:
    """(what, columns in key order) of the table's primary key, unique constraints and
    unique indexes, as the model declares them."""
    yield "primary key", [c.name for c in table.primary_key.columns]
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            yield f"unique {constraint.name}", [c.name for c in constraint.columns]
    for index in table.indexes:
        if index.unique:
            yield f"unique index {index.name}", [c.name for c in index.columns]


def rule_breaches(metadata: sa.MetaData, *, rowid: bool = False) -> list[str]:
    """What breaks the rule in `metadata`: one line per key or foreign key. `rowid`: a
    lone `id` key stands for the (customer_id, id) its model declares (SQLite's rowid,
    migration 0020)."""
    found = []
    for name, table in sorted(metadata.tables.items()):
        if name == "alembic_version":
            continue
        column = PER_CUSTOMER.get(name)
        if column is None:
            for fk in table.foreign_key_constraints:
                target = fk.referred_table.name
                if target in PER_CUSTOMER and target != "customer":
                    found.append(f"{name}: global, refers to per-customer {target}")
            continue
        for what, columns in _unique_keys(table):
            if rowid and what == "primary key" and columns == ["id"]:
                columns = [c.name for c in SQLModel.metadata.tables[name].primary_key.columns]
            if columns[:1] != [column]:
                found.append(f"{name}: {what} {columns} does not lead with {column}")
        for fk in table.foreign_key_constraints:
            target = fk.referred_table.name
            if target not in PER_CUSTOMER:
                found.append(f"{name}: refers to global {target}")
                continue
            pairs = {(e.parent.name, e.column.name) for e in fk.elements}
            if (column, PER_CUSTOMER[target]) not in pairs:
                found.append(f"{name}: foreign key to {target} without {column}")
    return found


def test_every_table_is_classified_once():
    names = set(SQLModel.metadata.tables)
    assert not set(PER_CUSTOMER) & set(GLOBAL)
    assert sorted(names - set(PER_CUSTOMER) - set(GLOBAL)) == []
    assert sorted((set(PER_CUSTOMER) | set(GLOBAL)) - names) == []


def test_the_models_keys_lead_with_the_customer():
    assert rule_breaches(SQLModel.metadata) == []


def test_the_rule_sees_a_key_without_the_customer_first():
    metadata = sa.MetaData()
    sa.Table("customer", metadata, sa.Column("id", sa.String(64), primary_key=True))
    sa.Table(
        "invoice",
        metadata,
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id")),
        sa.Column("id", sa.String(32)),
        sa.Column("number", sa.Integer),
        sa.PrimaryKeyConstraint("id", "customer_id"),
        sa.UniqueConstraint("number", name="uq_number"),
    )
    assert rule_breaches(metadata) == [
        "invoice: primary key ['id', 'customer_id'] does not lead with customer_id",
        "invoice: unique uq_number ['number'] does not lead with customer_id",
    ]


def test_the_migrated_schema_keys_lead_with_the_customer(engine: Engine):
    """The database as migrated, read back: its keys follow the rule on both engines. On
    SQLite a table numbered by rowid keeps `id INTEGER PRIMARY KEY` (migration 0020)."""
    reflected = sa.MetaData()
    reflected.reflect(engine, only=lambda name, _: not is_partition(name))
    unknown = set(reflected.tables) - set(PER_CUSTOMER) - set(GLOBAL) - {"alembic_version"}
    assert sorted(unknown) == []
    assert rule_breaches(reflected, rowid=engine.dialect.name == "sqlite") == []


# --- PostgreSQL: the schema hash-partitioned by customer -------------------------------------


_KEYS = sa.text(
    "SELECT con.conname, con.contype, pg_get_constraintdef(con.oid) AS definition, "
    "con.confrelid::regclass::text AS target, "
    "ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i) "
    "  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i) "
    "  AS columns, "
    "ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i) "
    "  JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i) "
    "  AS target_columns "
    "FROM pg_constraint con WHERE con.conrelid = CAST(:table AS regclass) "
    "AND con.contype IN ('p', 'u', 'f') ORDER BY con.conname"
)
_UNIQUE_INDEXES = sa.text(
    "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition, "
    "ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) "
    "  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) "
    "  AS columns "
    "FROM pg_index i WHERE i.indrelid = CAST(:table AS regclass) AND i.indisunique "
    "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
)


def distribute(connection: sa.Connection, tables: dict[str, str]) -> list[str]:
    """Build `<table>_dist`, hash-partitioned by its distribution column, for each of
    `tables` (table: column), with the table's primary key, unique constraints and unique
    indexes, then the foreign keys between them. PostgreSQL refuses a unique key without
    the partition column (psycopg raises). Returns the keys whose FIRST column is not the
    distribution column (the stricter rule, which PostgreSQL does not check)."""

    def q(name: str) -> str:
        return connection.dialect.identifier_preparer.quote(name)

    not_leading = []
    foreign = []
    for table, column in tables.items():
        dist = table + "_dist"
        connection.exec_driver_sql(
            f"CREATE TABLE {q(dist)} (LIKE {q(table)} INCLUDING DEFAULTS) "
            f"PARTITION BY HASH ({q(column)})"
        )
        for remainder in range(PARTITIONS):
            connection.exec_driver_sql(
                f"CREATE TABLE {q(dist + '_' + str(remainder))} PARTITION OF {q(dist)} "
                f"FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {remainder})"
            )
        for key in connection.execute(_KEYS, {"table": table}):
            if key.contype == "f":
                foreign.append((table, key))
                continue
            if key.columns[:1] != [column]:
                not_leading.append(f"{table}: {key.conname} {key.columns}")
            connection.exec_driver_sql(
                f"ALTER TABLE {q(dist)} ADD CONSTRAINT {q(dist + '_' + key.conname)} "
                f"{key.definition}"
            )
        for index in connection.execute(_UNIQUE_INDEXES, {"table": table}):
            if index.columns[:1] != [column]:
                not_leading.append(f"{table}: {index.name} {index.columns}")
            definition = re.sub(
                r"^CREATE UNIQUE INDEX \S+ ON \S+ ",
                f"CREATE UNIQUE INDEX {q(index.name + '_dist')} ON {q(dist)} ",
                index.definition,
            )
            assert definition != index.definition, index.definition
            connection.exec_driver_sql(definition)
    for table, key in foreign:
        target = key.target.split(".")[-1]
        if target not in tables:
            continue
        connection.exec_driver_sql(
            f"ALTER TABLE {q(table + '_dist')} ADD CONSTRAINT {q(table + '_dist_' + key.conname)} "
            f"FOREIGN KEY ({', '.join(map(q, key.columns))}) "
            f"REFERENCES {q(target + '_dist')} ({', '.join(map(q, key.target_columns))})"
        )
    return not_leading


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgresql_builds_every_per_customer_table_partitioned_by_customer(engine: Engine):
    present = set(sa.inspect(engine).get_table_names())
    tables = {t: c for t, c in PER_CUSTOMER.items() if t in present}
    assert set(tables) == set(PER_CUSTOMER)
    with engine.begin() as connection:
        assert distribute(connection, tables) == []
        built = connection.execute(
            sa.text(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent "
                "WHERE c.relkind = 'p' AND c.relname LIKE '%\\_dist' "
                "AND c.relnamespace = CAST(current_schema() AS regnamespace)"
            )
        ).scalar_one()
        assert built == len(tables) * PARTITIONS


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgresql_refuses_a_unique_key_without_the_customer(engine: Engine):
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE wrong_number (customer_id varchar(64) NOT NULL, "
            "series varchar(16) NOT NULL, number integer NOT NULL, "
            "CONSTRAINT wrong_number_pkey PRIMARY KEY (customer_id, series, number), "
            "CONSTRAINT uq_wrong_number UNIQUE (series, number))"
        )
        refused = pytest.raises(sa.exc.DBAPIError, match="must include all partitioning columns")
        with refused, connection.begin_nested():
            distribute(connection, {"wrong_number": "customer_id"})


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_key_with_the_customer_second_passes_postgresql_but_not_the_rule(engine: Engine):
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE late_customer (customer_id varchar(64) NOT NULL, "
            "id varchar(32) NOT NULL, CONSTRAINT late_customer_pkey PRIMARY KEY (id, customer_id))"
        )
        assert distribute(connection, {"late_customer": "customer_id"}) == [
            "late_customer: late_customer_pkey ['id', 'customer_id']"
        ]
