"""audit log: hash-chained, append-only security events per company, and the pruning anchor

Revision ID: 0013_audit
Revises: 0010

Triggers make ``audit_event`` append-only on both databases: every UPDATE is refused, and a
DELETE only of a row that the company's ``audit_anchor`` already covers (a pruned prefix) and that
is older than the 3-year retention by the database's own clock. On PostgreSQL TRUNCATE is refused
too. The anchor itself is never deleted and only moves forward.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.db.types

revision: str = "0013_audit"
down_revision: str | None = "0014_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRES_TRIGGERS = (
    """
    CREATE FUNCTION heatcrew_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE'
           AND OLD.at < now() - interval '3 years'
           AND EXISTS (SELECT 1 FROM audit_anchor a
                       WHERE a.company_id = OLD.company_id AND OLD.seq <= a.seq) THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END $$
    """,
    "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event "
    "FOR EACH ROW EXECUTE FUNCTION heatcrew_audit_append_only()",
    """
    CREATE FUNCTION heatcrew_audit_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END $$
    """,
    "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
    "FOR EACH STATEMENT EXECUTE FUNCTION heatcrew_audit_no_truncate()",
    "CREATE TRIGGER audit_anchor_no_truncate BEFORE TRUNCATE ON audit_anchor "
    "FOR EACH STATEMENT EXECUTE FUNCTION heatcrew_audit_no_truncate()",
    """
    CREATE FUNCTION heatcrew_audit_anchor_forward() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND NEW.company_id = OLD.company_id AND NEW.seq >= OLD.seq THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit_anchor only moves forward: % refused', TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END $$
    """,
    "CREATE TRIGGER audit_anchor_forward BEFORE UPDATE OR DELETE ON audit_anchor "
    "FOR EACH ROW EXECUTE FUNCTION heatcrew_audit_anchor_forward()",
)

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    WHEN NOT (
        julianday(OLD.at) < julianday('now', '-3 years')
        AND EXISTS (SELECT 1 FROM audit_anchor a
                    WHERE a.company_id = OLD.company_id AND OLD.seq <= a.seq)
    )
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: DELETE refused'); END
    """,
    """
    CREATE TRIGGER audit_anchor_forward BEFORE UPDATE ON audit_anchor
    WHEN NEW.company_id != OLD.company_id OR NEW.seq < OLD.seq
    BEGIN SELECT RAISE(ABORT, 'audit_anchor only moves forward: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE ON audit_anchor
    BEGIN SELECT RAISE(ABORT, 'audit_anchor only moves forward: DELETE refused'); END
    """,
)


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("actor_user_id", sa.Uuid(), nullable=True),
        sa.Column("actor_device_id", sa.String(length=64), nullable=True),
        sa.Column("target_type", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("company_id", "seq", name=op.f("pk_audit_event")),
    )
    op.create_index("ix_audit_event_company_event", "audit_event", ["company_id", "event", "seq"])
    op.create_index("ix_audit_event_company_actor", "audit_event", ["company_id", "actor_user_id", "seq"])
    op.create_index(
        "ix_audit_event_company_target", "audit_event", ["company_id", "target_type", "target_id", "seq"]
    )
    op.create_table(
        "audit_anchor",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("before", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("pruned_at", backend.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("company_id", name=op.f("pk_audit_anchor")),
    )
    triggers = POSTGRES_TRIGGERS if op.get_bind().dialect.name == "postgresql" else SQLITE_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    # Dropping the tables drops their triggers; PostgreSQL keeps the functions.
    op.drop_table("audit_anchor")
    op.drop_table("audit_event")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION heatcrew_audit_append_only()")
        op.execute("DROP FUNCTION heatcrew_audit_no_truncate()")
        op.execute("DROP FUNCTION heatcrew_audit_anchor_forward()")
