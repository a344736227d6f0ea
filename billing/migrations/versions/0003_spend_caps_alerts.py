"""Spend caps, their audit trail, quota state on usage rows, alerts and the webhook outbox.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from billing.db import ExactDecimal, UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USAGE_COLUMNS = (
    ("period_end", UTCDateTime(), None),
    ("cap_amount", ExactDecimal(), None),
    ("cap_discount", ExactDecimal(), None),
    ("limit_quantity", ExactDecimal(), None),
    ("limited", sa.Boolean(), sa.false()),
    ("over_limit_events", sa.Integer(), sa.text("0")),
    ("over_limit_quantity", ExactDecimal(), sa.text("'0'")),
    ("alerts_fired", sa.String(200), sa.text("''")),
)
CUSTOMER_COLUMNS = (
    ("discount_percent", ExactDecimal(), None),
    ("discount_reason", sa.String(200), None),
    ("discount_until", sa.Date(), None),
    ("alert_thresholds", sa.String(100), sa.text("'50,80,100'")),
    ("alert_free_allowance", sa.Boolean(), sa.true()),
    ("alert_webhook_url", sa.String(2000), None),
    ("webhook_secret", sa.String(64), None),
)


def upgrade() -> None:
    for table, columns in (("usage", USAGE_COLUMNS), ("customer", CUSTOMER_COLUMNS)):
        for name, type_, default in columns:
            op.add_column(
                table,
                sa.Column(name, type_, nullable=default is None, server_default=default),
            )
    op.create_index(
        "ix_usage_limited",
        "usage",
        ["period_end"],
        sqlite_where=sa.text("limited"),
        postgresql_where=sa.text("limited"),
    )
    op.create_table(
        "spend_cap",
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), primary_key=True),
        sa.Column("product", sa.String(64), primary_key=True),
        sa.Column("amount", ExactDecimal(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "spend_cap_change",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("product", sa.String(64), nullable=False),
        sa.Column("old_amount", ExactDecimal(), nullable=True),
        sa.Column("new_amount", ExactDecimal(), nullable=True),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("effect", sa.String(500), nullable=False),
    )
    op.create_index("ix_spend_cap_change_customer_id", "spend_cap_change", ["customer_id"])
    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("product", sa.String(64), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.String(500), nullable=False),
        sa.Column("fired_at", UTCDateTime(), nullable=False),
        sa.Column("delivery", sa.String(16), nullable=False),
        sa.UniqueConstraint("customer_id", "product", "period_start", "kind", name="uq_alert_once"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("alert.id"), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("alert")
    op.drop_table("spend_cap_change")
    op.drop_table("spend_cap")
    op.drop_index("ix_usage_limited", table_name="usage")
    for table, columns in (("usage", USAGE_COLUMNS), ("customer", CUSTOMER_COLUMNS)):
        with op.batch_alter_table(table) as batch:
            for name, _, _ in reversed(columns):
                batch.drop_column(name)
