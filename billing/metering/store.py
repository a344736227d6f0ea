"""Bulk reads and writes of raw events and running totals, at the driver level, per database.

Ingestion moves 10,000 events per request; going through the ORM's per-row type processing
costs more than the database itself. These functions speak each driver's own fastest form
and produce exactly what the `Event` and `Usage` models' column types would store:

    SQLite      executemany with pre-formatted values. The transaction began with BEGIN
                IMMEDIATE (db.py), so no other writer runs between our statements; a batch
                is inserted in one try inside a savepoint, and only when an id is already
                stored (a retry) are the stored ids read and the rest inserted.
    PostgreSQL  one statement per step with array parameters (unnest / = ANY), so psycopg
                does not re-parse thousands of placeholders; ON CONFLICT DO NOTHING ...
                RETURNING tells which ids a concurrent request stored first.

Round trips are what single-event requests pay for, so a batch costs the same few
statements whatever its size: read customers, lock the running totals (one upsert that
creates missing rows and returns the others, locked), insert events, write the totals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

Stored = tuple[str, str, Decimal, dt.datetime]  # customer, product, quantity, timestamp
Row = tuple[str, str, str, Decimal, dt.datetime, dt.datetime]  # id .. period_start
UsageKey = tuple[str, str, dt.datetime]  # customer, product, period start
Totals = tuple[Decimal, int, int, int]  # quantity, events, duplicates, rejected
CHUNK = 5000
USAGE_CHUNK = 500  # rows per multi-row VALUES on SQLite (8 parameters each)
_READ = "id, customer_id, product, quantity, timestamp"
_COLUMNS = "id, customer_id, product, quantity, timestamp, period_start, status, received_at"
_USAGE_RETURNING = "customer_id, product, period_start, quantity, events, duplicates, rejected"


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


class _SqliteTimes(dict[dt.datetime, str]):
    """Datetimes formatted for SQLite, each once (a batch shares few distinct instants)."""

    def __missing__(self, value: dt.datetime) -> str:
        text = self[value] = sqlite_datetime(value)
        return text


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
    """Insert events not stored yet; return the ids this call stored."""
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
    try:
        with connection.begin_nested():
            _sqlite_insert(connection, rows, received_at)
        return {row[0] for row in rows}
    except IntegrityError:
        pass  # some ids are stored already (a retried batch): insert only the others
    stored = read_stored(connection, [row[0] for row in rows])
    new = [row for row in rows if row[0] not in stored]
    _sqlite_insert(connection, new, received_at)
    return {row[0] for row in new}


def _sqlite_insert(connection: Connection, rows: Sequence[Row], received_at: dt.datetime) -> None:
    if not rows:
        return
    received, text = sqlite_datetime(received_at), _SqliteTimes()
    connection.exec_driver_sql(
        f"INSERT INTO event ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 'accepted', ?)",
        [
            (event_id, customer, product, format(quantity, "f"), text[at], text[start], received)
            for event_id, customer, product, quantity, at, start in rows
        ],
    )


def lock_usage(
    connection: Connection, keys: Sequence[UsageKey], now: dt.datetime
) -> dict[UsageKey, Totals]:
    """Create the running totals of `keys` that are missing and lock all of them.

    `keys` must be sorted: every transaction locks in the same order, so concurrent batches
    wait for each other instead of deadlocking. Returns the totals as they stand, locked
    until the transaction ends (PostgreSQL row locks; SQLite's single writer).
    """
    if not keys:
        return {}
    if connection.dialect.name == "postgresql":
        customers, products, starts = (list(column) for column in zip(*keys, strict=True))
        rows = _pg_binary(
            connection,
            "INSERT INTO usage (customer_id, product, period_start, quantity, events, "
            "duplicates, rejected, updated_at) "
            "SELECT k.c, k.p, k.s, 0, 0, 0, 0, %s "
            "FROM unnest(%s::varchar[], %s::varchar[], %s::timestamptz[]) AS k(c, p, s) "
            "ON CONFLICT (customer_id, product, period_start) "
            f"DO UPDATE SET updated_at = EXCLUDED.updated_at RETURNING {_USAGE_RETURNING}",
            (now, customers, products, starts),
        )
        return {(r[0], r[1], r[2].astimezone(dt.UTC)): (r[3], r[4], r[5], r[6]) for r in rows}
    text = _SqliteTimes()
    by_text = {(c, p, text[start]): (c, p, start) for c, p, start in keys}
    updated = sqlite_datetime(now)
    found: dict[UsageKey, Totals] = {}
    for begin in range(0, len(keys), USAGE_CHUNK):
        chunk = keys[begin : begin + USAGE_CHUNK]
        values = ",".join(["(?, ?, ?, '0', 0, 0, 0, ?)"] * len(chunk))
        params = [value for c, p, s in chunk for value in (c, p, text[s], updated)]
        returned = connection.exec_driver_sql(
            "INSERT INTO usage (customer_id, product, period_start, quantity, events, "
            f"duplicates, rejected, updated_at) VALUES {values} "
            "ON CONFLICT (customer_id, product, period_start) "
            f"DO UPDATE SET updated_at = excluded.updated_at RETURNING {_USAGE_RETURNING}",
            tuple(params),
        )
        for r in returned:
            found[by_text[(r[0], r[1], r[2])]] = (Decimal(r[3]), r[4], r[5], r[6])
    return found


def write_usage(connection: Connection, totals: dict[UsageKey, Totals], now: dt.datetime) -> None:
    """Store new running totals for rows this transaction locked with `lock_usage`."""
    if not totals:
        return
    keys = sorted(totals)
    if connection.dialect.name == "postgresql":
        customers, products, starts = (list(column) for column in zip(*keys, strict=True))
        quantity, events, duplicates, rejected = (
            list(column) for column in zip(*(totals[key] for key in keys), strict=True)
        )
        _pg_binary(
            connection,
            "UPDATE usage AS u SET quantity = v.q, events = v.e, duplicates = v.d, "
            "rejected = v.r, updated_at = %s FROM unnest(%s::varchar[], %s::varchar[], "
            "%s::timestamptz[], %s::numeric[], %s::int8[], %s::int8[], %s::int8[]) "
            "AS v(c, p, s, q, e, d, r) "
            "WHERE u.customer_id = v.c AND u.product = v.p AND u.period_start = v.s",
            (now, customers, products, starts, quantity, events, duplicates, rejected),
        )
        return
    text, updated = _SqliteTimes(), sqlite_datetime(now)
    connection.exec_driver_sql(
        "UPDATE usage SET quantity = ?, events = ?, duplicates = ?, rejected = ?, "
        "updated_at = ? WHERE customer_id = ? AND product = ? AND period_start = ?",
        [
            (format(q, "f"), e, d, r, updated, c, p, text[s])
            for (c, p, s), (q, e, d, r) in ((key, totals[key]) for key in keys)
        ],
    )
