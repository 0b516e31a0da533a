"""sync_action: an action id is answered once per device (unique index)

Before this, an action id resent under a new seq was applied again. Rows that did so keep their
answers under a derived id, so the index can be built on a database that already holds them.

Revision ID: 0007
Revises: 0006
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Names the derived ids of repeated deliveries: uuid5(REPEATED, "<action id>/<seq>").
REPEATED = uuid.UUID("0b6a3c1e-8f0d-4c53-9b7e-5f1d2a7c9e40")


def upgrade() -> None:
    bind = op.get_bind()
    answers = sa.table(
        "sync_action", sa.column("device_id"), sa.column("seq"), sa.column("action_id", sa.Uuid())
    )
    first = sa.func.min(answers.c.seq).label("first_seq")
    repeated = (
        sa.select(answers.c.device_id, answers.c.action_id, first)
        .group_by(answers.c.device_id, answers.c.action_id)
        .having(sa.func.count() > 1)
    ).subquery()
    later = bind.execute(
        sa.select(answers.c.device_id, answers.c.seq, answers.c.action_id).join(
            repeated,
            sa.and_(
                repeated.c.device_id == answers.c.device_id,
                repeated.c.action_id == answers.c.action_id,
                answers.c.seq > repeated.c.first_seq,
            ),
        )
    ).all()
    for device_id, seq, action_id in later:
        bind.execute(
            answers.update()
            .where(answers.c.device_id == device_id, answers.c.seq == seq)
            .values(action_id=uuid.uuid5(REPEATED, f"{action_id}/{seq}"))
        )
    op.create_index("ux_sync_action_action_id", "sync_action", ["device_id", "action_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_sync_action_action_id", table_name="sync_action")
