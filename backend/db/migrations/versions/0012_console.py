"""the web console: browser sessions and each user's console language

Revision ID: 0012_console
Revises: 0010

``console_session`` holds the browser side of a console sign-in (the hash of its cookie, its
CSRF token, when it was last used), tied to the auth session it opened; ``app_user.locale`` is
the language the user chose in the console (unset: Chinese).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.db.types import UTCDateTime

revision: str = "0012_console"
down_revision: str | None = "0011_review"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("app_user") as batch:
        batch.add_column(sa.Column("locale", sa.String(length=16), nullable=True))
    op.create_table(
        "console_session",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("auth_session_id", sa.Uuid(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_active_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["auth_session_id"], ["auth_session.id"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(
        op.f("ix_console_session_auth_session_id"), "console_session", ["auth_session_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_console_session_auth_session_id"), table_name="console_session")
    op.drop_table("console_session")
    with op.batch_alter_table("app_user") as batch:
        batch.drop_column("locale")
