"""The cursor of every PostgreSQL connection: psycopg's, with a description built when read.

SQLAlchemy asks for ``cursor.description`` after every statement. psycopg builds a ``Column`` for
each column of the result each time, in Python (type lookup, name decoding), and SQLAlchemy then
looks only at whether there is one: it describes the rows from what it cached when the statement
was first compiled. A push's few statements of a dozen columns each spent a twentieth of their
time there. This description is a sequence of the same columns, built on first use.
"""

from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import pq
from psycopg._column import Column

__all__ = ("DescribedLater",)

_ROWS = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.SINGLE_TUPLE, pq.ExecStatus.TUPLES_CHUNK)


class _Result:
    """What ``Column`` reads of a cursor, fixed at one result (the cursor may run another)."""

    __slots__ = ("_cursor", "pgresult")

    def __init__(self, cursor: psycopg.Cursor[Any], pgresult: Any) -> None:
        self._cursor, self.pgresult = cursor, pgresult

    @property
    def _encoding(self) -> str:
        return self._cursor._encoding

    @property
    def adapters(self) -> Any:
        return self._cursor.adapters


class _Description:
    __slots__ = ("_columns", "_count", "_result")

    def __init__(self, result: _Result, count: int) -> None:
        self._result, self._count, self._columns = result, count, None

    def _built(self) -> list[Column]:
        if self._columns is None:
            self._columns = [Column(self._result, i) for i in range(self._count)]  # type: ignore[arg-type]
        return self._columns

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: Any) -> Any:
        return self._built()[index]

    def __iter__(self) -> Iterator[Column]:
        return iter(self._built())

    def __eq__(self, other: object) -> bool:
        return list(self) == other

    __hash__ = None  # type: ignore[assignment]


class DescribedLater(psycopg.Cursor[Any]):
    @property
    def description(self) -> Any:
        res = self.pgresult
        # As psycopg: columns when the result has fields or says it returned rows ("SELECT ;").
        if res is None or not (res.nfields or res.status in _ROWS):
            return None
        return _Description(_Result(self, res), res.nfields)
