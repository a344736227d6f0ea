"""Payment states of invoices, credit notes, and immutability that covers every write.

- `invoice` gains `line_count` (how many lines it was issued with: no line can be added
  later), `discount_percent` (the percentage discount it was priced with), `paid_at`, and
  `status_changed_at` (the time of the payment event that set its status, so older events
  never move it); its status now runs finalized -> payment_failed -> paid | uncollectible |
  void, terminal states never moving again.
- `credit_note` and `credit_note_line`: immutable once written, numbered in series `CN`.
- `credit_entry` gains `credit_note_balance_after`: the part of the balance that came from
  credit notes (drawn after commitment credit, never expired with a term).
- `stripe_event` records, for every event received, which invoice it was about, its Stripe
  `created` time, and whether it was applied or ignored, and why.

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from billing.db import ExactDecimal, UTCDateTime

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What an issued invoice may never change (0004's list, plus how many lines it has).
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
    "line_count",
    "reference",
    "replaces",
    "discount_percent",
)
# Status moves an invoice may make (docs/invoicing.md, "Payment states").
_MOVES = (
    ("finalized", "payment_failed"),
    ("finalized", "paid"),
    ("finalized", "uncollectible"),
    ("finalized", "void"),
    ("payment_failed", "payment_failed"),
    ("payment_failed", "paid"),
    ("payment_failed", "uncollectible"),
    ("payment_failed", "void"),
)
_NOTE_FROZEN = (
    "series",
    "number",
    "invoice_id",
    "customer_id",
    "currency",
    "reason",
    "outcome",
    "total",
    "line_count",
    "issued_at",
    "issued_by",
)


def _allowed(old: str, new: str) -> str:
    return " OR ".join(f"({old} = '{a}' AND {new} = '{b}')" for a, b in _MOVES)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER invoice_line_immutable ON invoice_line")
        op.execute("DROP TRIGGER invoice_immutable ON invoice")
        op.execute("DROP FUNCTION invoice_immutable()")
    else:
        op.execute("DROP TRIGGER invoice_only_voids")
        op.execute("DROP TRIGGER invoice_line_no_change")
        op.execute("DROP TRIGGER invoice_line_no_delete")
    with op.batch_alter_table("invoice") as table:
        table.add_column(sa.Column("line_count", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("paid_at", UTCDateTime(), nullable=True))
        table.add_column(sa.Column("status_changed_at", UTCDateTime(), nullable=True))
        table.add_column(sa.Column("discount_percent", ExactDecimal(), nullable=True))
    op.execute(
        "UPDATE invoice SET line_count = "
        "(SELECT count(*) FROM invoice_line WHERE invoice_line.invoice_id = invoice.id)"
    )
    with op.batch_alter_table("credit_entry") as table:
        table.add_column(
            sa.Column(
                "credit_note_balance_after", ExactDecimal(), nullable=False, server_default="0"
            )
        )
    with op.batch_alter_table("stripe_event") as table:
        table.add_column(sa.Column("stripe_invoice_id", sa.String(255), nullable=True))
        table.add_column(sa.Column("created", UTCDateTime(), nullable=True))
        table.add_column(sa.Column("outcome", sa.String(32), nullable=False, server_default=""))
        table.add_column(sa.Column("reason", sa.String(300), nullable=False, server_default=""))
    op.create_table(
        "credit_note",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("series", sa.String(16), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.String(32), sa.ForeignKey("invoice.id"), nullable=False),
        sa.Column("customer_id", sa.String(64), sa.ForeignKey("customer.id"), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("total", ExactDecimal(), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("issued_by", sa.String(64), nullable=False),
        sa.UniqueConstraint("series", "number", name="uq_credit_note_number"),
    )
    op.create_index("ix_credit_note_invoice_id", "credit_note", ["invoice_id"])
    op.create_index("ix_credit_note_customer_id", "credit_note", ["customer_id"])
    op.create_table(
        "credit_note_line",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("credit_note_id", sa.String(32), sa.ForeignKey("credit_note.id"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("invoice_line", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=True),
        sa.Column("amount", ExactDecimal(), nullable=False),
    )
    op.create_index("ix_credit_note_line_credit_note_id", "credit_note_line", ["credit_note_id"])
    for statement in IMMUTABLE[dialect]:
        op.execute(statement)


IMMUTABLE = {
    "postgresql": [
        """
        CREATE FUNCTION invoice_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                RAISE EXCEPTION 'invoices are immutable: DELETE on % refused', TG_TABLE_NAME;
            END IF;
            IF TG_TABLE_NAME = 'invoice_line' THEN
                IF TG_OP = 'UPDATE' OR NEW.position < 1 OR NEW.position > (
                    SELECT line_count FROM invoice WHERE id = NEW.invoice_id
                ) OR (
                    SELECT count(*) FROM invoice_line WHERE invoice_id = NEW.invoice_id
                ) >= (SELECT line_count FROM invoice WHERE id = NEW.invoice_id) THEN
                    RAISE EXCEPTION 'invoices are immutable: % on invoice_line refused', TG_OP;
                END IF;
                RETURN NEW;
            END IF;
            IF NOT ("""
        + _allowed("OLD.status", "NEW.status")
        + ") OR ("
        + " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in _FROZEN)
        + """) THEN
                RAISE EXCEPTION 'invoice % is immutable: % -> % refused',
                    OLD.id, OLD.status, NEW.status;
            END IF;
            RETURN NEW;
        END $$
        """,
        "CREATE TRIGGER invoice_immutable BEFORE UPDATE OR DELETE ON invoice "
        "FOR EACH ROW EXECUTE FUNCTION invoice_immutable()",
        "CREATE TRIGGER invoice_line_immutable BEFORE INSERT OR UPDATE OR DELETE ON invoice_line "
        "FOR EACH ROW EXECUTE FUNCTION invoice_immutable()",
        """
        CREATE FUNCTION credit_note_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                RAISE EXCEPTION 'credit notes are immutable: % on % refused',
                    TG_OP, TG_TABLE_NAME;
            END IF;
            IF NEW.position < 1 OR NEW.position > (
                SELECT line_count FROM credit_note WHERE id = NEW.credit_note_id
            ) OR (
                SELECT count(*) FROM credit_note_line WHERE credit_note_id = NEW.credit_note_id
            ) >= (SELECT line_count FROM credit_note WHERE id = NEW.credit_note_id) THEN
                RAISE EXCEPTION 'credit notes are immutable: INSERT on credit_note_line refused';
            END IF;
            RETURN NEW;
        END $$
        """,
        "CREATE TRIGGER credit_note_immutable BEFORE UPDATE OR DELETE ON credit_note "
        "FOR EACH ROW EXECUTE FUNCTION credit_note_immutable()",
        "CREATE TRIGGER credit_note_line_immutable "
        "BEFORE INSERT OR UPDATE OR DELETE ON credit_note_line "
        "FOR EACH ROW EXECUTE FUNCTION credit_note_immutable()",
    ],
    "sqlite": [
        "CREATE TRIGGER invoice_line_no_change BEFORE UPDATE ON invoice_line "
        "BEGIN SELECT RAISE(ABORT, 'invoices are immutable: UPDATE refused'); END",
        "CREATE TRIGGER invoice_line_no_delete BEFORE DELETE ON invoice_line "
        "BEGIN SELECT RAISE(ABORT, 'invoices are immutable: DELETE refused'); END",
        "CREATE TRIGGER invoice_line_no_growth BEFORE INSERT ON invoice_line WHEN "
        "NEW.position < 1 "
        "OR NEW.position > (SELECT line_count FROM invoice WHERE id = NEW.invoice_id) "
        "OR (SELECT count(*) FROM invoice_line WHERE invoice_id = NEW.invoice_id) "
        ">= (SELECT line_count FROM invoice WHERE id = NEW.invoice_id) "
        "BEGIN SELECT RAISE(ABORT, 'invoices are immutable: INSERT refused'); END",
        "CREATE TRIGGER invoice_only_moves BEFORE UPDATE ON invoice WHEN NOT ("
        + _allowed("OLD.status", "NEW.status")
        + ") OR "
        + " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _FROZEN)
        + " BEGIN SELECT RAISE(ABORT, 'invoices are immutable: status move refused'); END",
        "CREATE TRIGGER credit_note_no_change BEFORE UPDATE ON credit_note "
        "BEGIN SELECT RAISE(ABORT, 'credit notes are immutable: UPDATE refused'); END",
        "CREATE TRIGGER credit_note_no_delete BEFORE DELETE ON credit_note "
        "BEGIN SELECT RAISE(ABORT, 'credit notes are immutable: DELETE refused'); END",
        "CREATE TRIGGER credit_note_line_no_change BEFORE UPDATE ON credit_note_line "
        "BEGIN SELECT RAISE(ABORT, 'credit notes are immutable: UPDATE refused'); END",
        "CREATE TRIGGER credit_note_line_no_delete BEFORE DELETE ON credit_note_line "
        "BEGIN SELECT RAISE(ABORT, 'credit notes are immutable: DELETE refused'); END",
        "CREATE TRIGGER credit_note_line_no_growth BEFORE INSERT ON credit_note_line WHEN "
        "NEW.position < 1 "
        "OR NEW.position > (SELECT line_count FROM credit_note WHERE id = NEW.credit_note_id) "
        "OR (SELECT count(*) FROM credit_note_line WHERE credit_note_id = NEW.credit_note_id) "
        ">= (SELECT line_count FROM credit_note WHERE id = NEW.credit_note_id) "
        "BEGIN SELECT RAISE(ABORT, 'credit notes are immutable: INSERT refused'); END",
    ],
}


def downgrade() -> None:
    raise NotImplementedError("0009 is not reversible: issued credit notes cannot be dropped")
