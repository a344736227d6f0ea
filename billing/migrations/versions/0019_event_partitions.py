"""Raw events keyed by customer and partitioned by month; their ids in a registry of their own
(docs/operations.md, "Partitions" and "Distribute by customer").

- `event_key` (id primary key, customer_id, period_start): an event id is stored once across
  customers and months (a duplicate or a conflict, docs/metering.md), which the event table
  can no longer say once its key holds the month.
- `event`: primary key (customer_id, period_start, id). On PostgreSQL the table is
  re-created partitioned by range of `period_start`, one partition a month
  (`event_YYYY_MM`, [first of the month, first of the next)) and a default partition
  (`event_default`) for months without one; the rows are copied over. The function
  `create_event_partition(first_day date)` creates a month's partition, moving its rows
  out of the default partition if it holds any (metering/partitions.py calls it, ahead of
  time: this migration for this month and the next three, then the `partition_events`
  job); `drop_event_partition(first_day date, exported bigint)` drops an archived month.
  On SQLite the table is rebuilt with the new key (SQLite has no partitioning), both tables
  WITHOUT ROWID: a row lives in its key's b-tree, so an insert writes one b-tree, not a
  table and its key's index.

The copy rewrites the event table once: on a large table, run the upgrade off-peak.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from billing.db import ExactDecimal, UTCDateTime

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# PL/pgSQL builds the DDL with format(): %I quotes the partition's name, %L the bounds.
_CREATE_PARTITION = """
CREATE FUNCTION create_event_partition(first_day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'event_' || to_char(first_day, 'YYYY_MM');
    low timestamptz := first_day::timestamp AT TIME ZONE 'UTC';
    high timestamptz := (first_day + interval '1 month')::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF date_trunc('month', first_day)::date <> first_day THEN
        RAISE EXCEPTION 'not the first day of a month: %', first_day;
    END IF;
    -- one creator (or dropper) at a time
    PERFORM pg_advisory_xact_lock(hashtext('create_event_partition'));
    IF EXISTS (
        SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'event'::regclass AND c.relname = name
    ) THEN
        RETURN false;
    END IF;
    -- writers of events wait here, and those mid-transaction are waited for: an insert
    -- routed to the default partition before the new one is attached would break the
    -- default partition's new bounds (reads go on)
    LOCK TABLE event IN SHARE ROW EXCLUSIVE MODE;
    IF EXISTS (
        SELECT 1 FROM event_default WHERE period_start >= low AND period_start < high
    ) THEN
        EXECUTE format('CREATE TABLE %I (LIKE event INCLUDING DEFAULTS)', name);
        EXECUTE format(
            'WITH moved AS (DELETE FROM event_default '
            'WHERE period_start >= %L AND period_start < %L RETURNING *) '
            'INSERT INTO %I SELECT * FROM moved',
            low, high, name
        );
        EXECUTE format(
            'ALTER TABLE event ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
            name, low, high
        );
    ELSE
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF event FOR VALUES FROM (%L) TO (%L)', name, low, high
        );
    END IF;
    RETURN true;
END
$$
"""

# Drops a month's partition whose events were exported: checks it holds as many as were,
# removes their ids from event_key, detaches and drops it; returns the events dropped.
_DROP_PARTITION = """
CREATE FUNCTION drop_event_partition(first_day date, exported bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'event_' || to_char(first_day, 'YYYY_MM');
    held bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('create_event_partition'));
    IF NOT EXISTS (
        SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'event'::regclass AND c.relname = name
    ) THEN
        RAISE EXCEPTION 'event has no partition %', name;
    END IF;
    LOCK TABLE event IN SHARE ROW EXCLUSIVE MODE;  -- no writer of events meanwhile
    EXECUTE format('SELECT count(*) FROM %I', name) INTO held;
    IF held <> exported THEN
        RAISE EXCEPTION 'partition % holds % events, % were exported', name, held, exported;
    END IF;
    EXECUTE format('DELETE FROM event_key AS k USING %I AS e WHERE k.id = e.id', name);
    EXECUTE format('ALTER TABLE event DETACH PARTITION %I', name);
    EXECUTE format('DROP TABLE %I', name);
    RETURN held;
END
$$
"""


_KEY = ["customer_id", "period_start", "id"]
# the event table's columns, in both shapes of it (copied by name between them)
_COLUMNS = (
    "customer_id, period_start, id, product, quantity, timestamp, status, received_at, "
    "properties, over_limit_products"
)


def _event_table(name: str, key: list[str], **options: Any) -> None:
    op.create_table(
        name,
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("product", sa.String(64), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("properties", sa.Text(), nullable=True),
        sa.Column("over_limit_products", sa.String(1400), nullable=True),
        sa.PrimaryKeyConstraint(*key, name=f"{name}_pkey"),
        **options,
    )


def _copy_events(source: str) -> None:
    """Copy every event of table `source` (one of this migration's two constant names) into
    `event`."""
    op.execute("INSERT INTO event (" + _COLUMNS + ") SELECT " + _COLUMNS + " FROM " + source)


def upgrade() -> None:
    op.create_table(
        "event_key",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.execute(
        "INSERT INTO event_key (id, customer_id, period_start) "
        "SELECT id, customer_id, period_start FROM event"
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    op.rename_table("event", "event_unkeyed")
    if postgres:
        op.execute("ALTER INDEX event_pkey RENAME TO event_unkeyed_pkey")
        _event_table("event", _KEY, postgresql_partition_by="RANGE (period_start)")
        op.execute("CREATE TABLE event_default PARTITION OF event DEFAULT")
        op.execute(_CREATE_PARTITION)
        op.execute(_DROP_PARTITION)
        op.execute(
            "SELECT create_event_partition(month) FROM (SELECT DISTINCT "
            "(date_trunc('month', period_start AT TIME ZONE 'UTC'))::date AS month "
            "FROM event_unkeyed) AS months"
        )
        # this month and the next three; the partition_events job keeps them ahead
        op.execute(
            "SELECT create_event_partition((date_trunc('month', now() AT TIME ZONE 'UTC') "
            "+ ahead * interval '1 month')::date) FROM generate_series(0, 3) AS ahead"
        )
    else:
        _event_table("event", _KEY, sqlite_with_rowid=False)
    _copy_events("event_unkeyed")
    op.drop_table("event_unkeyed")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.rename_table("event", "event_keyed")
    if postgres:
        op.execute("ALTER INDEX event_pkey RENAME TO event_keyed_pkey")
    _event_table("event", ["id"])  # keyed by id alone, as before
    _copy_events("event_keyed")
    op.drop_table("event_keyed")  # on PostgreSQL its partitions go with it
    if postgres:
        op.execute("DROP FUNCTION create_event_partition(date)")
        op.execute("DROP FUNCTION drop_event_partition(date, bigint)")
    op.drop_table("event_key")
