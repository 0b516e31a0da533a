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
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

import sqlalchemy as sa
import structlog
from sqlmodel import Session

from backend.auth.models import User
from backend.evidence.models import Document, Measurement, Signature
from backend.org.models import Building, Household, Team
from backend.reports import kpis
from backend.reports.scope import Scope
from backend.work_orders.models import SlaClock, WorkOrder
from backend.work_orders.sla import clock_status
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
CHUNK = 256 * 1024
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

Batches = Iterator[list[list[Any]]]
# A batch's clocks or signatures in one round trip, not through a server-side cursor row by row.
_BUFFERED = {"stream_results": False}


def neutralise(value: str) -> str:
    """A cell a spreadsheet would run as a formula, as plain text."""
    return "'" + value if value.startswith(_FORMULA_START) else value


# ---------------------------------------------------------------- rows


def _order_rows(session: Session, scope: Scope) -> Batches:
    yield [
        [
            "id",
            "ref",
            "kind",
            "source",
            "state",
            "team",
            "assignee",
            "household",
            "address",
            "received_at",
            "completed_at",
            "closed_at",
            "result",
            "satisfaction",
            *[f"{c}_{part}" for c in CLOCKS for part in ("due", "met", "status")],
        ]
    ]
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
            O.c.received_at,
            O.c.completed_at,
            O.c.closed_at,
            O.c.result,
            O.c.satisfaction,
        )
        .select_from(
            O.join(H, H.c.id == O.c.household_id)
            .join(B, B.c.id == H.c.building_id)
            .join(T, T.c.id == O.c.team_id, isouter=True)
            .join(A, A.c.id == O.c.assignee_id, isouter=True)
        )
        .where(
            O.c.company_id == scope.company_id,
            O.c.received_at >= scope.start,
            O.c.received_at < scope.end,
            *([O.c.team_id == scope.team_id] if scope.team_id else []),
        )
        .order_by(O.c.received_at, O.c.id)
    )
    clocks_query = sa.select(C.c.order_id, C.c.clock, C.c.due_at, C.c.met_at).where(
        C.c.order_id.in_(sa.bindparam("ids", expanding=True))
    )
    result = session.execute(query, execution_options={"yield_per": BATCH})
    for batch in result.partitions():
        by_order: dict[uuid.UUID, dict[str, Any]] = {row[0]: {} for row in batch}
        for clock in session.execute(
            clocks_query, {"ids": list(by_order)}, execution_options=_BUFFERED
        ).all():
            by_order[clock.order_id][clock.clock] = clock
        rows = []
        for r in batch:
            stopped = r.closed_at if r.state == State.cancelled.value else None
            cells: list[Any] = [
                str(r.id),
                order_ref(r.id),
                r.kind,
                r.source,
                r.state,
                r.name,
                r.full_name,
                r.account_number,
                f"{r.address} {r.unit}",
                scope.local(r.received_at),
                scope.local(r.completed_at),
                scope.local(r.closed_at),
                r.result,
                r.satisfaction,
            ]
            for name in CLOCKS:
                clock = by_order[r.id].get(name)
                if clock is None:
                    cells += [None, None, None]
                else:
                    status = clock_status(clock, now=scope.now, stopped_at=stopped)
                    cells += [scope.local(clock.due_at), scope.local(clock.met_at), status]
            rows.append(cells)
        yield rows


def _rooms_text(rooms: Sequence[dict[str, Any]]) -> tuple[str, str]:
    names, readings = [], []
    for room in rooms or []:
        names.append(f"{room.get('name')} ({room.get('kind')})")
        values = "/".join(f"{float(v):.1f}" for v in room.get("readings_c", []))
        readings.append(f"{room.get('name')}: {values}")
    return "; ".join(names), "; ".join(readings)


def _measurement_rows(session: Session, scope: Scope) -> Batches:
    yield [
        [
            "id",
            "measured_at",
            "household",
            "address",
            "order_ref",
            "inspector",
            "instrument",
            "rooms",
            "readings_c",
            "outdoor_c",
            "result",
            "superseded",
            "inspector_signed",
            "resident_signed",
        ]
    ]
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
            M.c.measured_at,
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
        S.c.document_type == "measurement", S.c.document_id.in_(sa.bindparam("ids", expanding=True))
    )
    result = session.execute(query, execution_options={"yield_per": BATCH})
    for batch in result.partitions():
        signed: dict[uuid.UUID, dict[str, str]] = {row[0]: {} for row in batch}
        for sig in session.execute(
            signatures_query, {"ids": list(signed)}, execution_options=_BUFFERED
        ).all():
            signed[sig.document_id][sig.signer_role] = "refused" if sig.refused_reason else "yes"
        rows = []
        for r in batch:
            rooms, readings = _rooms_text(r.rooms)
            roles = signed[r.id]
            rows.append(
                [
                    str(r.id),
                    scope.local(r.measured_at),
                    r.account_number,
                    f"{r.address} {r.unit}",
                    order_ref(r.order_id) if r.order_id else None,
                    r.full_name,
                    r.instrument_id,
                    rooms,
                    readings,
                    r.outdoor_c,
                    r.result,
                    r.superseded_by_id is not None,
                    roles.get("inspector", "no"),
                    roles.get("resident", "no"),
                ]
            )
        yield rows


def _kpi_rows(session: Session, scope: Scope) -> Batches:
    yield [["kpi", "title", "from", "to", "value", "numerator", "denominator", "target", "better"]]
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


_ROWS: dict[str, Callable[[Session, Scope], Batches]] = {
    "orders": _order_rows,
    "measurements": _measurement_rows,
    "kpis": _kpi_rows,
}


# ---------------------------------------------------------------- formats


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str):
        return neutralise(value)
    return value


def _csv(batches: Batches, counter: list[int]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    for rows in batches:
        for row in rows:
            writer.writerow([_csv_cell(v) for v in row])
        counter[0] += len(rows)
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _xlsx(batches: Batches, counter: list[int], sheet: str) -> Iterator[bytes]:
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
        line = 0
        for rows in batches:
            for row in rows:
                for col, value in enumerate(row):
                    if value is None:
                        continue
                    if isinstance(value, bool):
                        worksheet.write_string(line, col, "yes" if value else "no")
                    elif isinstance(value, datetime):
                        worksheet.write_datetime(line, col, value, when)
                    elif hasattr(value, "isoformat") and not isinstance(value, str):
                        worksheet.write_datetime(line, col, datetime(value.year, value.month, value.day), day)
                    elif isinstance(value, int | float):
                        worksheet.write_number(line, col, value)
                    else:
                        worksheet.write_string(line, col, neutralise(str(value)))
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
    counter = [0]
    batches = _ROWS[kind](session, scope)
    chunks = _csv(batches, counter) if fmt == "csv" else _xlsx(batches, counter, kind)
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
