"""Bulk reads and writes of raw events and running totals, at the driver level, per database.

Ingestion moves 10,000 events per request; going through the ORM's per-row type processing
costs more than the database itself. These functions speak each driver's own fastest form
and produce exactly what the `Event` and `Usage` models' column types would store:

    SQLite      executemany with pre-formatted values. The transaction began with BEGIN
                IMMEDIATE (db.py), so no other writer runs between our statements; a batch
                is inserted in one try inside a savepoint, and only when an id is already
                stored (a retry) are the stored ids read and the rest inserted.
    PostgreSQL  one statement per step, its columns of values as JSON arrays (db.py,
                `json_rows`: json.dumps writes a column in C, where psycopg dumps an array
                parameter element by element) or, for a few values, array parameters;
                never thousands of placeholders. ON CONFLICT DO NOTHING ... RETURNING
                tells which ids a concurrent request stored first.

Round trips are what single-event requests pay for, so a batch costs the same few
statements whatever its size: read customers, insert events, lock the running totals
(`lock_usage`), write the totals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.exc import IntegrityError

from billing.caps.quota import QuotaState
from billing.db import json_columns, json_rows, one_of, recalled, remember, table_of
from billing.db import pg_binary as _pg_binary
from billing.metering.models import Usage, UsageBreakdown, UsageLatest, UsageUnique

# customer, product (or event name), quantity, timestamp, properties (canonical JSON or None)
Stored = tuple[str, str, Decimal, dt.datetime, str | None]
Row = tuple[str, str, str, Decimal, dt.datetime, dt.datetime, str | None]  # id .. properties
UsageKey = tuple[str, str, dt.datetime]  # customer, product, period start
EventRef = tuple[str, dt.datetime, str]  # customer, period start, id: an event's key
CHUNK = 5000
USAGE_CHUNK = 500  # rows per multi-row VALUES on SQLite (8 parameters each)
_READ = "e.id, e.customer_id, e.product, e.quantity, e.timestamp, e.properties"
_COLUMNS = (
    "id, customer_id, product, quantity, timestamp, period_start, properties, status, received_at"
)


def sqlite_datetime(value: dt.datetime) -> str:
    """An aware datetime as UTCDateTime stores it on SQLite: UTC, "YYYY-MM-DD HH:MM:SS.ffffff"
    (SQLAlchemy's SQLite DATETIME format; the year has four digits, as strftime's %Y does not
    write years before 1000)."""
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.isoformat(" ", "microseconds")[:26]


class _SqliteTimes(dict[dt.datetime, str]):
    """Datetimes formatted for SQLite, each once (a batch shares few distinct instants)."""

    def __missing__(self, value: dt.datetime) -> str:
        text = self[value] = sqlite_datetime(value)
        return text


def read_stored(connection: Connection, ids: Sequence[str]) -> dict[str, Stored]:
    """The stored content of those of `ids` that exist (found through `event_key`, which
    holds each stored id with the customer and period that key its event)."""
    found: dict[str, Stored] = {}
    if connection.dialect.name == "postgresql":
        stored = _pg_binary(
            connection,
            f"SELECT {_READ} FROM event_key AS k JOIN event AS e "
            "ON e.customer_id = k.customer_id AND e.period_start = k.period_start "
            "AND e.id = k.id WHERE k.id = ANY(%b::varchar[])",
            (list(ids),),
        )
        for row in stored:
            found[row[0]] = (row[1], row[2], row[3], row[4].astimezone(dt.UTC), row[5])
        return found
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = connection.exec_driver_sql(
            f"SELECT {_READ} FROM event_key AS k JOIN event AS e "
            "ON e.customer_id = k.customer_id AND e.period_start = k.period_start "
            f"AND e.id = k.id WHERE k.id IN ({marks})",
            tuple(chunk),
        )
        for row in rows:
            at = dt.datetime.fromisoformat(row[4]).replace(tzinfo=dt.UTC)
            found[row[0]] = (row[1], row[2], Decimal(row[3]), at, row[5])
    return found


_EVENT_FIELDS = (
    ("id", "varchar"),
    ("customer_id", "varchar"),
    ("product", "varchar"),
    ("quantity", "numeric"),
    ("timestamp", "timestamptz"),
    ("period_start", "timestamptz"),
    ("properties", "text"),
)
_EVENT_ROWS = json_rows("u", _EVENT_FIELDS, keyed=False)  # joined to nothing by key


def insert_events(
    connection: Connection, rows: Sequence[Row], received_at: dt.datetime
) -> set[str]:
    """Insert events not stored yet; return the ids this call stored."""
    if not rows:
        return set()
    if connection.dialect.name == "postgresql":
        columns = list(zip(*rows, strict=True))
        # the ids new to event_key are the events to store, in the same statement
        inserted = _pg_binary(
            connection,
            f"WITH u AS MATERIALIZED (SELECT * FROM {_EVENT_ROWS}), "
            "k AS (INSERT INTO event_key (id, customer_id, period_start) "
            "SELECT id, customer_id, period_start FROM u "
            "ON CONFLICT (id) DO NOTHING RETURNING id) "
            f"INSERT INTO event ({_COLUMNS}) SELECT u.*, 'accepted', %s FROM u JOIN k USING (id) "
            "RETURNING id",
            (*json_columns(_EVENT_FIELDS, columns), received_at),
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
        "INSERT INTO event_key (id, customer_id, period_start) VALUES (?, ?, ?)",
        [(event_id, customer, text[start]) for event_id, customer, _, _, _, start, _ in rows],
    )
    connection.exec_driver_sql(
        f"INSERT INTO event ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 'accepted', ?)",
        [
            (
                event_id,
                customer,
                product,
                format(quantity, "f"),
                text[at],
                text[start],
                properties,
                received,
            )
            for event_id, customer, product, quantity, at, start, properties in rows
        ],
    )


# NOTE: not frozen, as a value all the same (never changed once built): a frozen __init__
# costs three to four times more, and a batch builds thousands of these
@dataclass(slots=True, kw_only=True)
class UsageTotals:
    """What metering counts on a running-totals row besides the quantity: events accepted,
    duplicates seen and events rejected (period_closed, conflict) in the period."""

    events: int = 0
    duplicates: int = 0
    rejected: int = 0


# NOTE: not frozen, as a value all the same (never changed once built): a frozen __init__
# costs three to four times more, and a batch builds thousands of these
@dataclass(slots=True, kw_only=True)
class UsageRow:
    """One running-totals row (customer, product, period): metering's counts and the
    product's quota (caps/quota.py), whose `accepted` is the period's accepted quantity."""

    totals: UsageTotals = field(default_factory=UsageTotals)
    quota: QuotaState = field(default_factory=QuotaState)
    period_end: dt.datetime | None = None
    amended: bool = False  # this write moves a closed period (late usage): the next close adjusts


_STATE_VALUES = (
    "quantity, events, duplicates, rejected, cap_amount, cap_discount, limit_quantity, "
    "over_limit_events, over_limit_quantity, alerts_fired"
)
_STATE = "customer_id, product, period_start, " + _STATE_VALUES


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def usage_row(values: Sequence[Any], period_end: dt.datetime | None = None) -> UsageRow:
    """The one place a stored row becomes totals + quota: `values` are the columns of
    `_STATE` after the key, as any driver returns them (text or typed)."""
    quantity, events, duplicates, rejected, cap, discount, limit, over, over_q, fired = values
    return UsageRow(
        totals=UsageTotals(events=events, duplicates=duplicates, rejected=rejected),
        quota=QuotaState(
            accepted=Decimal(quantity),
            cap_amount=_decimal(cap),
            cap_discount=_decimal(discount),
            limit_quantity=_decimal(limit),
            over_limit_events=over,
            over_limit_quantity=Decimal(over_q),
            alerts_fired=frozenset(fired.split(",")) if fired else frozenset(),
        ),
        period_end=period_end,
    )


def row_of(row: Any) -> UsageRow:
    """A running-totals row read through the table's column types (select(usage_table()))."""
    return usage_row(
        (
            row.quantity,
            row.events,
            row.duplicates,
            row.rejected,
            row.cap_amount,
            row.cap_discount,
            row.limit_quantity,
            row.over_limit_events,
            row.over_limit_quantity,
            row.alerts_fired,
        ),
        row.period_end,
    )


def _stored(row: UsageRow) -> tuple[Any, ...]:
    """The row's columns in write order: quantity .. alerts_fired, as `write_usage` sets them."""
    quota, totals = row.quota, row.totals
    return (
        quota.accepted,
        totals.events,
        totals.duplicates,
        totals.rejected,
        row.period_end,
        quota.cap_amount,
        quota.cap_discount,
        quota.limit_quantity,
        quota.limited,
        quota.over_limit_events,
        quota.over_limit_quantity,
        ",".join(sorted(quota.alerts_fired)),
        row.amended,
    )


_KEY_FIELDS = (("c", "varchar"), ("p", "varchar"), ("s", "timestamptz"))  # a UsageKey
_KEYS_IN_ORDER = json_rows("k", _KEY_FIELDS, ordinality="n")
_KEYS = json_rows("k", _KEY_FIELDS)


def lock_usage(
    connection: Connection, keys: Sequence[UsageKey], now: dt.datetime
) -> dict[UsageKey, UsageRow]:
    """Create the running totals of `keys` that are missing and lock all of them.

    `keys` must be sorted: every transaction locks in the same order, so concurrent batches
    wait for each other instead of deadlocking. Returns the rows as they stand, locked
    until the transaction ends (PostgreSQL row locks; SQLite's single writer).

    On PostgreSQL one statement does it, either way in the order of `keys`: when every row
    exists (as seen when the statement starts), `SELECT ... FOR UPDATE`, which writes no
    row version; otherwise, and only then, an upsert of all of them, which creates the
    missing rows and locks the others (waiting for a row another transaction is creating).
    Locking the existing rows first and creating the others in a second statement would
    take locks out of that order, and two transactions could then wait on each other.
    """
    if not keys:
        return {}
    if connection.dialect.name == "postgresql":
        # NOTE: nearly every batch finds its rows (all but a period's first events): the
        # lock then writes nothing. The upsert this replaced wrote a row version of every
        # running total it locked, so each batch cost a row two versions (lock and write).
        columns = json_columns(_KEY_FIELDS, list(zip(*keys, strict=True)))
        rows = _pg_binary(
            connection,
            f"WITH k AS MATERIALIZED (SELECT * FROM {_KEYS_IN_ORDER}) "
            f"SELECT {_STATE_VALUES} FROM usage AS u JOIN k ON u.customer_id = k.c "
            "AND u.product = k.p AND u.period_start = k.s "
            "WHERE (SELECT count(*) FROM usage AS e JOIN k ON e.customer_id = k.c "
            "AND e.product = k.p AND e.period_start = k.s) = %s "
            "ORDER BY k.n FOR UPDATE OF u",
            (*columns, len(keys)),
        )
        if rows:  # all of them, a row per key (the primary key) in the order of `keys`
            return dict(zip(keys, map(usage_row, rows), strict=True))
        # some row is missing: nothing was locked
        rows = _pg_binary(
            connection,
            "INSERT INTO usage (customer_id, product, period_start, quantity, events, "
            "duplicates, rejected, updated_at, limited, over_limit_events, "
            "over_limit_quantity, alerts_fired) "
            "SELECT k.c, k.p, k.s, 0, 0, 0, 0, %s, false, 0, 0, '' "
            f"FROM {_KEYS} "
            "ON CONFLICT (customer_id, product, period_start) "
            f"DO UPDATE SET updated_at = EXCLUDED.updated_at RETURNING {_STATE}",
            (now, *columns),
        )
        return {(r[0], r[1], r[2].astimezone(dt.UTC)): usage_row(r[3:]) for r in rows}
    text = _SqliteTimes()
    by_text = {(c, p, text[start]): (c, p, start) for c, p, start in keys}
    updated = sqlite_datetime(now)
    created: dict[UsageKey, UsageRow] = {}
    for begin in range(0, len(keys), USAGE_CHUNK):
        chunk = keys[begin : begin + USAGE_CHUNK]
        values = ",".join(["(?, ?, ?, '0', 0, 0, 0, ?, 0, 0, '0', '')"] * len(chunk))
        params = [value for c, p, s in chunk for value in (c, p, text[s], updated)]
        returned = connection.exec_driver_sql(
            "INSERT INTO usage (customer_id, product, period_start, quantity, events, "
            "duplicates, rejected, updated_at, limited, over_limit_events, "
            f"over_limit_quantity, alerts_fired) VALUES {values} "
            "ON CONFLICT (customer_id, product, period_start) "
            f"DO UPDATE SET updated_at = excluded.updated_at RETURNING {_STATE}",
            tuple(params),
        )
        for r in returned:
            created[by_text[(r[0], r[1], r[2])]] = usage_row(r[3:])
    return created


_USAGE_FIELDS = (
    ("c", "varchar"),
    ("p", "varchar"),
    ("s", "timestamptz"),
    ("q", "numeric"),
    ("e", "int8"),
    ("d", "int8"),
    ("r", "int8"),
    ("pe", "timestamptz"),
    ("ca", "numeric"),
    ("cd", "numeric"),
    ("lq", "numeric"),
    ("l", "bool"),
    ("oe", "int8"),
    ("oq", "numeric"),
    ("af", "varchar"),
    ("am", "bool"),
)
_USAGE_ROWS = json_rows("v", _USAGE_FIELDS)


def write_usage(
    connection: Connection,
    rows: dict[UsageKey, UsageRow],
    now: dt.datetime,
    breakdowns: BreakdownWrites | None = None,
) -> None:
    """Store the rows this transaction locked with `lock_usage` and moved, and the
    breakdowns `plan_breakdowns` planned for them. On PostgreSQL it is one statement (the
    breakdowns' writes as data-modifying WITH clauses of the running totals' update): a
    round trip fewer for every batch. Each is one statement for many rows (a batch of
    10,000 events may move hundreds of parts), never a statement per row."""
    breakdowns = breakdowns or BreakdownWrites()
    if not rows:
        _write_breakdowns(connection, breakdowns.updates, breakdowns.inserts)
        return
    keys = sorted(rows)
    values = [(*key, *_stored(rows[key])) for key in keys]
    if connection.dialect.name == "postgresql":
        columns = list(zip(*values, strict=True))
        prefix, first = _pg_breakdown_writes(breakdowns)
        _pg_binary(
            connection,
            prefix + "UPDATE usage AS u SET quantity = v.q, events = v.e, duplicates = v.d, "
            "rejected = v.r, period_end = v.pe, cap_amount = v.ca, cap_discount = v.cd, "
            "limit_quantity = v.lq, limited = v.l, over_limit_events = v.oe, "
            "over_limit_quantity = v.oq, alerts_fired = v.af, amended = u.amended OR v.am, "
            f"updated_at = %s FROM {_USAGE_ROWS} "
            "WHERE u.customer_id = v.c AND u.product = v.p AND u.period_start = v.s",
            (*first, now, *json_columns(_USAGE_FIELDS, columns)),
        )
        return
    _write_breakdowns(connection, breakdowns.updates, breakdowns.inserts)
    text, updated = _SqliteTimes(), sqlite_datetime(now)

    def exact(value: Decimal | None) -> str | None:
        return None if value is None else format(value, "f")

    connection.exec_driver_sql(
        "UPDATE usage SET quantity = ?, events = ?, duplicates = ?, rejected = ?, "
        "period_end = ?, cap_amount = ?, cap_discount = ?, limit_quantity = ?, limited = ?, "
        "over_limit_events = ?, over_limit_quantity = ?, alerts_fired = ?, "
        "amended = amended OR ?, updated_at = ? "
        "WHERE customer_id = ? AND product = ? AND period_start = ?",
        [
            (
                format(q, "f"),
                e,
                d,
                r,
                None if end is None else text[end],
                exact(ca),
                exact(cd),
                exact(lq),
                limited,
                oe,
                format(oq, "f"),
                af,
                am,
                updated,
                c,
                p,
                text[s],
            )
            for c, p, s, q, e, d, r, end, ca, cd, lq, limited, oe, oq, af, am in values
        ],
    )


def mark_over_limit(connection: Connection, refused: dict[EventRef, list[str]]) -> None:
    """Record that these just-inserted events were over their period's limit: (customer,
    period start, event id) -> the products whose cap refused it (comma-separated in
    `over_limit_products`). The event's full key finds its row in its month's partition."""
    if not refused:
        return
    refs = list(refused)
    products = [",".join(refused[ref]) for ref in refs]
    if connection.dialect.name == "postgresql":
        _pg_binary(
            connection,
            "UPDATE event SET status = 'over_limit', over_limit_products = u.products "
            "FROM unnest(%b::varchar[], %b::timestamptz[], %b::varchar[], %b::varchar[]) "
            "AS u(customer_id, period_start, id, products) WHERE event.customer_id = "
            "u.customer_id AND event.period_start = u.period_start AND event.id = u.id",
            (*(list(column) for column in zip(*refs, strict=True)), products),
        )
        return
    connection.exec_driver_sql(
        "UPDATE event SET status = 'over_limit', over_limit_products = ? "
        "WHERE customer_id = ? AND period_start = ? AND id = ?",
        [
            (names, customer, sqlite_datetime(start), event_id)
            for (customer, start, event_id), names in zip(refs, products, strict=True)
        ],
    )


def usage_table() -> Table:
    """The running-totals table, for plain reads."""
    return table_of(Usage)


# A product's breakdown additions in one batch: usage key -> breakdown key -> (quantity,
# events), in the order they were accepted.
Breakdowns = dict[UsageKey, dict[str, tuple[Decimal, int]]]


# Where a stored part is, to update it: its rowid on SQLite; its key on PostgreSQL.
_PartRef = int | tuple[str, str, dt.datetime, str]
# A stored part: quantity (text as SQLite returns it, made Decimal only when updated),
# events, where it is.
_Part = tuple[Decimal | str, int, _PartRef]


@dataclass(frozen=True, slots=True)
class BreakdownWrites:
    """What adding a batch to the usage breakdowns writes, for `write_usage`: the new totals
    of stored parts (quantity, events, where) and the new parts (customer, product, period
    start, dimensions JSON, quantity, events)."""

    updates: list[tuple[Decimal, int, _PartRef]] = field(default_factory=list)
    inserts: list[tuple[str, str, dt.datetime, str, Decimal, int]] = field(default_factory=list)


def plan_breakdowns(
    connection: Connection, parts: Breakdowns, limits: dict[str, tuple[int, str]]
) -> BreakdownWrites:
    """What adding accepted quantities to the usage breakdowns writes (the running totals of
    those keys are locked by the caller; `write_usage` writes it with them). `limits`:
    product -> (max distinct values, its "(other)" key). A value not stored yet for its
    customer, product and period is kept while fewer than the maximum are; beyond, it folds
    into "(other)": never an error, never lost. Quantities are added in Python (exact), not
    in SQL (SQLite would add them as floats)."""
    if not parts:
        return BreakdownWrites()
    others = {product: other for product, (_, other) in limits.items()}
    kept_now, stored = _read_breakdowns_of(connection, parts, others)
    inserts: list[tuple[str, str, dt.datetime, str, Decimal, int]] = []
    updates: list[tuple[Decimal, int, _PartRef]] = []
    for key, adds in parts.items():
        customer, product, start = key
        have = stored[key]
        most, other = limits[product]
        kept = kept_now.get(key, 0)
        merged: dict[str, tuple[Decimal, int]] = {}
        for name, (quantity, events) in adds.items():
            target = name
            if name not in have and name not in merged:
                if kept >= most:
                    target = other
                else:
                    kept += 1
            before = merged.get(target, (Decimal(0), 0))
            merged[target] = (before[0] + quantity, before[1] + events)
        for name, (quantity, events) in merged.items():
            if name in have:
                old_quantity, old_events, ref = have[name]
                updates.append((Decimal(old_quantity) + quantity, old_events + events, ref))
            else:
                inserts.append((customer, product, start, name, quantity, events))
    return BreakdownWrites(updates, inserts)


_PART_KEY_FIELDS = (("c", "varchar"), ("p", "varchar"), ("s", "timestamptz"), ("d", "varchar"))
# the same keys, each with its product's "(other)" part
_PART_OTHER_FIELDS = (*_PART_KEY_FIELDS[:3], ("o", "varchar"))
_PART_KEYS_WITH_OTHER = json_rows("k", _PART_OTHER_FIELDS)
_PART_KEYS = json_rows("k", _PART_KEY_FIELDS)


def _read_breakdowns_of(
    connection: Connection, parts: Breakdowns, others: dict[str, str]
) -> tuple[dict[UsageKey, int], dict[UsageKey, dict[str, _Part]]]:
    """What `add_breakdowns` needs of the stored parts, and only that: per key, how many
    values are kept apart from "(other)" (`others`: product -> its "(other)" key), and the
    stored parts of the values `parts` adds to and of "(other)". Reading every part of a
    key would read hundreds of rows per batch for a customer with many values."""
    keys = list(parts)
    wanted = [(*key, name) for key in keys for name in (*parts[key], others[key[1]])]
    stored: dict[UsageKey, dict[str, _Part]] = {key: {} for key in keys}
    kept: dict[UsageKey, int] = {}
    if connection.dialect.name == "postgresql":
        # one round trip: the kept counts (rows whose dimensions are NULL) and the parts
        c, p, s = zip(*keys, strict=True)
        rows = _pg_binary(
            connection,
            "SELECT b.customer_id, b.product, b.period_start, NULL, NULL::numeric, count(*) "
            f"FROM usage_breakdown AS b JOIN {_PART_KEYS_WITH_OTHER} "
            "ON b.customer_id = k.c AND b.product = k.p AND b.period_start = k.s "
            "WHERE b.dimensions <> k.o GROUP BY 1, 2, 3 "
            "UNION ALL "
            "SELECT b.customer_id, b.product, b.period_start, b.dimensions, b.quantity, "
            f"b.events FROM usage_breakdown AS b JOIN {_PART_KEYS} ON b.customer_id = k.c "
            "AND b.product = k.p AND b.period_start = k.s AND b.dimensions = k.d",
            (
                *json_columns(_PART_OTHER_FIELDS, (c, p, s, [others[product] for product in p])),
                *json_columns(_PART_KEY_FIELDS, list(zip(*wanted, strict=True))),
            ),
        )
        for customer, product, start, name, quantity, events in rows:
            key = (customer, product, start.astimezone(dt.UTC))
            if name is None:
                kept[key] = events
            else:
                stored[key][name] = (quantity, events, (*key, name))
        return kept, stored
    # NOTE: `customer_id IN (...)` searches the primary key's index (a row-value IN over all
    # three columns made SQLite scan the table); other products and periods are skipped here
    text = _SqliteTimes()
    by_text = {(c, p, text[start]): (c, p, start) for c, p, start in keys}
    customers = sorted({c for c, _, _ in keys})
    names = sorted({name for *_, name in wanted})
    other_names = sorted(set(others.values()))
    for begin in range(0, len(customers), USAGE_CHUNK):
        chunk = customers[begin : begin + USAGE_CHUNK]
        marks = ",".join("?" * len(chunk))
        counted = connection.exec_driver_sql(
            "SELECT customer_id, product, period_start, count(*) FROM usage_breakdown "
            f"WHERE customer_id IN ({marks}) "
            f"AND dimensions NOT IN ({','.join('?' * len(other_names))}) GROUP BY 1, 2, 3",
            (*chunk, *other_names),
        )
        for customer, product, start, count in counted:
            known = by_text.get((customer, product, start))
            if known is not None:
                kept[known] = count
        for first in range(0, len(names), CHUNK):
            some = names[first : first + CHUNK]
            found = connection.exec_driver_sql(
                "SELECT customer_id, product, period_start, dimensions, quantity, events, rowid "
                f"FROM usage_breakdown WHERE customer_id IN ({marks}) "
                f"AND dimensions IN ({','.join('?' * len(some))})",
                (*chunk, *some),
            )
            for customer, product, start, name, quantity, events, rowid in found:
                known = by_text.get((customer, product, start))
                if known is not None and (name in parts[known] or name == others[product]):
                    stored[known][name] = (quantity, events, rowid)
    return kept, stored


_PART_FIELDS = (
    ("c", "varchar"),
    ("p", "varchar"),
    ("s", "timestamptz"),
    ("d", "varchar"),
    ("q", "numeric"),
    ("n", "int8"),
)
_UPDATE_PARTS = (
    "UPDATE usage_breakdown AS b SET quantity = v.q, events = v.n "
    f"FROM {json_rows('v', _PART_FIELDS)} "
    "WHERE b.customer_id = v.c AND b.product = v.p AND b.period_start = v.s "
    "AND b.dimensions = v.d"
)
_INSERT_PARTS = (
    "INSERT INTO usage_breakdown (customer_id, product, period_start, dimensions, "
    f"quantity, events) SELECT * FROM {json_rows('v', _PART_FIELDS)}"
)


def _pg_update_parameters(updates: list[tuple[Decimal, int, _PartRef]]) -> tuple[Any, ...]:
    keys = [ref for _, _, ref in updates]
    assert all(isinstance(ref, tuple) for ref in keys)
    c, p, s, d = zip(*keys, strict=True)
    return json_columns(
        _PART_FIELDS, (c, p, s, d, [q for q, _, _ in updates], [n for _, n, _ in updates])
    )


def _pg_breakdown_writes(writes: BreakdownWrites) -> tuple[str, tuple[Any, ...]]:
    """The WITH clauses that write `writes` inside another statement, and their parameters
    (which come first in it)."""
    clauses: list[str] = []
    parameters: tuple[Any, ...] = ()
    if writes.updates:
        clauses.append("parts_updated AS (" + _UPDATE_PARTS + ")")
        parameters += _pg_update_parameters(writes.updates)
    if writes.inserts:
        clauses.append("parts_inserted AS (" + _INSERT_PARTS + ")")
        parameters += json_columns(_PART_FIELDS, list(zip(*writes.inserts, strict=True)))
    return ("WITH " + ", ".join(clauses) + " " if clauses else ""), parameters


def _write_breakdowns(
    connection: Connection,
    updates: list[tuple[Decimal, int, _PartRef]],
    inserts: list[tuple[str, str, dt.datetime, str, Decimal, int]],
) -> None:
    """Set the new totals of stored parts (`updates`: quantity, events, where) and store new
    ones (`inserts`: customer, product, period start, dimensions JSON, quantity, events)."""
    if connection.dialect.name == "postgresql":
        if updates:
            _pg_binary(connection, _UPDATE_PARTS, _pg_update_parameters(updates))
        if inserts:
            _pg_binary(
                connection,
                _INSERT_PARTS,
                json_columns(_PART_FIELDS, list(zip(*inserts, strict=True))),
            )
        return
    if updates:
        connection.exec_driver_sql(
            "UPDATE usage_breakdown SET quantity = ?, events = ? WHERE rowid = ?",
            [(format(q, "f"), n, rowid) for q, n, rowid in updates],
        )
    if inserts:
        text = _SqliteTimes()
        connection.exec_driver_sql(
            "INSERT INTO usage_breakdown (customer_id, product, period_start, dimensions, "
            "quantity, events) VALUES (?, ?, ?, ?, ?, ?)",
            [(c, p, text[s], d, format(q, "f"), n) for c, p, s, d, q, n in inserts],
        )


StoredBreakdowns = dict[str, list[tuple[str, Decimal, int]]]
_BREAKDOWNS_AHEAD = "store.read_breakdowns_ahead"


def read_breakdowns(
    connection: Connection, customer_id: str, period_start: dt.datetime
) -> StoredBreakdowns:
    """A customer's breakdowns in a period: product -> [(dimensions JSON, quantity, events)],
    largest quantity first, then by value. Without a statement when `read_breakdowns_ahead`
    read them in this transaction (once: a second read goes to the database)."""
    kept = recalled(connection, _BREAKDOWNS_AHEAD)
    if kept is not None and kept.get(customer_id, (None,))[0] == period_start:
        found: StoredBreakdowns = kept.pop(customer_id)[1]
        return found
    table = table_of(UsageBreakdown)
    query = select(table).where(
        table.c.customer_id == customer_id, table.c.period_start == period_start
    )
    return _sorted_breakdowns(connection.execute(query))


def read_breakdowns_ahead(connection: Connection, starts: Mapping[str, dt.datetime]) -> None:
    """Read ahead, in one statement, the breakdowns `read_breakdowns` answers for many
    customers (customer id -> period start), for the rest of the transaction (the period
    close reads a chunk of customers at once)."""
    if not starts:
        return
    table = table_of(UsageBreakdown)
    query = select(table).where(
        one_of(connection, table.c.customer_id, sorted(starts)),
        table.c.period_start.in_(sorted(set(starts.values()))),
    )
    rows: dict[str, list[Any]] = {customer: [] for customer in starts}
    for row in connection.execute(query):
        if row.period_start == starts[row.customer_id]:
            rows[row.customer_id].append(row)
    remember(
        connection,
        _BREAKDOWNS_AHEAD,
        {c: (starts[c], _sorted_breakdowns(found)) for c, found in rows.items()},
    )


def _sorted_breakdowns(rows: Iterable[Any]) -> StoredBreakdowns:
    found: StoredBreakdowns = {}
    for row in rows:
        found.setdefault(row.product, []).append((row.dimensions, row.quantity, row.events))
    for values in found.values():
        values.sort(key=lambda r: (-r[1], r[0]))
    return found


def known_values(connection: Connection, key: UsageKey, values: Sequence[str]) -> set[str]:
    """Which of `values` a unique_count product has seen already in this period (its
    running total is locked by the caller)."""
    if not values:
        return set()
    table = table_of(UsageUnique)
    customer, product, start = key
    found: set[str] = set()
    unique = sorted(set(values))
    for begin in range(0, len(unique), CHUNK):
        query = select(table.c.value).where(
            table.c.customer_id == customer,
            table.c.product == product,
            table.c.period_start == start,
            one_of(connection, table.c.value, unique[begin : begin + CHUNK]),
        )
        found.update(connection.execute(query).scalars())
    return found


def add_values(connection: Connection, key: UsageKey, values: Sequence[str]) -> None:
    """Record values newly counted by a unique_count product in this period."""
    if not values:
        return
    customer, product, start = key
    connection.execute(
        insert(table_of(UsageUnique)),
        [
            {"customer_id": customer, "product": product, "period_start": start, "value": v}
            for v in values
        ],
    )


def latest_taken(connection: Connection, key: UsageKey) -> dt.datetime | None:
    """When the standing reading of a latest product's period was taken (None: none yet)."""
    table = table_of(UsageLatest)
    customer, product, start = key
    return connection.execute(
        select(table.c.taken_at).where(
            table.c.customer_id == customer,
            table.c.product == product,
            table.c.period_start == start,
        )
    ).scalar_one_or_none()


def set_latest_taken(
    connection: Connection, key: UsageKey, before: dt.datetime | None, at: dt.datetime
) -> None:
    """Record the time of the reading that now stands (`before`: the one read earlier)."""
    table = table_of(UsageLatest)
    customer, product, start = key
    if before is None:
        connection.execute(
            insert(table).values(
                customer_id=customer, product=product, period_start=start, taken_at=at
            )
        )
    elif at != before:
        connection.execute(
            update(table)
            .where(
                table.c.customer_id == customer,
                table.c.product == product,
                table.c.period_start == start,
            )
            .values(taken_at=at)
        )
