"""The migrations build exactly the schema the models describe, on both databases."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from backend.db.models import metadata


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    # database_url is a database built by running every migration (see tests/fixtures/databases.py).
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []
