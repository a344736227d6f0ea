"""Credit notes pushed to Stripe: each note's sync state (docs/stripe.md, "Credit notes").

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from billing.db import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_note_sync",
        sa.Column(
            "credit_note_id", sa.String(32), sa.ForeignKey("credit_note.id"), primary_key=True
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stripe_credit_note_id", sa.String(255), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_credit_note_sync_status", "credit_note_sync", ["status"])


def downgrade() -> None:
    op.drop_index("ix_credit_note_sync_status", table_name="credit_note_sync")
    op.drop_table("credit_note_sync")
