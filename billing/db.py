"""Database engine, sessions, exact column types and migrations.

SQLite (the default) runs in WAL mode with foreign keys on; every transaction starts with
BEGIN IMMEDIATE, so writers queue on SQLite's lock instead of failing half-way. PostgreSQL
is reached through psycopg 3 (`postgresql+psycopg://...`). The schema is owned by Alembic
(`billing/migrations`); `create_all` is for tests only.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Engine,
    Numeric,
    String,
    Table,
    TypeDecorator,
    bindparam,
    create_engine,
    event,
    exc,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.types import DateTime
from sqlmodel import Session, SQLModel

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# NOTE: the integer id of a per-customer table keyed (customer_id, id): its own sequence on
# PostgreSQL (SERIAL); on SQLite the column stays the table's rowid, `id INTEGER PRIMARY KEY`,
# as SQLite numbers no column of a composite key (migration 0019 says more).
AUTOINCREMENT: dict[str, Any] = {"autoincrement": True}


class ExactDecimal(TypeDecorator[Decimal]):
    """A Decimal stored exactly: NUMERIC(38, 12) on PostgreSQL, text on SQLite."""

    impl = Numeric(38, 12)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(38, 12, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"ExactDecimal takes Decimal, got {type(value).__name__}")
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(value)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime; stored naive-UTC on SQLite, timestamptz on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: attach a time zone")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        return stored_utc(value)


def stored_utc(value: str | dt.datetime | None) -> dt.datetime | None:
    """A `UTCDateTime` column's value as the driver returns it, read as the type reads it:
    aware, in UTC. SQLite's text without an offset (how the type stores it) is UTC; text
    with one (written by hand) and psycopg's datetimes (in the session's zone) are
    converted. For reads that skip SQLAlchemy's result processing."""
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if parsed.tzinfo is dt.UTC:
        return parsed
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a SQLModel table class, typed (SQLModel declares `__table__` untyped).

    Services read and write through Core statements on a `Connection`; this is the one place
    that crosses from the model classes to their tables.
    """
    table = inspect(model).local_table
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


def one_of(connection: Connection, column: ColumnElement[Any], values: Sequence[Any]) -> Any:
    """`column IN values`, as PostgreSQL plans it best: `IN (SELECT unnest(%s))` of one array
    parameter. The statement has one text whatever the number of values, so the driver's
    prepared statement is reused (psycopg prepares after five uses; with `IN ($1 ... $n)`
    each n is another statement), and its generic plan joins the values by the column's
    index: a generic plan of `column = ANY($1)` compared every row with the whole array
    (2.4 ms against 0.4 ms for 100 customer ids among 1,000: docs/benchmarks.md).
    Elsewhere, `IN` of bound values."""
    if connection.dialect.name == "postgresql":
        array = bindparam(None, list(values), type_=ARRAY(column.type))
        return column.in_(select(func.unnest(array)))
    return column.in_(list(values))


def pg_binary(connection: Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    """Run one statement (psycopg's `%s`/`%b`/`%t` placeholders) on the connection's own
    psycopg connection, in its transaction; the rows as psycopg returns them, read in binary
    (PostgreSQL only).

    Array parameters are marked %b (binary): psycopg then skips its per-element text
    quoting, three to ten times faster for strings and timestamps. Numeric arrays are
    the exception (%t): psycopg dumps Decimals faster as text. Columns of thousands of
    values go faster still as JSON (`json_rows`). Rows skip SQLAlchemy's result
    processing: a timestamptz comes back in the session's time zone, a NUMERIC as the
    Decimal the column holds.
    """
    driver = connection.connection.driver_connection
    assert driver is not None
    with driver.cursor(binary=True) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
# How a column of each type travels as JSON (`json_columns`), and is read back in SQL.
_JSON_READ = {
    "varchar": "{}::varchar",
    "text": "{}",
    "int8": "{}::int8",
    "bool": "{}::bool",
    "numeric": "{}::numeric",
    # NOTE: whole days of 24 hours, then the microseconds left: an interval times a number
    # is computed in floating point, exact only below 2^53 microseconds (285 years)
    "timestamptz": "'epoch'::timestamptz + {0}::int8 / 86400000000 * interval '24 hours' "
    "+ mod({0}::int8, 86400000000) * interval '1 microsecond'",
}


def json_rows(
    alias: str,
    columns: Sequence[tuple[str, str]],
    *,
    ordinality: str | None = None,
    keyed: bool = True,
) -> str:
    """A row source for PostgreSQL's FROM clause, `(SELECT ...) AS alias`, whose columns
    (name, type) are read from as many `%s` parameters, each a JSON array of one column's
    values in row order, as `json_columns` encodes them. Types: varchar, text, int8, bool,
    numeric (exact: the Decimal's text), timestamptz (exact: microseconds since 1970 UTC,
    years 1 to 9999). JSON null is NULL. `ordinality` names one more column: each row's
    position, from 1 (`WITH ORDINALITY`). `keyed`: the rows are joined to a table by its
    key (the note below); False reads them faster where they are not (rows to insert).

    Why not array parameters: psycopg dumps an array element by element in Python, where
    `json.dumps` writes a whole column in C. The arguments of a batch of 10,000 events'
    insert cost half the CPU, those of 3,000 running totals' write a fifth, and PostgreSQL
    reads the JSON as fast (docs/benchmarks.md, "2026-12-02, third session")."""
    # NOTE: each column made an array and unnested: the planner takes a function over a
    # JSON document for 100 rows, and joined to a table by its key it then read the whole
    # table instead of its index (1.4 ms against 0.07 for one event among 3,000 running
    # totals), where it takes an array parameter for 10 (docs/benchmarks.md)
    read = "json_array_elements_text(%s::json)"
    if keyed:
        read = f"unnest(ARRAY(SELECT {read}))"
    unnest = ", ".join(read for _ in columns)
    raw = ", ".join(f"j{index}" for index in range(len(columns)))
    shown = ", ".join(
        _JSON_READ[kind].format(f"j{index}") + f" AS {name}"
        for index, (name, kind) in enumerate(columns)
    )
    if ordinality is None:
        return f"(SELECT {shown} FROM ROWS FROM ({unnest}) AS j({raw})) AS {alias}"
    return (
        f"(SELECT {shown}, j.ordinality AS {ordinality} FROM ROWS FROM ({unnest}) "
        f"WITH ORDINALITY AS j({raw}, ordinality)) AS {alias}"
    )


def json_columns(
    fields: Sequence[tuple[str, str]], columns: Sequence[Sequence[Any]]
) -> tuple[str, ...]:
    """The parameters of `json_rows` over the same `fields` (name, type): each of `columns`
    as a JSON array. Decimal values (numeric) go as their text, aware datetimes
    (timestamptz) as whole microseconds since 1970-01-01 UTC; None is null. TypeError for a
    naive datetime; ValueError when `columns` and `fields` differ in number."""
    encode = _JSON.encode
    out = []
    for (_, kind), column in zip(fields, columns, strict=True):
        if kind == "numeric":
            column = [None if value is None else str(value) for value in column]
        elif kind == "timestamptz":
            column = [
                None if value is None else (value - _EPOCH) // _MICROSECOND for value in column
            ]
        elif not isinstance(column, list):
            column = list(column)
        out.append(encode(column))
    return tuple(out)


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def insert_many(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (dicts of the same keys) into `table` in one statement. On PostgreSQL
    each column goes as one array parameter (`INSERT ... SELECT * FROM unnest(...)`), in
    binary where psycopg dumps it faster: the statement's text is the same for any number of
    rows, where a multi-row VALUES of thousands of placeholders cost psycopg more to convert
    (and its strings more to quote) than the database took to run it. Elsewhere
    SQLAlchemy's "insertmanyvalues" (multi-row VALUES of up to the engine's
    `insertmanyvalues_page_size`, 1,000, rows each). Each value goes through its column
    type's bind processing, and a column left out gets its default, as in any insert
    (ValueError for a left-out column whose default is computed in Python). Nothing for no
    rows."""
    if not rows:
        return
    names = tuple(rows[0])
    if connection.dialect.name != "postgresql":
        first = next(iter(table.primary_key.columns))
        # NOTE: with RETURNING, SQLAlchemy batches an executemany into multi-row VALUES
        connection.execute(insert(table).returning(first), list(rows))
        return
    # NOTE: a column left out gets its Python-side default, as SQLAlchemy's insert gives it
    defaults = {
        column.name: column.default
        for column in table.columns
        if column.name not in names and column.default is not None
    }
    for name, default in defaults.items():
        if not default.is_scalar:
            raise ValueError(f"insert_many: give {table.name}.{name} (its default is computed)")
    names = (*names, *defaults)
    dialect = connection.dialect
    arrays: list[list[Any]] = []
    textual: list[bool] = []
    for name in names:
        # NOTE: the type as adapted to the dialect, as SQLAlchemy binds it (the bare
        # TypeDecorator's processor would turn an exact Decimal into a float)
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if name in defaults:
            values = [defaults[name].arg] * len(rows)  # type: ignore[attr-defined]
        else:
            values = [row[name] for row in rows]
        arrays.append(values if process is None else [process(value) for value in values])
        # psycopg dumps Decimals faster as text, and a list of only NULLs has no binary type
        textual.append(
            isinstance(table.c[name].type, (Numeric, ExactDecimal))
            or all(value is None for value in values)
        )
    driver = connection.connection.driver_connection
    statement = _unnest_insert(table, names, tuple(textual), dialect).as_string(driver)
    connection.exec_driver_sql(statement, tuple(arrays))


# NOTE: an array is cast to its column's type without length or precision ("VARCHAR(500)"
# -> "VARCHAR"): an explicit cast would silently cut a string too long for its column, where
# the insert's own assignment refuses it, as any insert does
_LENGTH = re.compile(r"\(\d+(, *\d+)?\)")


@lru_cache(maxsize=256)
def _unnest_insert(
    table: Table, names: tuple[str, ...], textual: tuple[bool, ...], dialect: Dialect
) -> Any:
    """INSERT INTO table (names) SELECT * FROM unnest(%b::type[], ...), composed by
    psycopg.sql from the table's own metadata (identifiers quoted), each placeholder cast
    to an array of its column's type; %t where `textual`."""
    from psycopg import sql

    arrays = [
        sql.SQL("{}::{}[]").format(
            sql.Placeholder(format="t" if text else "b"),
            sql.SQL(_LENGTH.sub("", table.c[name].type.compile(dialect=dialect))),
        )
        for name, text in zip(names, textual, strict=True)
    ]
    return sql.SQL("INSERT INTO {} ({}) SELECT * FROM unnest({})").format(
        sql.Identifier(table.name),
        sql.SQL(", ").join(sql.Identifier(name) for name in names),
        sql.SQL(", ").join(arrays),
    )


def remember(connection: Connection, key: str, value: Any) -> None:
    """Keep `value` under `key` for the rest of the connection's current transaction (a read
    made once per transaction, say once per chunk of a close): `recalled` gives it back in
    this transaction only, never in a later one on the same pooled connection."""
    connection.info[key] = (connection.get_transaction(), value)


def recalled(connection: Connection, key: str) -> Any | None:
    """What `remember` kept under `key` in this transaction, or None."""
    kept = connection.info.get(key)
    if kept is None or kept[0] is not connection.get_transaction():
        return None
    return kept[1]


def in_memory(url: str | URL) -> bool:
    """Whether `url` names an in-memory SQLite database (`sqlite://`, `sqlite:///:memory:`,
    or `mode=memory`). Such a database lives in one connection and is gone when it closes:
    each thread of a served process would see its own, empty one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    return database in ("", ":memory:") or parsed.query.get("mode") == "memory"


def make_engine(url: str) -> Engine:
    """An engine for `url`, with the SQLite pragmas and transaction mode set. Every engine
    of the service, the CLI and the migrations is made here.

    `hide_parameters`: a database error's text never carries the values bound to its
    statement (SQLAlchemy adds `[parameters: ...]` otherwise), so a log of it cannot leak
    what a request sent; the log formatters drop the rest (billing/observability/logs.py).
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20, hide_parameters=True)
    _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE_SECONDS = 1.0  # float-ok: seconds


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled PostgreSQL connection on checkout when it has been idle for
    PING_AFTER_IDLE_SECONDS or more; a dead one is replaced before it is used (SQLAlchemy's
    "pessimistic disconnect handling" with a custom checkout event). Pinging on every
    checkout (`pool_pre_ping`) is one more round trip for each request, a tenth of a
    single-event request; a connection used within the last second has just been seen to
    work, and when the database goes away under it, the error invalidates the whole pool.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # the pool discards this connection and checks out another (up to three tries)
            raise exc.DisconnectionError(str(error)) from error


# The log size (pages) past which a connection that commits checkpoints SQLite's write-ahead
# log itself, inside its commit (SQLite's default is 1,000). `billing serve` checkpoints from
# a thread of its own (billing/sqlite_wal.py); this is the bound when commits never pause
# long enough for it, or it does not run (the CLI, the migrations).
WAL_AUTOCHECKPOINT_PAGES = 10_000
# The size (bytes) the log file is truncated back to once it restarts: above the bound's
# 10,000 pages of 4 KiB and their frame headers (41 MB), so a log is not cut every time.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024
_AUTOCHECKPOINT = f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES:d}"
_JOURNAL_LIMIT = f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT:d}"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # NOTE: let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute(_AUTOCHECKPOINT)
        cursor.execute(_JOURNAL_LIMIT)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # NOTE: IMMEDIATE takes the write lock at once, so a writer never fails halfway
        # on an upgrade; read-only work asks for DEFERRED (see read_only()).
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        if mode not in ("DEFERRED", "IMMEDIATE"):
            raise ValueError(f"sqlite_begin is DEFERRED or IMMEDIATE, not {mode!r}")
        connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session committed on success and rolled back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def read_only(engine: Engine) -> Iterator[Connection]:
    """A connection for reads, rolled back at the end: on SQLite it does not take the write
    lock."""
    with engine.connect() as connection:
        yield connection.execution_options(sqlite_begin="DEFERRED")


def alembic_config(url: str) -> Config:
    """The Alembic configuration for our migrations against `url`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (default: the latest)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest migration this build ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        revision: str | None = MigrationContext.configure(connection).get_current_revision()
        return revision
