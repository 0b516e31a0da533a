"""blob_uploader: every user who sent a file's bytes, not only the first

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.db.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blob_uploader",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("uploaded_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("refused", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("company_id", "sha256", "user_id"),
    )
    op.create_index("ix_blob_uploader_user_time", "blob_uploader", ["user_id", "uploaded_at"])
    op.execute(
        "INSERT INTO blob_uploader (company_id, sha256, user_id, uploaded_at, refused) "
        "SELECT company_id, sha256, uploaded_by, uploaded_at, refused FROM blob"
    )


def downgrade() -> None:
    op.drop_table("blob_uploader")
