"""Walking a company's audit chain and reporting its first broken link.

From the anchor (or the genesis hash) each row must come next in sequence, carry the previous
row's hash as ``prev_hash``, and hash to its own ``hash``. The first row that does not says what
happened:

- ``deleted``: a sequence number is missing (rows removed);
- ``reordered``: the row is intact but belongs elsewhere (it hashes right at the place its
  ``prev_hash`` points to);
- ``edited``: the row's fields no longer give its hash;
- ``relinked``: the row is intact but the row before is not the one it was chained to (that one
  was rewritten with a fresh hash, or rows were removed and the rest renumbered).

The last rows of a chain can be cut without a trace in the chain itself: the report gives the
head (sequence and hash) so that an auditor can keep it elsewhere and compare later.
"""

import uuid
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlmodel import Session

from backend.audit.models import AuditAnchor, AuditEvent
from backend.audit.service import GENESIS, chained_fields, row_hash

__all__ = ("Break", "ChainReport", "companies", "verify_chain")

BreakKind = Literal["deleted", "reordered", "edited", "relinked"]
BATCH = 1000
# How far from where it stands a moved row's own place is looked for.
SEARCH = 64


@dataclass(frozen=True, slots=True)
class Break:
    seq: int
    """Where the chain breaks: the first missing, misplaced or edited sequence number."""
    kind: BreakKind
    message: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    company_id: uuid.UUID
    events: int
    """Rows checked (up to the break)."""
    anchor_seq: int
    """The last pruned sequence number (0: nothing pruned)."""
    head_seq: int
    head_hash: str
    broken: Break | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def companies(session: Session) -> list[uuid.UUID]:
    """Every company that has a chain (or had one, before pruning)."""
    table, anchors = AuditEvent.__table__, AuditAnchor.__table__
    ids = session.execute(
        sa.union(sa.select(table.c.company_id).distinct(), sa.select(anchors.c.company_id))
    ).scalars()
    return sorted(ids)


def verify_chain(session: Session, *, company_id: uuid.UUID) -> ChainReport:
    table = AuditEvent.__table__
    anchor = session.execute(
        sa.select(AuditAnchor.seq, AuditAnchor.hash).where(AuditAnchor.company_id == company_id)
    ).first()
    anchor_seq, prev = (int(anchor[0]), str(anchor[1])) if anchor is not None else (0, GENESIS)
    start = (anchor_seq, prev)
    expected = anchor_seq + 1
    checked = 0
    after = 0
    while True:
        rows = session.execute(
            sa.select(table)
            .where(table.c.company_id == company_id, table.c.seq > after)
            .order_by(table.c.seq)
            .limit(BATCH)
        ).all()
        for row in rows:
            if row.seq < expected:  # a row at or below the anchor: pruning should have removed it
                after = row.seq
                continue
            broken = _check(session, row, expected=expected, prev=prev, anchor=start)
            if broken is not None:
                return ChainReport(company_id, checked, anchor_seq, expected - 1, prev, broken)
            checked += 1
            prev = row.hash
            expected = row.seq + 1
            after = row.seq
        if len(rows) < BATCH:
            return ChainReport(company_id, checked, anchor_seq, expected - 1, prev, None)


def _recomputed(row: sa.Row, seq: int) -> str:
    fields = chained_fields(
        company_id=row.company_id,
        seq=seq,
        at=row.at,
        event=row.event,
        actor_user_id=row.actor_user_id,
        actor_device_id=row.actor_device_id,
        target_type=row.target_type,
        target_id=row.target_id,
        request_id=row.request_id,
        detail=row.detail or {},
    )
    return row_hash(row.prev_hash, fields)


def _check(
    session: Session, row: sa.Row, *, expected: int, prev: str, anchor: tuple[int, str]
) -> Break | None:
    if row.seq != expected:
        missing = f"{expected}" if row.seq == expected + 1 else f"{expected}–{row.seq - 1}"
        return Break(expected, "deleted", f"row {missing} is missing: the chain jumps to {row.seq}")
    if _recomputed(row, row.seq) != row.hash:
        home = _place_of(session, row, anchor=anchor)
        if home is not None and home != row.seq:
            return Break(
                row.seq,
                "reordered",
                f"row {row.seq} is intact but belongs at {home}: rows were moved",
            )
        return Break(row.seq, "edited", f"row {row.seq} was edited: its fields do not give its hash")
    if row.prev_hash != prev:
        return Break(
            row.seq - 1,
            "relinked",
            f"row {row.seq} was chained to another row {row.seq - 1}: "
            "that row was replaced, or rows were renumbered",
        )
    return None


def _place_of(session: Session, row: sa.Row, *, anchor: tuple[int, str]) -> int | None:
    """The sequence number at which this row's hash holds: right after the row its ``prev_hash``
    names (or after the anchor). None when there is no such place."""
    anchor_seq, anchor_hash = anchor
    if row.prev_hash == anchor_hash:
        candidate = anchor_seq + 1
    else:
        table = AuditEvent.__table__
        before = session.execute(
            sa.select(table.c.seq).where(table.c.company_id == row.company_id, table.c.hash == row.prev_hash)
        ).first()
        if before is None:
            return None
        # The row it follows may itself have been moved: its own hash says where it was.
        candidate = int(before[0]) + 1
        moved = session.execute(
            sa.select(table).where(table.c.company_id == row.company_id, table.c.seq == before[0])
        ).first()
        if moved is not None and _recomputed(moved, moved.seq) != moved.hash:
            for seq in range(max(anchor_seq + 1, int(before[0]) - SEARCH), int(before[0]) + SEARCH):
                if _recomputed(moved, seq) == moved.hash:
                    candidate = seq + 1
                    break
    return candidate if _recomputed(row, candidate) == row.hash else None
