"""Schema migrations through Alembic, driven from code (``heatcrew db upgrade``, ``serve``)."""

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (with Mako, ~12 MiB) is imported in each function: ``heatcrew serve`` migrates before it
# starts its workers, and a worker, which imports the command line's module, never needs it.

__all__ = ("alembic_config", "current_revision", "head_revision", "upgrade")

MIGRATIONS = Path(__file__).with_name("migrations")
# Any fixed number will do: it only has to be the same in every worker that may upgrade.
PG_LOCK_KEY = 4_815_162_342


def alembic_config() -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; on PostgreSQL, workers starting together take turns."""
    from alembic import command

    config = alembic_config()
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # A migration may rewrite a big table: the service's statement timeout is not for it.
            connection.execute(sa.text("SET statement_timeout = 0"))
            connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": PG_LOCK_KEY})
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_KEY})
                connection.execute(sa.text("RESET statement_timeout"))
                connection.commit()


def current_revision(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
