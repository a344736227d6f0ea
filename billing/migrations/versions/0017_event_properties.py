"""Event properties, per-product over-limit refusals and usage breakdowns by dimension
(docs/metering.md, "Properties"; docs/tier-files.md, "Sources" and "Dimensions").

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from billing.db import ExactDecimal, UTCDateTime

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("event") as batch:
        batch.add_column(sa.Column("properties", sa.Text(), nullable=True))
        batch.add_column(sa.Column("over_limit_products", sa.String(1400), nullable=True))
    # every event stored so far metered exactly one product: the one it names
    op.execute("UPDATE event SET over_limit_products = product WHERE status = 'over_limit'")
    op.create_table(
        "usage_breakdown",
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("product", sa.String(64), primary_key=True),
        sa.Column("period_start", UTCDateTime(), primary_key=True),
        sa.Column("dimensions", sa.String(1000), primary_key=True),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
    )

    op.create_table(
        "usage_unique",
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("product", sa.String(64), primary_key=True),
        sa.Column("period_start", UTCDateTime(), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
    )
    op.create_table(
        "usage_latest",
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("product", sa.String(64), primary_key=True),
        sa.Column("period_start", UTCDateTime(), primary_key=True),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("usage_latest")
    op.drop_table("usage_unique")
    op.drop_table("usage_breakdown")
    with op.batch_alter_table("event") as batch:
        batch.drop_column("over_limit_products")
        batch.drop_column("properties")
