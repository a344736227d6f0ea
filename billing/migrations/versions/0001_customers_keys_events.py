"""Customers, API keys, events and running usage.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from billing.db import ExactDecimal, UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("billing_anchor_day", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("closed_through", UTCDateTime(), nullable=True),
        sa.CheckConstraint("billing_anchor_day BETWEEN 1 AND 28", name="ck_customer_anchor_day"),
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "role IN ('admin', 'finance', 'ingest', 'customer')", name="ck_api_key_role"
        ),
    )
    op.create_index("ix_api_key_prefix", "api_key", ["prefix"])
    op.create_table(
        "event",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("product", sa.String(64), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_event_usage", "event", ["customer_id", "product", "period_start"])
    op.create_table(
        "usage",
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("product", sa.String(64), primary_key=True),
        sa.Column("period_start", UTCDateTime(), primary_key=True),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("usage")
    op.drop_index("ix_event_usage", table_name="event")
    op.drop_table("event")
    op.drop_index("ix_api_key_prefix", table_name="api_key")
    op.drop_table("api_key")
    op.drop_table("customer")
