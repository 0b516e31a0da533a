"""sync_action: one partial index for refused answers instead of two full ones

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSED = sa.text("status IN ('rejected', 'conflict')")


def upgrade() -> None:
    op.drop_index("ix_sync_action_action_id", table_name="sync_action")
    op.drop_index("ix_sync_action_device_status", table_name="sync_action")
    op.create_index(
        "ix_sync_action_refused",
        "sync_action",
        ["device_id", "seq"],
        postgresql_where=REFUSED,
        sqlite_where=REFUSED,
    )


def downgrade() -> None:
    op.drop_index("ix_sync_action_refused", table_name="sync_action")
    op.create_index("ix_sync_action_device_status", "sync_action", ["device_id", "status"])
    op.create_index("ix_sync_action_action_id", "sync_action", ["action_id"])
