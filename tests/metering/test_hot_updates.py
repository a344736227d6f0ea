"""The tables of running totals leave room in each page on PostgreSQL (fillfactor, migration
0022), so a batch's new versions of the rows it touches can stay on their pages and skip the
indexes (HOT updates). How often they do depends on when PostgreSQL can prune old versions
(concurrent transactions keep them): measured in docs/benchmarks.md, not asserted here."""

from __future__ import annotations

import pytest
from sqlalchemy import text

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]


def test_the_tables_of_running_totals_leave_room_in_their_pages(engine):
    with engine.connect() as connection:
        options = dict(
            connection.execute(
                text(
                    "SELECT c.relname, c.reloptions FROM pg_class AS c "
                    "WHERE c.oid IN ('usage'::regclass, 'usage_breakdown'::regclass)"
                )
            ).all()
        )
    assert options == {"usage": ["fillfactor=50"], "usage_breakdown": ["fillfactor=70"]}
