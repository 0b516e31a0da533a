"""auth limits: refresh-token parents, pending login attempts, per-address rate counters

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refresh_token", schema=None) as batch_op:
        # Tokens issued before this revision have none; the grace check falls back to issue times.
        batch_op.add_column(sa.Column("parent_id", sa.Uuid(), nullable=True))

    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        # NULL: the password check is still running (the attempt is counted, not yet judged).
        batch_op.alter_column("succeeded", existing_type=sa.Boolean(), nullable=True)

    op.create_table(
        "rate_counter",
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", "window_start", name=op.f("pk_rate_counter")),
    )
    with op.batch_alter_table("rate_counter", schema=None) as batch_op:
        batch_op.create_index("ix_rate_counter_scope_window", ["scope", "window_start"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rate_counter", schema=None) as batch_op:
        batch_op.drop_index("ix_rate_counter_scope_window")
    op.drop_table("rate_counter")

    op.execute("DELETE FROM login_attempt WHERE succeeded IS NULL")
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.alter_column("succeeded", existing_type=sa.Boolean(), nullable=False)

    with op.batch_alter_table("refresh_token", schema=None) as batch_op:
        batch_op.drop_column("parent_id")
