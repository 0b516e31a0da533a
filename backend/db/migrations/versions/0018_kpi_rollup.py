"""KPI rollup: insert-only deltas per company, team, ingredient and local day, and each entity's parts

Revision ID: 0018_kpi_rollup
Revises: 0017_review_counts

``kpi_delta`` holds the rollup (``backend.reports.rollup``), ``kpi_settled`` what each order (with
its clocks, revisit and measurements) or order-less measurement counts for. The backfill computes
both from the existing rows, with the same code the service settles a transaction with.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_kpi_rollup"
down_revision: str | None = "0017_review_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kpi_delta",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("ingredient", sa.String(length=48), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("numerator", sa.BigInteger(), nullable=False),
        sa.Column("denominator", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kpi_delta"),
    )
    op.create_index(
        "ix_kpi_delta_company_day",
        "kpi_delta",
        ["company_id", "day"],
        postgresql_include=["team_id", "ingredient", "numerator", "denominator"],
    )
    op.create_table(
        "kpi_settled",
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("parts", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("entity_id", name="pk_kpi_settled"),
    )
    # The backfill: the service's own rules (imported here, at the version that adds the tables).
    from backend.reports import rollup

    rollup.rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_table("kpi_settled")
    op.drop_index("ix_kpi_delta_company_day", table_name="kpi_delta")
    op.drop_table("kpi_delta")
