"""What every benchmark hands the runner (``python -m bench``): figures, each beside its floor.

A benchmark is a module ``bench/<name>_bench.py`` with a function

    def figures(*, quick: bool = False, database_url: str | None = None) -> list[Figure]

(``database_url`` only if it can use PostgreSQL: the runner then gives it a database of its own,
recreated; without one it uses SQLite.) It may print as it goes; what it returns is the table. A
*floor* is the same figure for the least that could be done, measured in the same run on the same
machine (a bare Litestar app, ``SELECT 1``, Pillow decoding alone, the idle server's memory), so
that the ratio survives the machine's drift better than the figure does. A *target* is what the
figure should meet, as written where the feature is documented; none is invented here.
"""

import math
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

__all__ = ("Figure", "fresh_postgres", "print_table")


@dataclass(frozen=True, slots=True)
class Figure:
    benchmark: str
    figure: str
    value: float
    unit: str
    floor: float | None = None
    floor_is: str = ""  # what the floor measured
    target: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.floor is None or not self.floor or math.isnan(self.floor) or math.isnan(self.value):
            return None
        return self.value / self.floor

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Figure":
        return cls(**data)


def _number(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "—"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def rows_of(figures: list[Figure]) -> list[list[str]]:
    rows = []
    for f in figures:
        ratio = f.ratio
        floor = _number(f.floor, f.unit) + (f" ({f.floor_is})" if f.floor_is and f.floor is not None else "")
        rows.append(
            [
                f.benchmark,
                f.figure + (f" [{f.note}]" if f.note else ""),
                _number(f.value, f.unit),
                floor,
                "—" if ratio is None else f"{ratio:.2f}x",
                f.target or "—",
            ]
        )
    return rows


HEADER = ["benchmark", "figure", "value", "floor (same run)", "ratio", "target"]


def print_table(figures: list[Figure], *, markdown: bool = False) -> str:
    """The one table: benchmark, figure, value, floor, ratio, target (plain text or Markdown)."""
    rows = rows_of(figures)
    if markdown:
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(HEADER)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    text = "\n".join(lines)
    print(text)
    return text


def fresh_postgres(url: str) -> None:
    """Drop and create the URL's database (a benchmark starts from nothing)."""
    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
