"""The console's KPI page and export downloads, on :mod:`backend.reports`.

``/console/kpis`` shows every KPI of a period and team as a card (figure, counts, target, met or
not in words, the SVG chart, the definition on demand); the filter form reloads only the cards
(``/console/kpis/cards``, htmx) and the address bar follows (``HX-Push-Url``). Downloads are
``GET /console/kpis/exports/{kind}.{fmt}`` with the same filters, streamed from
:func:`backend.reports.exports.export` behind the console's cookie session (``/api`` is bearer
only). The handlers only read the query and render: the work is :func:`kpi_page` and
:func:`download`, which call the reports package (scope, kpis, charts, exports).
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from litestar import Controller, Request, get
from litestar.params import FromPath, FromQuery
from litestar.response import Stream, Template

from backend.auth.models import Role
from backend.console import N_, ConsolePages, NavEntry, i18n, lookups
from backend.console.web import Viewer, parse_id, render, require_console_roles
from backend.deps import Ctx
from backend.errors import HeatCrewError, InvalidInput, NotFound
from backend.reports import charts, exports, kpis, scope
from backend.reports.schemas import Kpi

__all__ = ("PAGES", "download", "kpi_page")

OFFICE = (Role.supervisor, Role.dispatcher, Role.admin)
PAGE = "/console/kpis"
QUICK_PERIODS = (
    ("season", N_("This heating season")),
    ("last30", N_("Last 30 days")),
    ("month", N_("This month")),
)
EXPORT_KINDS = (
    ("orders", N_("Work orders")),
    ("measurements", N_("Temperature measurements")),
    ("kpis", N_("KPIs")),
)
SHOWN = (
    N_("since is not a date (YYYY-MM-DD)."),
    N_("until is not a date (YYYY-MM-DD)."),
    N_("No such period."),
    N_("until is before since."),
    N_("A report covers at most 400 days."),
    N_("Supervisors see the figures of their own team."),
    N_("No such team."),
    N_("No such export."),
    N_("team is not an id."),
)
"""Messages of the filters' errors, so that the catalogues carry them."""


def _date(value: str | None, field: str) -> date | None:
    if value is None or value.strip() == "":
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{field} is not a date (YYYY-MM-DD).", detail={"field": field}) from None


@dataclass(frozen=True, slots=True)
class Filters:
    since: date | None
    until: date | None
    team_id: uuid.UUID | None

    def query(self) -> str:
        """The filters as a query string (empty ones left out), for links and the address bar."""
        pairs = [
            (name, str(value))
            for name, value in (("since", self.since), ("until", self.until), ("team", self.team_id))
            if value is not None
        ]
        return urlencode(pairs)


def read_filters(
    *, today: date, since: str | None, until: str | None, team: str | None, period: str | None = None
) -> Filters:
    """The query's filters; a quick ``period`` (``season``, ``last30``, ``month``) replaces the dates.
    Malformed input is ``400 invalid_input``."""
    team_id = parse_id(team, "team")
    if period:
        choices = scope.quick_periods(today)
        if period not in choices:
            raise InvalidInput("No such period.", detail={"period": period, "known": list(choices)})
        first, last = choices[period]
        return Filters(first, last, team_id)
    return Filters(_date(since, "since"), _date(until, "until"), team_id)


def _card(kpi: Kpi, gettext: Any) -> dict[str, Any]:
    shown = kpis.translated(kpi, gettext)
    return {
        "kpi": shown,
        "value": charts.format_value(shown, shown.value, gettext),
        "target": charts.format_value(shown, shown.target, gettext),
        "chart": charts.render(shown, gettext),
        "met": shown.meets_target,
    }


def kpi_page(
    ctx: Ctx,
    viewer: Viewer,
    *,
    since: str | None,
    until: str | None,
    team: str | None,
    period: str | None,
) -> tuple[int, dict[str, Any]]:
    """The page's status and context: the form (teams the viewer may choose, quick periods), and
    the cards of every KPI, or the filters' error (``400``/``403``/``404``) shown above the form."""
    now = ctx.clock.now()
    today = now.astimezone(ZoneInfo(viewer.timezone)).date()
    gettext = i18n.gettext_callables(viewer.locale)["gettext"]
    context: dict[str, Any] = {
        "quick_periods": QUICK_PERIODS,
        "export_kinds": EXPORT_KINDS,
        "form": {"since": since or "", "until": until or "", "team": team or ""},
        "cards": [],
        "where": None,
        "error": None,
        "page_url": None,
    }
    with ctx.db.session(readonly=True) as session:
        own = scope.own_team_id(session, viewer.principal)
        teams = lookups.teams(session, company_id=viewer.principal.company_id)
        context["teams"] = [t for t in teams if own is None or t.id == own]
        context["restricted"] = own is not None
        try:
            filters = read_filters(today=today, since=since, until=until, team=team, period=period)
            where = scope.resolve(
                session,
                principal=viewer.principal,
                now=now,
                since=filters.since,
                until=filters.until,
                team_id=filters.team_id,
            )
            report = kpis.compute(session, scope=where)
        except HeatCrewError as exc:
            context["error"] = exc
            return exc.status, context
    resolved = Filters(where.since, where.until, where.team_id)
    context.update(
        where=where,
        cards=[_card(k, gettext) for k in report.kpis],
        query=resolved.query(),
        page_url=f"{PAGE}?{resolved.query()}",
        form={
            "since": where.since.isoformat(),
            "until": where.until.isoformat(),
            "team": str(where.team_id or ""),
        },
    )
    return 200, context


@dataclass(frozen=True, slots=True)
class Download:
    chunks: Iterator[bytes]
    media_type: str
    headers: dict[str, str]


def download(
    ctx: Ctx, viewer: Viewer, *, file: str, since: str | None, until: str | None, team: str | None
) -> Download:
    """An export (``orders.csv``, ``kpis.xlsx``…) for the filters, streamed: the read session opens
    when the first chunk is asked for. Raises ``404`` (no such export or team), ``400``, ``403``."""
    kind, _, fmt = file.rpartition(".")
    if kind not in exports.KINDS or fmt not in get_args(exports.Format):
        raise NotFound("No such export.", detail={"kinds": list(exports.KINDS), "formats": ["csv", "xlsx"]})
    now = ctx.clock.now()
    filters = read_filters(
        today=now.astimezone(ZoneInfo(viewer.timezone)).date(), since=since, until=until, team=team
    )
    with ctx.db.session(readonly=True) as session:
        where = scope.resolve(
            session,
            principal=viewer.principal,
            now=now,
            since=filters.since,
            until=filters.until,
            team_id=filters.team_id,
        )
    exports.record_request(ctx.db, principal=viewer.principal, scope=where, kind=kind, fmt=fmt)

    def chunks() -> Iterator[bytes]:
        with ctx.db.session(readonly=True) as session:
            yield from exports.export(
                session,
                scope=where,
                kind=kind,  # type: ignore[arg-type]
                fmt=fmt,  # type: ignore[arg-type]
                requested_by=viewer.principal.user_id,
            )

    return Download(
        chunks=chunks(),
        media_type=exports.CONTENT_TYPES[fmt],
        headers={
            "Content-Disposition": exports.content_disposition(exports.filename(where, kind, fmt)),  # type: ignore[arg-type]
            "Cache-Control": "no-store",
        },
    )


class KpiPageController(Controller):
    path = "/kpis"

    @get("/", sync_to_thread=True)
    def page(
        self,
        request: Request,
        ctx: Ctx,
        viewer: Viewer,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        team: FromQuery[str | None] = None,
        period: FromQuery[str | None] = None,
    ) -> Template:
        require_console_roles(viewer, *OFFICE)
        status, context = kpi_page(ctx, viewer, since=since, until=until, team=team, period=period)
        return render(request, "reports/kpis.html", status=status, **context)

    @get("/cards", sync_to_thread=True)
    def cards(
        self,
        request: Request,
        ctx: Ctx,
        viewer: Viewer,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        team: FromQuery[str | None] = None,
        period: FromQuery[str | None] = None,
    ) -> Template:
        """The form and the cards alone (htmx); the address bar takes the page's URL of these filters."""
        require_console_roles(viewer, *OFFICE)
        status, context = kpi_page(ctx, viewer, since=since, until=until, team=team, period=period)
        push = context["page_url"] or "false"
        return render(
            request, "reports/_kpi_report.html", status=status, headers={"HX-Push-Url": push}, **context
        )

    @get("/exports/{file:str}", sync_to_thread=True)
    def export(
        self,
        ctx: Ctx,
        viewer: Viewer,
        file: FromPath[str],
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        team: FromQuery[str | None] = None,
    ) -> Stream:
        """A download (GET: it changes nothing, so no CSRF token); logged by the export itself."""
        require_console_roles(viewer, *OFFICE)
        out = download(ctx, viewer, file=file, since=since, until=until, team=team)
        return Stream(out.chunks, media_type=out.media_type, headers=out.headers)


PAGES = ConsolePages(
    controllers=[KpiPageController],
    template_dir=Path(__file__).parent / "templates",
    nav=[NavEntry(N_("KPIs"), PAGE, order=40)],
)
