"""Running totals and their breakdowns leave room in each page for their next versions
(PostgreSQL storage parameter `fillfactor`: 50 for `usage`, 70 for `usage_breakdown`).

Every batch of events rewrites the running totals it touches (`usage`), and the parts of
their breakdowns (`usage_breakdown`). PostgreSQL writes an updated row as a new version; it
can put it on the same page, without touching the table's indexes, only when the page has
room (a HOT update: heap-only tuple). At the default fillfactor (100) pages are filled, so
nearly every update of a running total went to another page and added an entry to its
primary key: in a served run of 28 batches of 10,000 events over 1,000 customers (two
connections, so one batch's old versions were still visible to the other's snapshot),
6 % of 87,000 updates were HOT, and the 3,000 rows took 12 MB, left for autovacuum to
reclaim. With pages half full, 93 % were HOT and the table took 2 MB; the breakdowns went
from 78 % to 98 % (docs/benchmarks.md, "Running totals updated in place"). Batches of 100
touch a few rows per page, which pruning keeps room for: about 92 % were HOT either way.
Both tables hold a row per customer, product and period (and value, for breakdowns), so
the room costs little.

The parameter applies to pages written from now on; existing full pages gain room as
autovacuum reclaims them. To repack at once, `VACUUM FULL usage, usage_breakdown` (which
locks both tables while it runs) off-peak. SQLite has no such parameter: nothing changes
there.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # kept in step with the models' postgresql_with (billing/metering/models.py)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE usage SET (fillfactor = 50)")
        op.execute("ALTER TABLE usage_breakdown SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE usage RESET (fillfactor)")
        op.execute("ALTER TABLE usage_breakdown RESET (fillfactor)")
