"""``one_of`` and the PostgreSQL cursor: the same rows and columns as the plain forms, on both
databases, whatever the list's length (the two keep a small statement cheap; see db/lists.py and
db/pgcursor.py)."""

import uuid

import pytest
import sqlalchemy as sa

from backend.db import make_engine
from backend.db.lists import one_of

metadata = sa.MetaData()
items = sa.Table(
    "one_of_probe",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("label", sa.String, nullable=False),
)
IDS = [uuid.UUID(int=i + 1) for i in range(6)]
BY_LIST = sa.select(items.c.n).where(one_of(items.c.id, "ids")).order_by(items.c.n)
# Two lists in one statement, one under an OR (as the delta pull's orders are chosen).
TWO_LISTS = (
    sa.select(items.c.n)
    .where(sa.or_(one_of(items.c.id, "ids"), sa.and_(items.c.n >= 4, one_of(items.c.id, "more"))))
    .order_by(items.c.n)
)


@pytest.fixture
def engine(database_url: str):
    engine = make_engine(database_url)
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(items.insert(), [{"id": i, "n": k, "label": f"item {k}"} for k, i in enumerate(IDS)])
    yield engine
    with engine.begin() as conn:
        metadata.drop_all(conn)
    engine.dispose()


def test_one_of_finds_exactly_the_listed_rows_at_every_length(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        # The same statement again and again with other lengths: PostgreSQL prepares it after a few.
        for _ in range(3):
            for length in range(len(IDS) + 1):
                wanted = IDS[:length]
                assert conn.execute(BY_LIST, {"ids": wanted}).scalars().all() == list(range(length))
        assert conn.execute(BY_LIST, {"ids": [uuid.uuid4()]}).scalars().all() == []
        assert conn.execute(TWO_LISTS, {"ids": IDS[:1], "more": IDS}).scalars().all() == [0, 4, 5]
        assert conn.execute(TWO_LISTS, {"ids": [], "more": []}).scalars().all() == []


def test_one_of_renders_a_comparison_not_a_flag(engine: sa.Engine) -> None:
    text = str(BY_LIST.compile(dialect=engine.dialect))
    if engine.dialect.name == "postgresql":
        assert "= ANY (" in text and "POSTCOMPILE" not in text
    else:
        # No "= 1" after IN: SQLite would not use the primary key's index for that.
        assert "IN (__[POSTCOMPILE_ids])" in text and "= 1" not in text


def test_one_of_brings_its_table_into_the_query_as_in_does(engine: sa.Engine) -> None:
    others = sa.Table("one_of_other", sa.MetaData(), sa.Column("id", sa.Uuid, primary_key=True))
    plain = sa.select(items.c.n).where(others.c.id.in_(sa.bindparam("ids", expanding=True)))
    listed = sa.select(items.c.n).where(one_of(others.c.id, "ids"))
    assert "FROM one_of_probe, one_of_other" in str(plain.compile(dialect=engine.dialect))
    assert "FROM one_of_probe, one_of_other" in str(listed.compile(dialect=engine.dialect))


def test_rows_and_their_columns_are_described_as_before(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        # Text, the first run of a select, the same select from the cache: names and values.
        for statement in (
            sa.text("SELECT n, label FROM one_of_probe ORDER BY n"),
            items.select().order_by(items.c.n),
        ):
            for _ in range(2):
                result = conn.execute(statement)
                rows = result.mappings().all()
                assert rows[2]["n"] == 2 and rows[2]["label"] == "item 2"
        assert list(conn.execute(sa.text("SELECT 1 AS one, 'x' AS other")).keys()) == ["one", "other"]
        # A statement with no rows has no description; one that returns no row still has columns.
        assert conn.execute(items.update().values(n=items.c.n)).returns_rows is False
        empty = conn.execute(sa.text("SELECT n FROM one_of_probe WHERE false"))
        assert empty.returns_rows is True and list(empty.keys()) == ["n"] and empty.all() == []
        raw = conn.connection.driver_connection.cursor()
        raw.execute("SELECT 7 AS seven, 'a' AS letter")
        described = raw.description
        raw.execute("SELECT 1")  # the cursor moves on; what it described stays
        assert [c[0] for c in described] == ["seven", "letter"] and len(described) == 2
