"""photo claims and derived copies

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 18:35:05.046148
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("blob", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))
        batch_op.add_column(sa.Column("claims", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("variants", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column("refused", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("blob", schema=None) as batch_op:
        batch_op.drop_column("refused")
        batch_op.drop_column("variants")
        batch_op.drop_column("claims")
        batch_op.drop_column("media")
