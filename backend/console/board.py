"""The SLA board: every running clock of open orders per team, overdue and soon-due marked; the
table refreshes itself (htmx polling of its fragment) without reloading the page."""

import uuid
from datetime import timedelta

from litestar import Controller, Request, get
from litestar.params import FromQuery
from litestar.response import Template

from backend.console import N_, ConsolePages, NavEntry, lookups
from backend.console.web import Viewer, parse_id, render
from backend.deps import Ctx
from backend.work_orders import views

__all__ = ("PAGES",)

SOON = timedelta(minutes=60)
# Every running clock, not only those due soon: the board shows the whole open workload.
HORIZON = timedelta(days=366)


def board_rows(ctx: Ctx, viewer: Viewer, team_id: uuid.UUID | None) -> dict:
    now = ctx.clock.now()
    with ctx.db.session(readonly=True) as session:
        entries = views.board(session, principal=viewer.principal, now=now, soon=HORIZON, team_id=team_id)
        team_list = lookups.teams(session, company_id=viewer.principal.company_id)
        names = lookups.people_names(session, company_id=viewer.principal.company_id)
    team_names = {t.id: t.name for t in team_list}
    rows = [
        {
            "entry": entry,
            "team": team_names.get(entry.team_id, "") if entry.team_id else "",
            "assignee": names.get(entry.assignee_id, "") if entry.assignee_id else "",
            "status": "overdue"
            if entry.minutes_left < 0
            else ("soon" if entry.minutes_left <= SOON.total_seconds() // 60 else "running"),
        }
        for entry in entries
    ]
    return {"rows": rows, "teams": team_list, "team_id": team_id, "now": now}


class BoardController(Controller):
    path = "/board"

    @get("/", sync_to_thread=True)
    def page(
        self, request: Request, ctx: Ctx, viewer: Viewer, team: FromQuery[str | None] = None
    ) -> Template:
        return render(
            request,
            "console/board.html",
            refresh=ctx.settings.console_board_refresh,
            **board_rows(ctx, viewer, parse_id(team, "team")),
        )

    @get("/table", sync_to_thread=True, opt={"console_passive": True})
    def table(
        self, request: Request, ctx: Ctx, viewer: Viewer, team: FromQuery[str | None] = None
    ) -> Template:
        return render(request, "console/_board_table.html", **board_rows(ctx, viewer, parse_id(team, "team")))


PAGES = ConsolePages(
    controllers=[BoardController], nav=[NavEntry(N_("SLA board"), "/console/board", order=20)]
)
