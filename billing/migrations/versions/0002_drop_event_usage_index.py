"""Drop the secondary index on raw events.

Every ingested event paid for it (about a third of the insert cost on SQLite) and nothing
reads raw events by customer, product and period: usage is answered from the running
totals. Raw events stay keyed by id for deduplication; an audit that scans them by
customer can create its own index (docs/operations.md).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_event_usage", table_name="event")


def downgrade() -> None:
    op.create_index("ix_event_usage", "event", ["customer_id", "product", "period_start"])
