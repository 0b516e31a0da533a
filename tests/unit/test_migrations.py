"""The migrations build exactly the schema the models describe, on both databases."""

import uuid

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


def test_the_household_feed_revision_starts_every_phone_from_a_new_epoch(tmp_path) -> None:
    """Changes recorded before 0019 touch no household: no cursor may read across them."""
    from datetime import UTC, datetime

    from backend.db.migrate import upgrade
    from backend.org.models import Company
    from backend.sync.models import ChangeLog, SyncCounter

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        upgrade(engine, "0018_kpi_rollup")
        company_id = uuid.uuid4()
        now = datetime(2026, 12, 7, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(Company.__table__).values(id=company_id, code="c", name="C", created_at=now)
            )
            conn.execute(
                sa.insert(SyncCounter.__table__).values(
                    company_id=company_id, version=7, epoch="0123456789abcdef", pruned_below=3
                )
            )
            conn.execute(
                sa.insert(ChangeLog.__table__).values(
                    company_id=company_id, version=7, entity="work_order", entity_id="x", at=now
                )
            )
        upgrade(engine)
        with engine.connect() as conn:
            epoch, pruned = conn.execute(sa.select(SyncCounter.epoch, SyncCounter.pruned_below)).one()
            kept = conn.execute(sa.select(sa.func.count()).select_from(ChangeLog.__table__)).scalar_one()
    finally:
        engine.dispose()
    assert epoch != "0123456789abcdef" and len(epoch) == 16
    assert (pruned, kept) == (0, 0)
