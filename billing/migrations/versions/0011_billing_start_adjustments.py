"""Billing start, and what each period has invoiced, so late usage is billed once.

- `customer.billing_start`: where the customer's periods begin (default: creation; null
  only before this migration). Set for existing customers early enough that no stored
  usage is orphaned: the earlier of their creation and their first stored event.
- `usage.invoiced_quantity`, `capped_quantity`, `amended`: the units of the row's period
  that invoices have billed so far (usage lines and adjustments), the units they showed as
  above what the cap buys (not billed), and whether the row moved since (late usage the
  next invoice adjusts for). Set from the issued, not void, usage invoices; a row of a
  closed period that no invoice billed is marked amended, so the next close bills it.
- `invoice_line.corrects_period`: the period an adjustment line corrects.

Revision ID: 0011
Revises: 0009
Create Date: 2026-11-30
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

from billing.db import ExactDecimal, UTCDateTime

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("customer") as table:
        table.add_column(sa.Column("billing_start", UTCDateTime(), nullable=True))
    with op.batch_alter_table("usage") as table:
        table.add_column(
            sa.Column("invoiced_quantity", ExactDecimal(), nullable=False, server_default="0")
        )
        table.add_column(
            sa.Column("capped_quantity", ExactDecimal(), nullable=False, server_default="0")
        )
        table.add_column(
            sa.Column("amended", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("invoice_line") as table:
        table.add_column(sa.Column("corrects_period", UTCDateTime(), nullable=True))
    customer = sa.table(
        "customer",
        sa.column("id", sa.String),
        sa.column("created_at", UTCDateTime()),
        sa.column("billing_start", UTCDateTime()),
    )
    event = sa.table(
        "event", sa.column("customer_id", sa.String), sa.column("timestamp", UTCDateTime())
    )
    first_event = dict(
        bind.execute(
            sa.select(event.c.customer_id, sa.func.min(event.c.timestamp)).group_by(
                event.c.customer_id
            )
        ).all()
    )
    for row in bind.execute(sa.select(customer.c.id, customer.c.created_at)).all():
        first = first_event.get(row.id)
        start = row.created_at if first is None else min(row.created_at, _aware(first))
        bind.execute(customer.update().where(customer.c.id == row.id).values(billing_start=start))
    _invoiced_so_far(bind)


def _aware(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _invoiced_so_far(bind: sa.engine.Connection) -> None:
    invoice = sa.table(
        "invoice",
        sa.column("id", sa.String),
        sa.column("customer_id", sa.String),
        sa.column("kind", sa.String),
        sa.column("status", sa.String),
        sa.column("period_start", UTCDateTime()),
    )
    line = sa.table(
        "invoice_line",
        sa.column("invoice_id", sa.String),
        sa.column("kind", sa.String),
        sa.column("product", sa.String),
        sa.column("quantity", ExactDecimal()),
    )
    usage = sa.table(
        "usage",
        sa.column("customer_id", sa.String),
        sa.column("product", sa.String),
        sa.column("period_start", UTCDateTime()),
        sa.column("invoiced_quantity", ExactDecimal()),
        sa.column("amended", sa.Boolean()),
    )
    billed: dict[tuple[str, str, dt.datetime], Decimal] = defaultdict(Decimal)
    rows = bind.execute(
        sa.select(
            invoice.c.customer_id,
            invoice.c.period_start,
            line.c.product,
            line.c.quantity,
        )
        .select_from(invoice.join(line, line.c.invoice_id == invoice.c.id))
        .where(invoice.c.kind == "usage", invoice.c.status != "void", line.c.kind == "usage")
    )
    for row in rows:
        key = (row.customer_id, row.product, _aware(row.period_start))
        billed[key] += Decimal(row.quantity)
    # Rows of closed periods no invoice billed: the next close adjusts for them.
    customer = sa.table(
        "customer", sa.column("id", sa.String), sa.column("closed_through", UTCDateTime())
    )
    orphans = bind.execute(
        sa.select(usage.c.customer_id, usage.c.product, usage.c.period_start)
        .select_from(usage.join(customer, customer.c.id == usage.c.customer_id))
        .where(usage.c.period_start < customer.c.closed_through)
    ).all()
    for orphan in orphans:
        if (orphan.customer_id, orphan.product, _aware(orphan.period_start)) not in billed:
            bind.execute(
                usage.update()
                .where(
                    usage.c.customer_id == orphan.customer_id,
                    usage.c.product == orphan.product,
                    usage.c.period_start == orphan.period_start,
                )
                .values(amended=True)
            )
    for (customer_id, product, start), quantity in billed.items():
        bind.execute(
            usage.update()
            .where(
                usage.c.customer_id == customer_id,
                usage.c.product == product,
                usage.c.period_start == start,
            )
            .values(invoiced_quantity=quantity)
        )


def downgrade() -> None:
    with op.batch_alter_table("invoice_line") as table:
        table.drop_column("corrects_period")
    with op.batch_alter_table("usage") as table:
        table.drop_column("amended")
        table.drop_column("capped_quantity")
        table.drop_column("invoiced_quantity")
    with op.batch_alter_table("customer") as table:
        table.drop_column("billing_start")
