"""sync and evidence

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 17:53:37.338224
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import backend.db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("entity", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("entity_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["company.id"], name=op.f("fk_change_log_company_id_company")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_log")),
    )
    with op.batch_alter_table("change_log", schema=None) as batch_op:
        batch_op.create_index("ix_change_log_company_version", ["company_id", "version"], unique=False)
        batch_op.create_index("ix_change_log_feed", ["company_id", "user_id", "version"], unique=False)

    op.create_table(
        "sync_counter",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("epoch", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("pruned_below", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["company.id"], name=op.f("fk_sync_counter_company_id_company")
        ),
        sa.PrimaryKeyConstraint("company_id", name=op.f("pk_sync_counter")),
    )
    op.create_table(
        "blob",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("uploaded_by", sa.Uuid(), nullable=False),
        sa.Column("uploaded_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name=op.f("fk_blob_company_id_company")),
        sa.ForeignKeyConstraint(["uploaded_by"], ["app_user.id"], name=op.f("fk_blob_uploaded_by_app_user")),
        sa.PrimaryKeyConstraint("company_id", "sha256", name=op.f("pk_blob")),
    )
    with op.batch_alter_table("blob", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_blob_uploaded_by"), ["uploaded_by"], unique=False)

    op.create_table(
        "signature",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("action_id", sa.Uuid(), nullable=True),
        sa.Column("occurred_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("corrected_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("document_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("signer_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("signer_role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("content_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("blob_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("strokes", sa.JSON(), nullable=True),
        sa.Column("refused_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name=op.f("fk_signature_company_id_company")),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_signature_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature")),
    )
    with op.batch_alter_table("signature", schema=None) as batch_op:
        batch_op.create_index("ix_signature_document", ["document_type", "document_id"], unique=False)

    op.create_table(
        "measurement",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("action_id", sa.Uuid(), nullable=True),
        sa.Column("occurred_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("corrected_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("instrument_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("rooms", sa.JSON(), nullable=False),
        sa.Column("outdoor_c", sa.Float(), nullable=True),
        sa.Column("closed_minutes", sa.Integer(), nullable=True),
        sa.Column("measured_at", backend.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("result", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["company_id"], ["company.id"], name=op.f("fk_measurement_company_id_company")
        ),
        sa.ForeignKeyConstraint(
            ["household_id"], ["household.id"], name=op.f("fk_measurement_household_id_household")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["work_order.id"], name=op.f("fk_measurement_order_id_work_order")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_measurement_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measurement")),
    )
    with op.batch_alter_table("measurement", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_measurement_household_id"), ["household_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_measurement_order_id"), ["order_id"], unique=False)

    op.create_table(
        "meter_reading",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("action_id", sa.Uuid(), nullable=True),
        sa.Column("occurred_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("corrected_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("meter_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("phase", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("blob_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["company_id"], ["company.id"], name=op.f("fk_meter_reading_company_id_company")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["work_order.id"], name=op.f("fk_meter_reading_order_id_work_order")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_meter_reading_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_reading")),
    )
    with op.batch_alter_table("meter_reading", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meter_reading_order_id"), ["order_id"], unique=False)

    op.create_table(
        "photo",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("action_id", sa.Uuid(), nullable=True),
        sa.Column("occurred_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("corrected_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column("measurement_id", sa.Uuid(), nullable=True),
        sa.Column("blob_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("taken_at", backend.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name=op.f("fk_photo_company_id_company")),
        sa.ForeignKeyConstraint(["order_id"], ["work_order.id"], name=op.f("fk_photo_order_id_work_order")),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_photo_user_id_app_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photo")),
    )
    with op.batch_alter_table("photo", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_photo_measurement_id"), ["measurement_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_photo_order_id"), ["order_id"], unique=False)

    op.create_table(
        "sync_action",
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("action_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("v", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("current", sa.JSON(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("occurred_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("corrected_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("skew_s", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"], name=op.f("fk_sync_action_device_id_device")),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], name=op.f("fk_sync_action_user_id_app_user")),
        sa.PrimaryKeyConstraint("device_id", "seq", name=op.f("pk_sync_action")),
    )
    with op.batch_alter_table("sync_action", schema=None) as batch_op:
        batch_op.create_index("ix_sync_action_action_id", ["action_id"], unique=False)
        batch_op.create_index("ix_sync_action_device_status", ["device_id", "status"], unique=False)

    op.create_table(
        "sync_device",
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("last_applied_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"], name=op.f("fk_sync_device_device_id_device")),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_sync_device")),
    )

    # Every existing company gets its change-feed counter.
    op.execute(
        "INSERT INTO sync_counter (company_id, version, epoch, pruned_below) "
        "SELECT id, 0, substr(replace(CAST(id AS TEXT), '-', ''), 1, 16), 0 FROM company"
    )


def downgrade() -> None:
    op.drop_table("sync_device")
    with op.batch_alter_table("sync_action", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_action_device_status")
        batch_op.drop_index("ix_sync_action_action_id")

    op.drop_table("sync_action")
    with op.batch_alter_table("photo", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_photo_order_id"))
        batch_op.drop_index(batch_op.f("ix_photo_measurement_id"))

    op.drop_table("photo")
    with op.batch_alter_table("meter_reading", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meter_reading_order_id"))

    op.drop_table("meter_reading")
    with op.batch_alter_table("measurement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_measurement_order_id"))
        batch_op.drop_index(batch_op.f("ix_measurement_household_id"))

    op.drop_table("measurement")
    with op.batch_alter_table("signature", schema=None) as batch_op:
        batch_op.drop_index("ix_signature_document")

    op.drop_table("signature")
    with op.batch_alter_table("blob", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blob_uploaded_by"))

    op.drop_table("blob")
    op.drop_table("sync_counter")
    with op.batch_alter_table("change_log", schema=None) as batch_op:
        batch_op.drop_index("ix_change_log_feed")
        batch_op.drop_index("ix_change_log_company_version")

    op.drop_table("change_log")
