"""reports at a million orders: the order's company and kind on its SLA clocks, report indexes

Revision ID: 0016_report_indexes
Revises: 0012_console

``sla_clock.company_id`` and ``sla_clock.order_kind`` copy the order's (neither ever changes), so
the on-time KPIs aggregate a season's clocks from one index (PostgreSQL: an index-only scan of
``(company_id, due_at) INCLUDE (clock, met_at, order_kind)``) without joining every clock to its
order. Existing clocks are filled from their orders. The other indexes serve the KPI queries and
the exports by company and period.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_report_indexes"
down_revision: str | None = "0015_live"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sla_clock") as batch:
        batch.add_column(sa.Column("company_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("order_kind", sa.String(length=32), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE sla_clock c SET company_id = o.company_id, order_kind = o.kind "
            "FROM work_order o WHERE o.id = c.order_id"
        )
    else:
        op.execute(
            "UPDATE sla_clock SET "
            "company_id = (SELECT o.company_id FROM work_order o WHERE o.id = sla_clock.order_id), "
            "order_kind = (SELECT o.kind FROM work_order o WHERE o.id = sla_clock.order_id)"
        )
    with op.batch_alter_table("sla_clock") as batch:
        batch.alter_column("company_id", existing_type=sa.Uuid(), nullable=False)
        batch.alter_column("order_kind", existing_type=sa.String(length=32), nullable=False)
        batch.create_foreign_key("fk_sla_clock_company_id_company", "company", ["company_id"], ["id"])
    op.create_index(
        "ix_sla_clock_company_due",
        "sla_clock",
        ["company_id", "due_at"],
        postgresql_include=["clock", "met_at", "order_kind"],
    )
    op.create_index("ix_work_order_company_received", "work_order", ["company_id", "received_at", "id"])
    op.create_index(
        "ix_work_order_company_source_received", "work_order", ["company_id", "source", "received_at"]
    )
    op.create_index(
        "ix_work_order_company_completed",
        "work_order",
        ["company_id", "completed_at"],
        postgresql_include=["kind", "team_id"],
    )
    op.create_index("ix_work_order_company_repeat_of", "work_order", ["company_id", "repeat_of_id"])
    op.create_index(
        "ix_revisit_company_due",
        "revisit",
        ["company_id", "due_at"],
        postgresql_include=["state", "satisfaction"],
    )
    op.create_index(
        "ix_measurement_company_measured",
        "measurement",
        ["company_id", "measured_at"],
        postgresql_include=["result"],
    )


def downgrade() -> None:
    op.drop_index("ix_measurement_company_measured", table_name="measurement")
    op.drop_index("ix_revisit_company_due", table_name="revisit")
    op.drop_index("ix_work_order_company_repeat_of", table_name="work_order")
    op.drop_index("ix_work_order_company_completed", table_name="work_order")
    op.drop_index("ix_work_order_company_source_received", table_name="work_order")
    op.drop_index("ix_work_order_company_received", table_name="work_order")
    op.drop_index("ix_sla_clock_company_due", table_name="sla_clock")
    with op.batch_alter_table("sla_clock") as batch:
        batch.drop_constraint("fk_sla_clock_company_id_company", type_="foreignkey")
        batch.drop_column("order_kind")
        batch.drop_column("company_id")
