"""Commitments, the credit ledger, and invoices with gapless numbers per series.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from billing.db import ExactDecimal, UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invoice_series",
        sa.Column("series", sa.String(16), primary_key=True),
        sa.Column("next_number", sa.Integer(), nullable=False),
    )
    op.create_table(
        "invoice",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("series", sa.String(16), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=True),
        sa.Column("period_end", UTCDateTime(), nullable=True),
        sa.Column("subtotal", ExactDecimal(), nullable=False),
        sa.Column("discount_total", ExactDecimal(), nullable=False),
        sa.Column("total", ExactDecimal(), nullable=False),
        sa.Column("credits_applied", ExactDecimal(), nullable=False),
        sa.Column("amount_due", ExactDecimal(), nullable=False),
        sa.Column("reference", sa.String(64), nullable=True),
        sa.Column("replaces", sa.String(32), nullable=True),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("voided_at", UTCDateTime(), nullable=True),
        sa.Column("void_reason", sa.String(500), nullable=True),
        sa.Column("voided_by", sa.String(64), nullable=True),
        sa.UniqueConstraint("series", "number", name="uq_invoice_number"),
    )
    op.create_index("ix_invoice_customer_id", "invoice", ["customer_id"])
    op.create_table(
        "invoice_line",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("invoice_id", sa.String(32), sa.ForeignKey("invoice.id"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("product", sa.String(64), nullable=True),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("unit_amount", ExactDecimal(), nullable=False),
        sa.Column("amount", ExactDecimal(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_invoice_line_invoice_id", "invoice_line", ["invoice_id"])
    op.create_table(
        "commitment",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("years", sa.Integer(), nullable=False),
        sa.Column("credit", ExactDecimal(), nullable=False),
        sa.Column("discount_percent", ExactDecimal(), nullable=False),
        sa.Column("bracket_min_credit", ExactDecimal(), nullable=False),
        sa.Column("price_per_year", ExactDecimal(), nullable=False),
        sa.Column("release", sa.String(16), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("invoiced_years", sa.Integer(), nullable=False),
        sa.Column("released_through", UTCDateTime(), nullable=True),
        sa.Column("rollover_amount", ExactDecimal(), nullable=True),
        sa.Column("rollover_until", UTCDateTime(), nullable=True),
        sa.Column("rolled_into", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_commitment_customer_id", "commitment", ["customer_id"])
    op.create_index(
        "uq_commitment_active",
        "commitment",
        ["customer_id"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "credit_entry",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("commitment_id", sa.String(32), sa.ForeignKey("commitment.id"), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", ExactDecimal(), nullable=False),
        sa.Column("balance_after", ExactDecimal(), nullable=False),
        sa.Column("reference", sa.String(64), nullable=True),
        sa.Column("period_start", UTCDateTime(), nullable=True),
        sa.Column("note", sa.String(300), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_credit_entry_customer_id", "credit_entry", ["customer_id"])
    for statement in IMMUTABLE[op.get_bind().dialect.name]:
        op.execute(statement)


# Finalized invoices are immutable in the database too: lines never change, invoices are
# never deleted, and an invoice changes only from finalized to void (with its reason).
_FROZEN = (
    "kind",
    "customer_id",
    "series",
    "number",
    "currency",
    "period_start",
    "period_end",
    "subtotal",
    "discount_total",
    "total",
    "credits_applied",
    "amount_due",
    "issued_at",
)
IMMUTABLE = {
    "postgresql": [
        """
        CREATE FUNCTION invoice_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_TABLE_NAME = 'invoice_line' OR TG_OP = 'DELETE' THEN
                RAISE EXCEPTION 'invoices are immutable: % on % refused', TG_OP, TG_TABLE_NAME;
            END IF;
            IF OLD.status <> 'finalized' OR NEW.status <> 'void' OR ("""
        + " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in _FROZEN)
        + """) THEN
                RAISE EXCEPTION 'invoice % is immutable: only finalized -> void', OLD.id;
            END IF;
            RETURN NEW;
        END $$
        """,
        "CREATE TRIGGER invoice_immutable BEFORE UPDATE OR DELETE ON invoice "
        "FOR EACH ROW EXECUTE FUNCTION invoice_immutable()",
        "CREATE TRIGGER invoice_line_immutable BEFORE UPDATE OR DELETE ON invoice_line "
        "FOR EACH ROW EXECUTE FUNCTION invoice_immutable()",
    ],
    "sqlite": [
        "CREATE TRIGGER invoice_no_delete BEFORE DELETE ON invoice "
        "BEGIN SELECT RAISE(ABORT, 'invoices are immutable: DELETE refused'); END",
        "CREATE TRIGGER invoice_line_no_change BEFORE UPDATE ON invoice_line "
        "BEGIN SELECT RAISE(ABORT, 'invoices are immutable: UPDATE refused'); END",
        "CREATE TRIGGER invoice_line_no_delete BEFORE DELETE ON invoice_line "
        "BEGIN SELECT RAISE(ABORT, 'invoices are immutable: DELETE refused'); END",
        "CREATE TRIGGER invoice_only_voids BEFORE UPDATE ON invoice WHEN "
        "OLD.status <> 'finalized' OR NEW.status <> 'void' OR "
        + " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _FROZEN)
        + " BEGIN SELECT RAISE(ABORT, 'invoices are immutable: only finalized -> void'); END",
    ],
}


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER invoice_line_immutable ON invoice_line")
        op.execute("DROP TRIGGER invoice_immutable ON invoice")
        op.execute("DROP FUNCTION invoice_immutable()")
    op.drop_table("credit_entry")
    op.drop_table("commitment")
    op.drop_table("invoice_line")
    op.drop_table("invoice")
    op.drop_table("invoice_series")
