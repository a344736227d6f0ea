"""Bulk reads and writes of raw events, at the driver level, per database.

Ingestion moves 10,000 events per request; going through the ORM's per-row type processing
costs more than the database itself. These two functions speak each driver's own fastest
form and produce exactly what the `Event` model's column types would store:

    SQLite      executemany with pre-formatted values; the transaction began with
                BEGIN IMMEDIATE (db.py), so no other writer can insert between our read
                and our write, and a plain INSERT cannot meet a duplicate id.
    PostgreSQL  one statement per batch with array parameters (unnest / = ANY), so psycopg
                does not re-parse thousands of placeholders; ON CONFLICT DO NOTHING ...
                RETURNING tells which ids a concurrent request stored first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

Stored = tuple[str, str, Decimal, dt.datetime]  # customer, product, quantity, timestamp
Row = tuple[str, str, str, Decimal, dt.datetime, dt.datetime]  # id .. period_start
CHUNK = 5000
_READ = "id, customer_id, product, quantity, timestamp"
_COLUMNS = "id, customer_id, product, quantity, timestamp, period_start, status, received_at"


def _pg_binary(connection: Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    """Run one statement on the session's own psycopg connection with binary parameters.

    Binary arrays skip psycopg's per-element text quoting, the largest cost of a batch.
    """
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor(binary=True) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def sqlite_datetime(value: dt.datetime) -> str:
    """An aware datetime as UTCDateTime stores it on SQLite."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def read_stored(connection: Connection, ids: Sequence[str]) -> dict[str, Stored]:
    """The stored content of those of `ids` that exist."""
    found: dict[str, Stored] = {}
    if connection.dialect.name == "postgresql":
        stored = _pg_binary(
            connection, f"SELECT {_READ} FROM event WHERE id = ANY(%s::varchar[])", (list(ids),)
        )
        for row in stored:
            found[row[0]] = (row[1], row[2], row[3], row[4].astimezone(dt.UTC))
        return found
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = connection.exec_driver_sql(
            f"SELECT {_READ} FROM event WHERE id IN ({marks})", tuple(chunk)
        )
        for row in rows:
            at = dt.datetime.fromisoformat(row[4]).replace(tzinfo=dt.UTC)
            found[row[0]] = (row[1], row[2], Decimal(row[3]), at)
    return found


def insert_events(
    connection: Connection, rows: Sequence[Row], received_at: dt.datetime
) -> set[str]:
    """Insert accepted events; return the ids this call stored."""
    if not rows:
        return set()
    if connection.dialect.name == "postgresql":
        columns = list(zip(*rows, strict=True))
        inserted = _pg_binary(
            connection,
            f"INSERT INTO event ({_COLUMNS}) "
            "SELECT u.*, 'accepted', %s FROM unnest("
            "%s::varchar[], %s::varchar[], %s::varchar[], %s::numeric[], "
            "%s::timestamptz[], %s::timestamptz[]) AS u "
            "ON CONFLICT (id) DO NOTHING RETURNING id",
            (received_at, *(list(column) for column in columns)),
        )
        return {row[0] for row in inserted}
    received = sqlite_datetime(received_at)
    formatted: dict[dt.datetime, str] = {}

    def text(value: dt.datetime) -> str:
        found = formatted.get(value)
        if found is None:
            found = formatted[value] = sqlite_datetime(value)
        return found

    connection.exec_driver_sql(
        f"INSERT INTO event ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 'accepted', ?)",
        [
            (event_id, customer, product, format(quantity, "f"), text(at), text(start), received)
            for event_id, customer, product, quantity, at, start in rows
        ],
    )
    return {row[0] for row in rows}
