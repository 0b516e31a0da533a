"""signed documents and instruments

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import backend.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instrument",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("certificate_no", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("calibration_expires", sa.Date(), nullable=False),
        sa.Column("accuracy_c", sa.Float(), nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False),
        sa.Column("updated_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["company.id"], name=op.f("fk_instrument_company_id_company")
        ),
        sa.PrimaryKeyConstraint("company_id", "id", name=op.f("pk_instrument")),
    )
    op.create_table(
        "document",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("action_id", sa.Uuid(), nullable=True),
        sa.Column("occurred_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("corrected_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("household_id", sa.Uuid(), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("supersedes_id", sa.Uuid(), nullable=True),
        sa.Column("supersede_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("superseded_by_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name=op.f("fk_document_company_id_company")),
        sa.ForeignKeyConstraint(
            ["household_id"], ["household.id"], name=op.f("fk_document_household_id_household")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["work_order.id"], name=op.f("fk_document_order_id_work_order")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_document_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document")),
    )
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_document_company_id"), ["company_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_document_household_id"), ["household_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_document_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_document_supersedes_id"), ["supersedes_id"], unique=False)

    with op.batch_alter_table("signature", schema=None) as batch_op:
        # Signatures taken before seals existed keep an empty seal and verify as not intact.
        batch_op.add_column(
            sa.Column("seal", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("signature", schema=None) as batch_op:
        batch_op.drop_column("seal")

    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_supersedes_id"))
        batch_op.drop_index(batch_op.f("ix_document_order_id"))
        batch_op.drop_index(batch_op.f("ix_document_household_id"))
        batch_op.drop_index(batch_op.f("ix_document_company_id"))

    op.drop_table("document")
    op.drop_table("instrument")
