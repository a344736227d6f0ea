"""The bulk statements of ingestion (store.py) write a datetime on SQLite exactly as the
models' column type does, so both find the same rows: UTC, four-digit years, microseconds."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import DATETIME

from billing.metering.store import sqlite_datetime

STORED = DATETIME().bind_processor(sqlite.dialect())


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        dt.datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 1, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    ],
)
def test_as_the_column_type_stores_it(value):
    assert sqlite_datetime(value) == STORED(value.astimezone(dt.UTC).replace(tzinfo=None))
