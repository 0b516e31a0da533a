"""``one_of(column, "ids")``: the column is one of a list given when the statement runs.

The hot statements are built once, at import, and run on either database:

- on PostgreSQL the list goes as one array parameter, ``column = ANY(%(ids)s)``. The statement's
  text is the same for every length of list, so SQLAlchemy renders nothing per call and psycopg
  prepares it once on each connection;
- on SQLite, which has no arrays, it is ``column IN (?, ?, …)``: SQLAlchemy's expanding parameter,
  rendered for each call's length.

An empty list matches nothing on both.
"""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

__all__ = ("one_of",)


class _OneOf(ColumnElement[bool]):
    inherit_cache = True
    type = sa.Boolean()
    _is_implicitly_boolean = True  # a comparison: no "= 1" after it where booleans are integers
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("name", InternalTraversal.dp_string),
        ("item_type", InternalTraversal.dp_type),
    ]

    def __init__(self, column: Any, name: str, item_type: Any) -> None:
        self.column = column
        self.name = name
        self.item_type = item_type

    @property
    def _from_objects(self) -> list[Any]:
        """The column's table joins the FROM clause, as with ``column.in_(…)``."""
        return self.column._from_objects


def one_of(column: Any, name: str, item_type: Any = None) -> Any:
    """``column`` is one of the list bound as ``name``; ``item_type``: the array's element type on
    PostgreSQL (default: UUID)."""
    return _OneOf(column, name, item_type if item_type is not None else sa.Uuid())


@compiles(_OneOf, "postgresql")
def _as_array(element: _OneOf, compiler: Any, **kw: Any) -> str:
    bound = sa.bindparam(element.name, type_=postgresql.ARRAY(element.item_type))
    return compiler.process(element.column == sa.any_(bound), **kw)


@compiles(_OneOf)
def _as_in(element: _OneOf, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column.in_(sa.bindparam(element.name, expanding=True)), **kw)
