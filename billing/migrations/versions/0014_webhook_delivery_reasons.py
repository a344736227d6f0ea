"""Webhook deliveries keep two reasons: `outbox.last_error` is the detail (admins and logs:
the address, a timeout, a refused connection), `outbox.public_error` what the customer sees
(the status their endpoint answered, or one generic sentence).

Failures stored before keep their detail; their public reason is the status answered ("HTTP
500" becomes "your endpoint answered HTTP 500") or the generic sentence.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_ANSWER = "could not deliver to your endpoint: no HTTP answer"


def upgrade() -> None:
    with op.batch_alter_table("outbox") as table:
        table.add_column(sa.Column("public_error", sa.String(500), nullable=True))
    outbox = sa.table(
        "outbox", sa.column("last_error", sa.String), sa.column("public_error", sa.String)
    )
    bind = op.get_bind()
    bind.execute(
        outbox.update()
        .where(outbox.c.last_error.like("HTTP ___"))  # the status answered, as stored
        .values(public_error=sa.literal("your endpoint answered ") + outbox.c.last_error)
    )
    bind.execute(
        outbox.update()
        .where(outbox.c.last_error.is_not(None), outbox.c.public_error.is_(None))
        .values(public_error=NO_ANSWER)
    )


def downgrade() -> None:
    with op.batch_alter_table("outbox") as table:
        table.drop_column("public_error")
