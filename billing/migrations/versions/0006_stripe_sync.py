"""Stripe sync state: customers' Stripe ids, each invoice's sync status, webhook events seen.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from billing.db import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stripe_customer",
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("stripe_id", sa.String(255), nullable=False),
    )
    op.create_table(
        "invoice_sync",
        sa.Column("invoice_id", sa.String(32), sa.ForeignKey("invoice.id"), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stripe_invoice_id", sa.String(255), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_invoice_sync_status", "invoice_sync", ["status"])
    op.create_index("ix_invoice_sync_stripe_invoice_id", "invoice_sync", ["stripe_invoice_id"])
    op.create_table(
        "stripe_event",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stripe_event")
    op.drop_table("invoice_sync")
    op.drop_table("stripe_customer")
