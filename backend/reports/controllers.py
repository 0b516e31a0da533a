"""HTTP layer of reports: KPIs, their charts, exports. Office roles; thin."""

import uuid
from collections.abc import Iterator
from datetime import date
from typing import get_args

from litestar import Controller, Response, get
from litestar.params import FromPath, FromQuery
from litestar.response import Stream

from backend.auth.guards import require_roles
from backend.context import AppContext
from backend.contract.answers import answers
from backend.deps import Caller, Ctx
from backend.errors import NotFound
from backend.reports import charts, exports, kpis, scope
from backend.reports.schemas import KpiReport
from mobile_contract.errors import ErrorCode

__all__ = ("ReportController",)

OFFICE = require_roles(*scope.OFFICE_ROLES)
_E = ErrorCode
ANSWERS = {"answers": answers(_E.invalid_input, _E.not_found)}


def _scope(
    ctx: AppContext,
    principal: Caller,
    since: date | None,
    until: date | None,
    team: uuid.UUID | None,
) -> scope.Scope:
    with ctx.db.session(readonly=True) as session:
        return scope.resolve(
            session, principal=principal, now=ctx.clock.now(), since=since, until=until, team_id=team
        )


class ReportController(Controller):
    path = "/api/v1/reports"
    tags = ["reports"]
    guards = [OFFICE]

    @get("/kpis", sync_to_thread=True, opt=ANSWERS)
    def kpis(
        self,
        ctx: Ctx,
        principal: Caller,
        since: FromQuery[date | None] = None,
        until: FromQuery[date | None] = None,
        team: FromQuery[uuid.UUID | None] = None,
    ) -> KpiReport:
        """Every KPI for a period of local days (default: the current heating season, 15 Nov – 15 Mar)
        and perhaps one team; supervisors with a team see that team's figures."""
        where = _scope(ctx, principal, since, until, team)
        with ctx.db.session(readonly=True) as session:
            return kpis.compute(session, scope=where)

    @get("/kpis/{chart:str}", sync_to_thread=True, opt=ANSWERS, media_type="image/svg+xml")
    def chart(
        self,
        ctx: Ctx,
        principal: Caller,
        chart: FromPath[str],
        since: FromQuery[date | None] = None,
        until: FromQuery[date | None] = None,
        team: FromQuery[uuid.UUID | None] = None,
    ) -> Response[str]:
        """One KPI as an SVG chart (`{name}.svg`, ~320×120): its series, the target as a line."""
        name, _, suffix = chart.rpartition(".")
        if suffix != "svg" or name not in kpis.KPI_NAMES:
            raise NotFound("No such chart.", detail={"known": [f"{n}.svg" for n in kpis.KPI_NAMES]})
        where = _scope(ctx, principal, since, until, team)
        with ctx.db.session(readonly=True) as session:
            kpi = kpis.compute(session, scope=where, names=[name]).kpi(name)
        return Response(str(charts.render(kpi)), media_type="image/svg+xml")

    @get("/exports/{file:str}", sync_to_thread=True, opt=ANSWERS)
    def export(
        self,
        ctx: Ctx,
        principal: Caller,
        file: FromPath[str],
        since: FromQuery[date | None] = None,
        until: FromQuery[date | None] = None,
        team: FromQuery[uuid.UUID | None] = None,
    ) -> Stream:
        """Orders, measurements or KPIs (`orders.csv`, `measurements.xlsx`, `kpis.csv`…), streamed.
        CSV is UTF-8 with a BOM; residents' phone numbers are never exported; every export is logged."""
        kind, _, fmt = file.rpartition(".")
        if kind not in exports.KINDS or fmt not in get_args(exports.Format):
            raise NotFound(
                "No such export.", detail={"kinds": list(exports.KINDS), "formats": ["csv", "xlsx"]}
            )
        where = _scope(ctx, principal, since, until, team)
        exports.record_request(ctx.db, principal=principal, scope=where, kind=kind, fmt=fmt)

        def chunks() -> Iterator[bytes]:
            with ctx.db.session(readonly=True) as session:
                yield from exports.export(
                    session,
                    scope=where,
                    kind=kind,
                    fmt=fmt,
                    requested_by=principal.user_id,  # type: ignore[arg-type]
                )

        return Stream(
            chunks(),
            media_type=exports.CONTENT_TYPES[fmt],
            headers={
                "Content-Disposition": exports.content_disposition(exports.filename(where, kind, fmt)),  # type: ignore[arg-type]
                "Cache-Control": "no-store",
            },
        )
