"""Invoice lines are checked once per INSERT statement on PostgreSQL, not once per line.

Since migration 0009 a BEFORE INSERT trigger ran for every invoice line: it read its
invoice's `line_count` twice and counted the lines already stored, refusing a line outside
1..line_count or beyond the invoice's count (an issued invoice never gains a line). The
close writes a chunk's lines in one statement (issue 20), and this per-line PL/pgSQL call
with its three queries was up to a quarter of the close's time on PostgreSQL.

The same rule now runs once per statement, after it, over the statement's new rows (a
transition table, `new_lines`): for each invoice the statement added lines to, the lowest
and highest positions added must lie in 1..line_count, and the invoice's lines, counted
with the new ones, must not exceed line_count. A statement that breaks it is refused as a
whole, with the message the per-line trigger gave. UPDATE and DELETE of a line stay
refused by the row trigger `invoice_line_immutable`. SQLite keeps its per-line trigger
(`invoice_line_no_growth`): it runs in-process, where a row trigger costs little.

Invoices and lines are looked up by (customer_id, id), their key (migration 0020). Citus
runs no statement trigger on a distributed table: a cluster distributing `invoice_line`
puts the per-line trigger back, as this migration's downgrade does (docs/operations.md,
"Distribute by customer"); `invoice_immutable()` still checks an inserted line.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHECK = """
CREATE FUNCTION invoice_lines_complete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1
        FROM (
            SELECT customer_id, invoice_id, min(position) AS lowest, max(position) AS highest
            FROM new_lines GROUP BY customer_id, invoice_id
        ) AS added
        JOIN invoice AS i ON i.customer_id = added.customer_id AND i.id = added.invoice_id
        WHERE added.lowest < 1
           OR added.highest > i.line_count
           OR (
               SELECT count(*) FROM invoice_line AS l
               WHERE l.customer_id = added.customer_id AND l.invoice_id = added.invoice_id
           ) > i.line_count
    ) THEN
        RAISE EXCEPTION 'invoices are immutable: INSERT on invoice_line refused';
    END IF;
    RETURN NULL;
END $$
"""

_UPGRADE = [
    "DROP TRIGGER invoice_line_immutable ON invoice_line",
    "CREATE TRIGGER invoice_line_immutable BEFORE UPDATE OR DELETE ON invoice_line "
    "FOR EACH ROW EXECUTE FUNCTION invoice_immutable()",
    _CHECK,
    "CREATE TRIGGER invoice_lines_complete AFTER INSERT ON invoice_line "
    "REFERENCING NEW TABLE AS new_lines "
    "FOR EACH STATEMENT EXECUTE FUNCTION invoice_lines_complete()",
]

_DOWNGRADE = [
    "DROP TRIGGER invoice_lines_complete ON invoice_line",
    "DROP FUNCTION invoice_lines_complete()",
    "DROP TRIGGER invoice_line_immutable ON invoice_line",
    "CREATE TRIGGER invoice_line_immutable BEFORE INSERT OR UPDATE OR DELETE ON invoice_line "
    "FOR EACH ROW EXECUTE FUNCTION invoice_immutable()",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _DOWNGRADE:
            op.execute(statement)
