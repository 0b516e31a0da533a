"""Exports (orders, measurements, KPIs) as CSV or XLSX, streamed from a read session.

Rows come from the database in batches (``yield_per``: a server-side cursor on PostgreSQL), each
batch's clocks or signatures by one more query, and leave as byte chunks: an export of 100k
orders never sits in memory. CSV is UTF-8 with a BOM (Excel then reads Chinese text correctly);
XLSX is written by XlsxWriter in constant-memory mode to a temporary file, which is then streamed
and removed. Times are the company's local times. A text cell that a spreadsheet would take for a
formula (starting with = + - @, or a tab or carriage return) gets a leading apostrophe.

Residents' phone numbers are never exported, nor their names; a household is its account number
and address. Every export is logged (``export`` line: who, what, filters, rows) for the audit of
personal data leaving the system.
"""

import csv
import io
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import structlog
from sqlmodel import Session

from backend import audit
from backend.auth.models import User
from backend.auth.principal import Principal
from backend.db.engine import Database
from backend.db.lists import one_of
from backend.evidence.models import Document, Measurement, Signature
from backend.org.models import Building, Household, Team
from backend.reports import kpis
from backend.reports.scope import Scope
from backend.work_orders.models import SlaClock, WorkOrder
from backend.work_orders.sla import status_of
from backend.work_orders.states import State
from backend.work_orders.views import order_ref
from mobile_contract.reference import ClockName

__all__ = (
    "BATCH",
    "CONTENT_TYPES",
    "KINDS",
    "content_disposition",
    "export",
    "filename",
    "neutralise",
)

log = structlog.get_logger("heatcrew.reports")

Kind = Literal["orders", "measurements", "kpis"]
Format = Literal["csv", "xlsx"]
KINDS: tuple[Kind, ...] = ("orders", "measurements", "kpis")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
BATCH = 2000
CHUNK = 64 * 1024
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

O = WorkOrder.__table__  # noqa: E741
C = SlaClock.__table__
H = Household.__table__
B = Building.__table__
T = Team.__table__
A = User.__table__.alias("assignee")
I = User.__table__.alias("inspector")  # noqa: E741
M = Measurement.__table__
D = Document.__table__
S = Signature.__table__
CLOCKS = [c.value for c in ClockName]

# A column's kind decides its formatting, chosen once per column, not per cell.
PLAIN = "plain"  # text the system wrote (ids, refs, enum values): never a formula
TEXT = "text"  # text people wrote: neutralised
TIME = "time"  # an aware UTC instant, shown in the company's zone
DATE = "date"
NUMBER = "number"
FLAG = "flag"  # a bool: yes / no
ColumnKind = Literal["plain", "text", "time", "date", "number", "flag"]
Columns = list[tuple[str, ColumnKind]]
Batches = Iterator[list[list[Any]]]
# A batch's clocks or signatures in one round trip, not through a server-side cursor row by row.
_BUFFERED = {"stream_results": False}
_SLOT = 900  # seconds: a zone's offset is looked up once per quarter hour of UTC time
_EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)  # serial 0 (dates after 1900-03-01)
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = _UTC_EPOCH.replace(tzinfo=None)
_DAY = timedelta(days=1)


def neutralise(value: str) -> str:
    """A cell a spreadsheet would run as a formula, as plain text."""
    return "'" + value if value.startswith(_FORMULA_START) else value


class LocalTimes:
    """Aware instants (in any zone) as the company's naive local times, without a zone lookup per value.

    The offset is found once per quarter hour of UTC time and cached; a quarter hour in which the
    offset changes (a DST transition) is never cached, so every value is converted exactly.
    """

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._offsets: dict[int, timedelta] = {}

    def offset(self, moment: datetime) -> timedelta:
        slot = int(moment.timestamp()) // _SLOT
        found = self._offsets.get(slot)
        if found is None:
            found = moment.astimezone(self.zone).utcoffset()
            assert found is not None
            first = datetime.fromtimestamp(slot * _SLOT, UTC).astimezone(self.zone).utcoffset()
            last = datetime.fromtimestamp(slot * _SLOT + _SLOT - 1, UTC).astimezone(self.zone).utcoffset()
            if first == last == found:
                self._offsets[slot] = found
        return found

    def local(self, moment: datetime | None) -> datetime | None:
        if moment is None:
            return None
        return _NAIVE_EPOCH + ((moment - _UTC_EPOCH) + self.offset(moment))

    def text(self, moment: datetime | None) -> str | None:
        if moment is None:
            return None
        return (_NAIVE_EPOCH + ((moment - _UTC_EPOCH) + self.offset(moment))).isoformat(" ", "seconds")

    def serial(self, moment: datetime) -> float:
        """The spreadsheet's date serial of the local time (what XlsxWriter's write_datetime writes)."""
        return (moment - _EXCEL_EPOCH + self.offset(moment)) / _DAY


# ---------------------------------------------------------------- rows

_ORDER_COLUMNS: Columns = [
    ("id", PLAIN),
    ("ref", PLAIN),
    ("kind", PLAIN),
    ("source", PLAIN),
    ("state", PLAIN),
    ("team", TEXT),
    ("assignee", TEXT),
    ("household", TEXT),
    ("address", TEXT),
    ("received_at", TIME),
    ("completed_at", TIME),
    ("closed_at", TIME),
    ("result", TEXT),
    ("satisfaction", NUMBER),
    *[
        (f"{c}_{part}", kind)
        for c in CLOCKS
        for part, kind in (("due", TIME), ("met", TIME), ("status", PLAIN))
    ],
]


def _stream(session: Session, query: Any) -> Iterator[Sequence[Any]]:
    """The query's rows as plain tuples, ``BATCH`` at a time (a server-side cursor on PostgreSQL)."""
    result = session.connection().execution_options(stream_results=True, max_row_buffer=BATCH).execute(query)
    try:
        yield from result.partitions(BATCH)
    finally:
        result.close()


def _instant(column: Any, session: Session) -> Any:
    """A UTCDateTime column as the driver returns it on PostgreSQL (aware, in the session's zone:
    LocalTimes takes any aware value), skipping the per-value conversion to UTC; as is on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.type_coerce(column, sa.DateTime(timezone=True)).label(f"{column.table.name}_{column.name}")
    return column


def _order_rows(session: Session, scope: Scope) -> Batches:
    """One row per order with its clocks side by side: each clock by its unique (order, name)."""
    clocks = {name: C.alias(f"clock_{name}") for name in CLOCKS}
    source = (
        O.join(H, H.c.id == O.c.household_id)
        .join(B, B.c.id == H.c.building_id)
        .join(T, T.c.id == O.c.team_id, isouter=True)
        .join(A, A.c.id == O.c.assignee_id, isouter=True)
    )
    for name, clock in clocks.items():
        source = source.join(clock, sa.and_(clock.c.order_id == O.c.id, clock.c.clock == name), isouter=True)
    query = (
        sa.select(
            O.c.id,
            O.c.kind,
            O.c.source,
            O.c.state,
            T.c.name,
            A.c.full_name,
            H.c.account_number,
            B.c.address,
            H.c.unit,
            _instant(O.c.received_at, session),
            _instant(O.c.completed_at, session),
            _instant(O.c.closed_at, session),
            O.c.result,
            O.c.satisfaction,
            *[_instant(c.c[k], session) for c in clocks.values() for k in ("due_at", "met_at")],
        )
        .select_from(source)
        .where(
            O.c.company_id == scope.company_id,
            O.c.received_at >= scope.start,
            O.c.received_at < scope.end,
            *([O.c.team_id == scope.team_id] if scope.team_id else []),
        )
        .order_by(O.c.received_at, O.c.id)
    )
    now, cancelled = scope.now, State.cancelled.value
    for batch in _stream(session, query):
        rows = []
        for oid, kind, origin, state, team, assignee, account, address, unit, *rest in batch:
            stopped = rest[2] if state == cancelled else None  # a cancelled order's closed_at
            row = [
                str(oid),
                oid.hex[-8:].upper(),  # views.order_ref
                kind,
                origin,
                state,
                team,
                assignee,
                account,
                f"{address} {unit}",
                *rest[:5],
            ]
            times = rest[5:]  # (due_at, met_at) of each clock name, in CLOCKS order
            for i in range(0, len(times), 2):
                due_at, met_at = times[i], times[i + 1]
                if due_at is None:
                    row += (None, None, None)
                else:
                    row += (due_at, met_at, status_of(due_at, met_at, now=now, stopped_at=stopped))
            rows.append(row)
        yield rows


def _rooms_text(rooms: Sequence[dict[str, Any]]) -> tuple[str, str]:
    names, readings = [], []
    for room in rooms or []:
        names.append(f"{room.get('name')} ({room.get('kind')})")
        values = "/".join(f"{float(v):.1f}" for v in room.get("readings_c", []))
        readings.append(f"{room.get('name')}: {values}")
    return "; ".join(names), "; ".join(readings)


_MEASUREMENT_COLUMNS: Columns = [
    ("id", PLAIN),
    ("measured_at", TIME),
    ("household", TEXT),
    ("address", TEXT),
    ("order_ref", PLAIN),
    ("inspector", TEXT),
    ("instrument", TEXT),
    ("rooms", TEXT),
    ("readings_c", TEXT),
    ("outdoor_c", NUMBER),
    ("result", PLAIN),
    ("superseded", FLAG),
    ("inspector_signed", PLAIN),
    ("resident_signed", PLAIN),
]


def _measurement_rows(session: Session, scope: Scope) -> Batches:
    source = (
        M.join(H, H.c.id == M.c.household_id)
        .join(B, B.c.id == H.c.building_id)
        .join(I, I.c.id == M.c.user_id, isouter=True)
        .join(O, O.c.id == M.c.order_id, isouter=True)
        .join(D, D.c.id == M.c.id, isouter=True)
    )
    team = []
    if scope.team_id is not None:
        team = [sa.func.coalesce(O.c.team_id, I.c.team_id) == scope.team_id]
    query = (
        sa.select(
            M.c.id,
            _instant(M.c.measured_at, session),
            H.c.account_number,
            B.c.address,
            H.c.unit,
            M.c.order_id,
            I.c.full_name,
            M.c.instrument_id,
            M.c.rooms,
            M.c.outdoor_c,
            M.c.result,
            D.c.superseded_by_id,
        )
        .select_from(source)
        .where(
            M.c.company_id == scope.company_id,
            M.c.measured_at >= scope.start,
            M.c.measured_at < scope.end,
            *team,
        )
        .order_by(M.c.measured_at, M.c.id)
    )
    signatures_query = sa.select(S.c.document_id, S.c.signer_role, S.c.refused_reason).where(
        S.c.document_type == "measurement", one_of(S.c.document_id, "ids")
    )
    for batch in _stream(session, query):
        signed: dict[uuid.UUID, dict[str, str]] = {row[0]: {} for row in batch}
        for document_id, role, refused in session.execute(
            signatures_query, {"ids": list(signed)}, execution_options=_BUFFERED
        ).all():
            signed[document_id][role] = "refused" if refused else "yes"
        rows = []
        for mid, measured_at, account, address, unit, order_id, inspector, instrument, *rest in batch:
            room_list, outdoor, result, superseded_by = rest
            rooms, readings = _rooms_text(room_list)
            roles = signed[mid]
            rows.append(
                [
                    str(mid),
                    measured_at,
                    account,
                    f"{address} {unit}",
                    order_ref(order_id) if order_id else None,
                    inspector,
                    instrument,
                    rooms,
                    readings,
                    outdoor,
                    result,
                    superseded_by is not None,
                    roles.get("inspector", "no"),
                    roles.get("resident", "no"),
                ]
            )
        yield rows


_KPI_COLUMNS: Columns = [
    ("kpi", PLAIN),
    ("title", PLAIN),
    ("from", DATE),
    ("to", DATE),
    ("value", NUMBER),
    ("numerator", NUMBER),
    ("denominator", NUMBER),
    ("target", NUMBER),
    ("better", PLAIN),
]


def _kpi_rows(session: Session, scope: Scope) -> Batches:
    report = kpis.compute(session, scope=scope)
    rows: list[list[Any]] = []
    for kpi in report.kpis:
        common = [kpi.target, kpi.better]
        rows.append(
            [
                kpi.name,
                kpi.title,
                report.since,
                report.until,
                kpi.value,
                kpi.numerator,
                kpi.denominator,
                *common,
            ]
        )
        for point in kpi.series:
            rows.append(
                [
                    kpi.name,
                    kpi.title,
                    point.start,
                    point.end,
                    point.value,
                    point.numerator,
                    point.denominator,
                    *common,
                ]
            )
    yield rows


_ROWS: dict[str, tuple[Columns, Callable[[Session, Scope], Batches]]] = {
    "orders": (_ORDER_COLUMNS, _order_rows),
    "measurements": (_MEASUREMENT_COLUMNS, _measurement_rows),
    "kpis": (_KPI_COLUMNS, _kpi_rows),
}


# ---------------------------------------------------------------- formats


def _neutral_text(value: Any) -> Any:
    return neutralise(value) if isinstance(value, str) else value


def _flag(value: Any) -> Any:
    return None if value is None else ("yes" if value else "no")


def _csv(columns: Columns, batches: Batches, counter: list[int], times: LocalTimes) -> Iterator[bytes]:
    """csv.writer on a StringIO, flushed as UTF-8 in chunks of about ``CHUNK``; None is empty."""
    convert: dict[str, Callable[[Any], Any]] = {TEXT: _neutral_text, TIME: times.text, FLAG: _flag}
    converters = [(i, convert[kind]) for i, (_, kind) in enumerate(columns) if kind in convert]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow([name for name, _ in columns])
    for rows in batches:
        for row in rows:
            for i, fn in converters:
                row[i] = fn(row[i])
        writer.writerows(rows)
        counter[0] += len(rows)
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _xlsx(
    columns: Columns, batches: Batches, counter: list[int], sheet: str, times: LocalTimes
) -> Iterator[bytes]:
    import xlsxwriter  # here: only an XLSX export needs it (~1.5 MiB a worker would hold for nothing)

    handle, path = tempfile.mkstemp(prefix="heatcrew-export-", suffix=".xlsx")
    os.close(handle)
    try:
        workbook = xlsxwriter.Workbook(
            path, {"constant_memory": True, "tmpdir": tempfile.gettempdir(), "strings_to_formulas": False}
        )
        worksheet = workbook.add_worksheet(sheet)
        when = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        day = workbook.add_format({"num_format": "yyyy-mm-dd"})
        string, number = worksheet.write_string, worksheet.write_number
        epoch = _EXCEL_EPOCH.date()
        # One writer per column, chosen once: (line, col, value) for a value that is not None.
        by_kind: dict[str, Callable[[int, int, Any], Any]] = {
            PLAIN: lambda r, c, v: string(r, c, str(v)),
            TEXT: lambda r, c, v: string(r, c, neutralise(str(v))),
            TIME: lambda r, c, v: number(r, c, times.serial(v), when),
            DATE: lambda r, c, v: number(r, c, (v - epoch).days, day),
            NUMBER: lambda r, c, v: number(r, c, v),
            FLAG: lambda r, c, v: string(r, c, "yes" if v else "no"),
        }
        writers = list(enumerate(by_kind[kind] for _, kind in columns))
        for col, (name, _) in enumerate(columns):
            string(0, col, name)
        line = 1
        for rows in batches:
            for row in rows:
                for col, write in writers:
                    value = row[col]
                    if value is not None:
                        write(line, col, value)
                line += 1
            counter[0] += len(rows)
        workbook.close()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
    finally:
        os.unlink(path)


def export(
    session: Session, *, scope: Scope, kind: Kind, fmt: Format, requested_by: uuid.UUID | None = None
) -> Iterator[bytes]:
    """The export as byte chunks; the session must stay open while they are consumed.

    The header row counts as a row in the audit line's ``rows`` less one.
    """
    counter = [1]  # the header row
    columns, rows = _ROWS[kind]
    batches, times = rows(session, scope), LocalTimes(scope.zone)
    if fmt == "csv":
        chunks = _csv(columns, batches, counter, times)
    else:
        chunks = _xlsx(columns, batches, counter, kind, times)
    complete = False
    try:
        yield from chunks
        complete = True
    finally:
        log.info(
            "export",
            kind=kind,
            format=fmt,
            user_id=str(requested_by) if requested_by else None,
            company_id=str(scope.company_id),
            team_id=str(scope.team_id) if scope.team_id else None,
            since=scope.since.isoformat(),
            until=scope.until.isoformat(),
            rows=max(counter[0] - 1, 0),
            complete=complete,
        )


def filename(scope: Scope, kind: Kind, fmt: Format) -> str:
    team = f"-{scope.team_name}" if scope.team_name else ""
    return f"heatcrew-{kind}{team}-{scope.since.isoformat()}_{scope.until.isoformat()}.{fmt}"


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback and the real name per RFC 5987 (``filename*``)."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\%' else "_" for ch in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


PERSONAL_KINDS: frozenset[str] = frozenset({"orders", "measurements"})
"""Exports that name households (addresses) and staff; the KPIs are figures only."""


def record_request(db: Database, *, principal: Principal, scope: Scope, kind: str, fmt: str) -> None:
    """Put an export of personal data in the audit log, in a transaction of its own, when it is
    asked for: a download cut half-way has still shown what it showed. Its row count is in the
    export's log line."""
    if kind not in PERSONAL_KINDS:
        return
    with db.session() as session:
        audit.record_export(
            session,
            company_id=scope.company_id,
            actor_user_id=principal.user_id,
            actor_device_id=principal.device_id,
            export=f"{kind}.{fmt}",
            filters={
                "since": scope.since.isoformat(),
                "until": scope.until.isoformat(),
                "team_id": str(scope.team_id) if scope.team_id else None,
            },
        )
