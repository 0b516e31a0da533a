"""change feed on PostgreSQL: positions are the writing transaction's id

Revision ID: 0010
Revises: 0009

From here a change's position on PostgreSQL is its transaction's id (``backend.sync.changes``),
not the company counter. The two cannot be compared, so every company starts a new epoch (each
phone takes one full snapshot) with an empty history, and a trigger gives every row written to
``change_log`` its transaction's id, whoever writes it: a worker of the previous release still
running during a rolling deploy writes counter positions, which phones' new cursors would skip.
SQLite keeps the counter (one writer at a time).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DELETE FROM change_log")
    op.execute(
        "UPDATE sync_counter "
        "SET epoch = substr(md5(random()::text || clock_timestamp()::text), 1, 16), pruned_below = 0"
    )
    op.execute(
        """
        CREATE FUNCTION heatcrew_change_position() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.version := pg_current_xact_id()::text::bigint;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER change_log_position BEFORE INSERT ON change_log "
        "FOR EACH ROW EXECUTE FUNCTION heatcrew_change_position()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER change_log_position ON change_log")
    op.execute("DROP FUNCTION heatcrew_change_position()")
