"""SQL only through SQLAlchemy expressions or bound parameters: no SQL text is ever built
from values with f-strings, %-formatting or .format()."""

import re

from tests.conftest import REPO

BUILT_SQL = re.compile(
    r"""(text|exec_driver_sql|execute)\(\s*(f["']|["'][^"']*["']\s*(%|\.format\())"""
)
# The one allowed: BEGIN DEFERRED/IMMEDIATE, from a fixed choice of two words (db.py).
ALLOWED = {("billing/db.py", 'connection.exec_driver_sql(f"BEGIN {mode}")')}


def test_no_sql_is_built_from_strings():
    found = set()
    for path in sorted((REPO / "billing").rglob("*.py")):
        for line in path.read_text().splitlines():
            if BUILT_SQL.search(line):
                found.add((str(path.relative_to(REPO)), line.strip()))
    assert found == ALLOWED


def test_the_allowed_begin_takes_only_its_two_words(tmp_path):
    import pytest
    from sqlalchemy import text

    from billing.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
    with (
        engine.connect() as connection,
        pytest.raises(ValueError, match="DEFERRED or IMMEDIATE"),
    ):
        connection.execution_options(sqlite_begin="; DROP TABLE x").execute(text("SELECT 1"))
    engine.dispose()
