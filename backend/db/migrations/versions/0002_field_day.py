"""field day: stations, teams, buildings, households, work orders, SLA clocks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 17:19:00.036662
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import backend.db.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "station",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["company.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("company_id", "code"),
    )
    with op.batch_alter_table("station", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_station_company_id"), ["company_id"], unique=False)

    op.create_table(
        "building",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("station_id", sa.Uuid(), nullable=True),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["company.id"],
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["station.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("company_id", "address"),
    )
    with op.batch_alter_table("building", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_building_company_id"), ["company_id"], unique=False)

    op.create_table(
        "team",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("station_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["company.id"],
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["station.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("company_id", "code"),
    )
    with op.batch_alter_table("team", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_team_company_id"), ["company_id"], unique=False)

    op.create_table(
        "household",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("building_id", sa.Uuid(), nullable=False),
        sa.Column("account_number", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("unit", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("heated_area_m2", sa.Float(), nullable=False),
        sa.Column("resident_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("resident_phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("is_key_customer", sa.Boolean(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("created_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["building.id"],
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["company.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("company_id", "account_number"),
    )
    with op.batch_alter_table("household", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_household_building_id"), ["building_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_household_company_id"), ["company_id"], unique=False)

    op.create_table(
        "work_order",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("forwarded", sa.Boolean(), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("state_before_return", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
        sa.Column("received_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("updated_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", backend.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", backend.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("result", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("result_note", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("return_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("cancel_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("repeat_of_id", sa.Uuid(), nullable=True),
        sa.Column("review_flags", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["company.id"],
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["household.id"],
        ),
        sa.ForeignKeyConstraint(
            ["repeat_of_id"],
            ["work_order.id"],
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["team.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("work_order", schema=None) as batch_op:
        batch_op.create_index("ix_work_order_assignee_state", ["assignee_id", "state"], unique=False)
        batch_op.create_index("ix_work_order_company_state", ["company_id", "state"], unique=False)
        batch_op.create_index(
            "ix_work_order_household_completed", ["household_id", "completed_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_work_order_team_id"), ["team_id"], unique=False)

    op.create_table(
        "appointment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("window_start", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("window_end", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("replaced_at", backend.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["work_order.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_appointment_order_id"), ["order_id"], unique=False)

    op.create_table(
        "arrival",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column("location_verified", sa.Boolean(), nullable=True),
        sa.Column("attempts", sa.JSON(), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("badge_shown", sa.Boolean(), nullable=False),
        sa.Column("occurred_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("corrected_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["work_order.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("arrival", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_arrival_order_id"), ["order_id"], unique=False)

    op.create_table(
        "revisit",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("household_id", sa.Uuid(), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.Column("due_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("done_at", backend.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["company.id"],
        ),
        sa.ForeignKeyConstraint(
            ["done_by"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["household.id"],
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["work_order.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id"),
    )
    with op.batch_alter_table("revisit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_revisit_company_id"), ["company_id"], unique=False)

    op.create_table(
        "sla_clock",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("clock", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("started_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("met_at", backend.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("target", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("calendar_estimated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["work_order.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "clock"),
    )
    with op.batch_alter_table("sla_clock", schema=None) as batch_op:
        batch_op.create_index("ix_sla_clock_open_due", ["met_at", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sla_clock_order_id"), ["order_id"], unique=False)

    op.create_table(
        "work_order_event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("from_state", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
        sa.Column("to_state", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("occurred_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("corrected_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["app_user.id"],
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["work_order.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("work_order_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_order_event_order_id"), ["order_id"], unique=False)

    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_app_user_team_id"), ["team_id"], unique=False)
        batch_op.create_foreign_key("fk_app_user_team_id_team", "team", ["team_id"], ["id"])

    with op.batch_alter_table("company", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sla_policy", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("company", schema=None) as batch_op:
        batch_op.drop_column("sla_policy")

    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.drop_constraint("fk_app_user_team_id_team", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_app_user_team_id"))
        batch_op.drop_column("team_id")

    with op.batch_alter_table("work_order_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_order_event_order_id"))

    op.drop_table("work_order_event")
    with op.batch_alter_table("sla_clock", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_clock_order_id"))
        batch_op.drop_index("ix_sla_clock_open_due")

    op.drop_table("sla_clock")
    with op.batch_alter_table("revisit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_revisit_company_id"))

    op.drop_table("revisit")
    with op.batch_alter_table("arrival", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_arrival_order_id"))

    op.drop_table("arrival")
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appointment_order_id"))

    op.drop_table("appointment")
    with op.batch_alter_table("work_order", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_order_team_id"))
        batch_op.drop_index("ix_work_order_household_completed")
        batch_op.drop_index("ix_work_order_company_state")
        batch_op.drop_index("ix_work_order_assignee_state")

    op.drop_table("work_order")
    with op.batch_alter_table("household", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_household_company_id"))
        batch_op.drop_index(batch_op.f("ix_household_building_id"))

    op.drop_table("household")
    with op.batch_alter_table("team", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_team_company_id"))

    op.drop_table("team")
    with op.batch_alter_table("building", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_building_company_id"))

    op.drop_table("building")
    with op.batch_alter_table("station", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_station_company_id"))

    op.drop_table("station")
