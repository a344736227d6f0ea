"""A database error is logged by its class, its SQLSTATE and names, and its statement's
shape, never with a value the request sent: every engine hides its bound parameters, and
both log formatters drop what the database itself quotes (issue 17, 2)."""

from __future__ import annotations

import ast
import io
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from billing.app import create_app
from billing.customers import service as customers_service
from billing.customers.models import Customer
from billing.db import make_engine, table_of
from billing.observability.logs import JsonFormatter, TextFormatter, database_error_text
from billing.settings import Settings
from tests.conftest import REPO, TIERS, bearer

SECRET_ID = "cust_LEAK_7f3a9c"
SECRET_NAME = "Very Private Name 51d2e8"
# Values a test sends to the database; the tracebacks quote this file's lines, so a value
# is only ever named here, and the tests look for its tail.
NOT_A_NUMBER = "LEAK_5e7b"
DUPLICATE = "LEAK_9c1d"


@pytest.fixture
def logged() -> Iterator[dict[str, io.StringIO]]:
    """What the JSON and the text formatter write of every record logged meanwhile."""
    root = logging.getLogger()
    streams = {"json": io.StringIO(), "text": io.StringIO()}
    handlers = []
    for name, formatter in (("json", JsonFormatter()), ("text", TextFormatter())):
        handler = logging.StreamHandler(streams[name])
        handler.setFormatter(formatter)
        handlers.append(handler)
        root.addHandler(handler)
    try:
        yield streams
    finally:
        for handler in handlers:
            root.removeHandler(handler)


def test_every_engine_is_made_by_make_engine_with_its_parameters_hidden(postgres_url):
    made_elsewhere = []
    for path in sorted((REPO / "billing").rglob("*.py")):
        if path == REPO / "billing" / "db.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Name | ast.Attribute):
                name = node.id if isinstance(node, ast.Name) else node.attr
                if name in ("create_engine", "engine_from_config", "create_async_engine"):
                    made_elsewhere.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert made_elsewhere == []
    for url in ("sqlite://", postgres_url):
        engine = make_engine(url)
        assert engine.hide_parameters is True
        engine.dispose()


def _insert_twice(real):
    """create_customer, then the same row again: a unique violation the route does not
    expect, carrying the request's id and name as bound values."""

    def create_customer(*, connection, data, currency, now=None):
        created = real(connection=connection, data=data, currency=currency, now=now)
        table = table_of(Customer)
        row = connection.execute(select(table).where(table.c.id == data.id)).one()
        connection.execute(insert(table).values(**row._mapping))
        return created

    return create_customer


def test_a_database_error_on_a_request_logs_no_value_the_request_sent(
    engine, catalog, database_url, keys, monkeypatch, logged
):
    monkeypatch.setattr(
        customers_service, "create_customer", _insert_twice(customers_service.create_customer)
    )
    settings = Settings(tiers_dir=TIERS, database_url=database_url, scheduler=False)
    app = create_app(settings, catalog, engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post(
            "/v1/customers",
            json={"id": SECRET_ID, "name": SECRET_NAME},
            headers=bearer(keys["admin"]),
        )
    assert answer.status_code == 500
    assert answer.json()["code"] == "internal_error"
    for name, stream in logged.items():
        written = stream.getvalue()
        assert "IntegrityError" in written, name  # the class of the error
        assert "INSERT INTO customer" in written, name  # the shape of the statement
        assert "LEAK_7f3a9c" not in written, name
        assert "51d2e8" not in written, name


def test_what_the_database_quotes_of_a_value_is_not_logged(postgres_url, logged):
    """PostgreSQL repeats a value in its message ("invalid input syntax ...: \"...\"") and in
    its DETAIL ("Key (id)=(...) already exists"); neither reaches a log line."""
    engine = make_engine(postgres_url)
    insert_id = text("INSERT INTO t (id) VALUES (:id)")
    try:
        with engine.connect() as connection:
            with pytest.raises(DBAPIError) as cast:
                connection.execute(text("SELECT CAST(:v AS integer)"), {"v": NOT_A_NUMBER})
            connection.rollback()
            connection.execute(text("CREATE TEMPORARY TABLE t (id text PRIMARY KEY)"))
            connection.execute(insert_id, {"id": DUPLICATE})
            with pytest.raises(IntegrityError) as unique:
                connection.execute(insert_id, {"id": DUPLICATE})
    finally:
        engine.dispose()
    assert "5e7b" in str(cast.value.orig)  # what the driver says, as it says it
    assert "9c1d" in str(unique.value.orig)
    log = logging.getLogger("billing.test")
    for error in (cast.value, unique.value):
        try:
            raise RuntimeError("a job failed") from error
        except RuntimeError:
            log.exception("job failed")
        log.error("job failed: %s", error)
    for name, stream in logged.items():
        written = stream.getvalue()
        assert "5e7b" not in written, name
        assert "9c1d" not in written, name
        assert "SQLSTATE 22P02" in written, name  # invalid_text_representation
        assert "SQLSTATE 23505" in written, name  # unique_violation
        assert "constraint t_pkey" in written, name
        assert "[SQL: INSERT INTO t (id) VALUES (%(id)s)]" in written, name


def test_the_text_formatter_does_not_reuse_a_traceback_another_handler_wrote(logged):
    engine = create_engine("sqlite://")  # parameters shown, as any engine but ours
    insert_id = text("INSERT INTO t (id) VALUES (:id)")
    with engine.connect() as connection:
        connection.execute(text("CREATE TABLE t (id TEXT PRIMARY KEY)"))
        connection.execute(insert_id, {"id": DUPLICATE})
        with pytest.raises(IntegrityError) as raised:
            connection.execute(insert_id, {"id": DUPLICATE})
    engine.dispose()
    assert "9c1d" in str(raised.value)  # SQLAlchemy's own text has the parameters
    record = logging.makeLogRecord(
        {"msg": "failed", "exc_info": (IntegrityError, raised.value, None), "levelno": 40}
    )
    assert "9c1d" in logging.Formatter().format(record)  # now cached on the record
    for formatter in (TextFormatter(), JsonFormatter()):
        written = formatter.format(record)
        assert "9c1d" not in written
        assert "UNIQUE constraint failed: t.id" in written
    assert database_error_text(ValueError("LEAK")) is None  # other errors are left as they are
