"""live channel on PostgreSQL: committed feed positions and revocations are announced by NOTIFY

Revision ID: 0015_live
Revises: 0010

Each worker's hub (``backend.sync.live``) LISTENs on two channels. Triggers send the notices,
so every writer announces what it commits (a CLI command, a worker of the previous release); NOTIFY
is transactional, so a notice is delivered only after its transaction committed.

- ``heatcrew_feed``: a statement-level trigger on ``change_log`` (transition table) sends, per
  company, ``f|<company>|<position>|<user>,<user>,…`` (``*`` for a change for everyone). More
  users than fit well in the 8000-byte payload: ``*`` (the whole company), which only makes its
  phones look once more. A change of ``sync_counter``'s epoch or pruning sends ``c|<company>``.
- ``heatcrew_auth``: a revoked session, a revoked device or a disabled user sends ``s|<id>``,
  ``d|<id>`` or ``u|<id>``.

SQLite has no NOTIFY: the worker tells its hub itself after the commit.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_live"
down_revision: str | None = "0013_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Users in one notice before it names the whole company instead (33 bytes each, below 8000).
MAX_USERS = 200


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION heatcrew_feed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            r record;
        BEGIN
            FOR r IN
                SELECT company_id, max(version) AS position,
                       bool_or(user_id IS NULL) OR count(DISTINCT user_id) > {MAX_USERS} AS everyone,
                       string_agg(DISTINCT replace(user_id::text, '-', ''), ',') AS users
                FROM new_rows GROUP BY company_id
            LOOP
                PERFORM pg_notify(
                    'heatcrew_feed',
                    'f|' || replace(r.company_id::text, '-', '') || '|' || r.position || '|'
                    || CASE WHEN r.everyone THEN '*' ELSE r.users END
                );
            END LOOP;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER change_log_notify AFTER INSERT ON change_log "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION heatcrew_feed_notify()"
    )
    op.execute(
        """
        CREATE FUNCTION heatcrew_counter_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('heatcrew_feed', 'c|' || replace(NEW.company_id::text, '-', ''));
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER sync_counter_notify AFTER UPDATE ON sync_counter FOR EACH ROW "
        "WHEN (OLD.epoch IS DISTINCT FROM NEW.epoch OR OLD.pruned_below IS DISTINCT FROM NEW.pruned_below) "
        "EXECUTE FUNCTION heatcrew_counter_notify()"
    )
    op.execute(
        """
        CREATE FUNCTION heatcrew_auth_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('heatcrew_auth', TG_ARGV[0] || '|' || NEW.id::text);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER auth_session_notify AFTER UPDATE ON auth_session FOR EACH ROW "
        "WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL) "
        "EXECUTE FUNCTION heatcrew_auth_notify('s')"
    )
    op.execute(
        "CREATE TRIGGER device_notify AFTER UPDATE ON device FOR EACH ROW "
        "WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL) "
        "EXECUTE FUNCTION heatcrew_auth_notify('d')"
    )
    op.execute(
        "CREATE TRIGGER app_user_notify AFTER UPDATE ON app_user FOR EACH ROW "
        "WHEN (OLD.is_active AND NOT NEW.is_active) "
        "EXECUTE FUNCTION heatcrew_auth_notify('u')"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER app_user_notify ON app_user")
    op.execute("DROP TRIGGER device_notify ON device")
    op.execute("DROP TRIGGER auth_session_notify ON auth_session")
    op.execute("DROP FUNCTION heatcrew_auth_notify()")
    op.execute("DROP TRIGGER sync_counter_notify ON sync_counter")
    op.execute("DROP FUNCTION heatcrew_counter_notify()")
    op.execute("DROP TRIGGER change_log_notify ON change_log")
    op.execute("DROP FUNCTION heatcrew_feed_notify()")
