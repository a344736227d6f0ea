"""Monthly partitions of the raw event table on PostgreSQL (docs/operations.md, "Partitions").

The event table is partitioned by range of `period_start` (declarative partitioning): one
partition a month, named `event_YYYY_MM` and holding the events of the periods that start
in that month (UTC), and `event_default` for the months that have none yet. Partitions are
created ahead of time — by every upgrade and by the `partition_events` job — so events land
in their month's partition; creating a month whose events already went to the default
partition moves them (the database functions of migration 0019 do the DDL).

An archived month is dropped whole (`drop_month`), instead of deleting its rows one by one.
SQLite has no partitioning: there, every function here does nothing.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import Connection, text

PARTITION = re.compile(r"^event_(\d{4})_(\d{2})$")
DEFAULT_PARTITION = "event_default"
_PARTITIONS = text(
    "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = CAST('event' AS regclass)"
)


def is_partition(name: str) -> bool:
    """Whether a table name is one of the event table's partitions (monthly or default)."""
    return name == DEFAULT_PARTITION or PARTITION.match(name) is not None


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's `include_name` hook: autogenerate compares the models' tables, never the
    event table's partitions, which the database makes (so it never proposes dropping
    them)."""
    return not (type_ == "table" and name is not None and is_partition(name))


def month_of(at: dt.datetime | dt.date) -> dt.date:
    """The first day of the month `at` is in (an aware datetime is taken in UTC)."""
    if isinstance(at, dt.datetime):
        at = at.astimezone(dt.UTC).date()
    return at.replace(day=1)


def add_months(month: dt.date, count: int) -> dt.date:
    """The first day of the month `count` months after `month` (before, when negative)."""
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


def partitioned(connection: Connection) -> bool:
    """Whether this database partitions the event table (PostgreSQL)."""
    return connection.dialect.name == "postgresql"


def months(connection: Connection) -> list[dt.date]:
    """The months that have a partition, oldest first (first days; none on SQLite)."""
    if not partitioned(connection):
        return []
    found = []
    for (name,) in connection.execute(_PARTITIONS):
        match = PARTITION.match(name)
        if match:
            found.append(dt.date(int(match[1]), int(match[2]), 1))
    return sorted(found)


def create_ahead(connection: Connection, now: dt.datetime, ahead: int) -> list[dt.date]:
    """Make sure the month of `now` (UTC) and the `ahead` months after it have their
    partition; returns the months created (first days), empty on SQLite. A month whose
    events went to the default partition gets them moved to its new partition."""
    if not partitioned(connection):
        return []
    if ahead < 0:
        raise ValueError(f"ahead: a number of months, 0 or more (got {ahead})")
    first = month_of(now)
    created = []
    for count in range(ahead + 1):
        month = add_months(first, count)
        made = connection.execute(
            text("SELECT create_event_partition(:month)"), {"month": month}
        ).scalar_one()
        if made:
            created.append(month)
    return created


def drop_month(connection: Connection, month: dt.date, exported: int) -> int:
    """Drop the partition of `month` (its first day), whose `exported` events were written
    to an archive: the database checks that it holds exactly that many, removes their ids
    from `event_key`, detaches and drops it. Returns the events dropped; raises
    sqlalchemy.exc.DBAPIError (the transaction is then void) when the count differs."""
    dropped: int = connection.execute(
        text("SELECT drop_event_partition(:month, :exported)"),
        {"month": month, "exported": exported},
    ).scalar_one()
    return dropped
