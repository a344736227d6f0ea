"""What a period invoice was priced with: the tier files' digest and the priced inputs
(docs/pricing-changes.md, "Verifiable invoices").

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invoice") as batch:
        batch.add_column(sa.Column("catalog_digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("priced_inputs", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoice") as batch:
        batch.drop_column("priced_inputs")
        batch.drop_column("catalog_digest")
