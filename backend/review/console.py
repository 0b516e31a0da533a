"""The supervisor's review pages in the web console: the queue (``/console/review``) and an item
(``/console/review/{id}``) with its evidence and the decisions, plus the routes that stream a
photo's copies and a document's PDF with the console's cookie session
(``/console/evidence/...``; the API's own routes are bearer-only).

Handlers parse the form or query, call :mod:`backend.review.service` (the API's own functions)
and render; a service error is shown on the page with its stable code, at its status, and
nothing is written. Supervisors and admins decide; dispatchers see the same pages without the
forms (a POST of theirs is ``403 forbidden``).
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeAlias
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Response, Stream, Template
from sqlmodel import Session

from backend.auth.models import Role
from backend.console import N_, ConsolePages, NavEntry, lookups
from backend.console.web import Viewer, parse_id, render, require_console_roles
from backend.deps import Ctx
from backend.errors import HeatCrewError, InvalidInput
from backend.evidence.blobs import serve_blob
from backend.evidence.controllers import pdf_response, visible_document
from backend.review import service
from backend.review.rules import ReviewFlag
from backend.review.schemas import RedoItem
from mobile_contract.actions import PhotoPurpose
from mobile_contract.reference import WorkOrderKind

__all__ = ("PAGES", "EvidenceController", "ReviewController")

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
DECIDING = (Role.supervisor, Role.admin)
PAGE_SIZE = 50
DEFAULT_PERIOD_DAYS = 30
"""The queue starts at the last 30 days (the counts stop at ``service.COUNT_CAP`` whatever the period)."""
STATUS_CHOICES = ("open", "pending", "redo_answered", "redo_requested", "approved", "rejected")
DOCUMENT_TYPES = ("receipt", "damage_slip", "measurement", "meter", "stop_resume")
MAX_NOTE = 1000
DONE = ("approved", "rejected", "redo_requested")

MESSAGES = (
    N_("No such review item."),
    N_("Only the order's own team's supervisor decides on it."),
    N_("A redo request of this item is still open."),
    N_("The order was cancelled: nothing about it can be redone."),
    N_("The order has nobody to redo the work."),
    N_("A redo request is due in the future."),
    N_("Name at least one thing to redo."),
    N_("Choose when the redo is due."),
    N_("Give the reason for rejecting."),
    N_("The text is too long."),
    N_("A filter's value is not one the queue knows."),
    N_("This date is not a date."),
    N_("No such document."),
    N_("No such file."),
    N_("Originals keep their GPS data and are for supervisors only."),
    N_("This `after` is not one the queue handed out."),
)
"""Service and form messages the pages show, marked for the catalogues."""


# ---------------------------------------------------------------- the queue's filters


@dataclass(frozen=True, slots=True)
class QueueFilters:
    """The queue's filters as the page's query holds them (local days in the company's zone)."""

    status: str = "open"
    team_id: uuid.UUID | None = None
    kind: str | None = None
    flag: str | None = None
    since: date | None = None
    until: date | None = None
    since_is_default: bool = False
    after: str | None = None

    def where(self, timezone: str) -> service.QueueFilter:
        """These filters as the service reads them: ``since`` 00:00 and the day after ``until``
        00:00, local, as UTC (both days included)."""
        zone = ZoneInfo(timezone)

        def start(day: date | None) -> datetime | None:
            return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC) if day else None

        return service.QueueFilter(
            statuses=None if self.status == "open" else (self.status,),
            team_id=self.team_id,
            kind=self.kind,
            flag=self.flag,
            since=start(self.since),
            until=start(self.until + timedelta(days=1) if self.until else None),
        )

    def query(self, **changes: Any) -> str:
        """The query string of these filters (``after`` dropped unless given): a shareable URL."""
        f = replace(self, **{"after": None, **changes})
        params = {
            "status": f.status,
            "team": str(f.team_id) if f.team_id else "",
            "kind": f.kind or "",
            "flag": f.flag or "",
            "since": f.since.isoformat() if f.since else "",
            "until": f.until.isoformat() if f.until else "",
        }
        if f.after:
            params["after"] = f.after
        return urlencode(params)


def _choice(value: str | None, allowed: Any, field: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise InvalidInput(
            "A filter's value is not one the queue knows.", detail={"field": field, "allowed": list(allowed)}
        )
    return value


def _day(value: str, field: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("This date is not a date.", detail={"field": field}) from None
    if not 2000 <= day.year < 2100:
        raise InvalidInput("This date is not a date.", detail={"field": field})
    return day


def parse_filters(
    ctx: Ctx,
    viewer: Viewer,
    status: FromQuery[str | None] = None,
    team: FromQuery[str | None] = None,
    kind: FromQuery[str | None] = None,
    flag: FromQuery[str | None] = None,
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    after: FromQuery[str | None] = None,
) -> QueueFilters:
    """The query's filters, for the queue page and its rows alike (a dependency of both);
    ``since`` absent (not empty) is the default period, the last 30 days."""
    default_day = _today(ctx, viewer) - timedelta(days=DEFAULT_PERIOD_DAYS)
    start = default_day if since is None else _day(since, "since")
    return QueueFilters(
        status=_choice(status, STATUS_CHOICES, "status") or "open",
        team_id=parse_id(team, "team"),
        kind=_choice(kind, [k.value for k in WorkOrderKind], "kind"),
        flag=_choice(flag, [f.value for f in ReviewFlag], "flag"),
        since=start,
        until=_day(until or "", "until"),
        since_is_default=start == default_day,
        after=after or None,
    )


Filters: TypeAlias = NamedDependency[QueueFilters]
"""The queue's filters from the request's query (:func:`parse_filters`)."""


def _today(ctx: Ctx, viewer: Viewer) -> date:
    return ctx.clock.now().astimezone(ZoneInfo(viewer.timezone)).date()


def queue_context(ctx: Ctx, viewer: Viewer, filters: QueueFilters) -> dict[str, Any]:
    """One page of the queue, the counts behind every filter option, and the names the rows show."""
    where = filters.where(viewer.timezone)
    company_id = viewer.principal.company_id
    with ctx.db.session(readonly=True) as session:
        queue = service.list_items(
            session, actor=viewer.principal, where=where, after=filters.after, limit=PAGE_SIZE
        )
        counts = service.counts(session, actor=viewer.principal, where=where)
        teams = lookups.teams(session, company_id=company_id)
        names = lookups.people_names(session, company_id=company_id)
        assignees = lookups.order_assignees(
            session, company_id=company_id, order_ids=[i.order_id for i in queue.items]
        )
    team_names = {t.id: t.name for t in teams}
    rows = [
        {
            "item": item,
            "team": team_names.get(item.team_id, "") if item.team_id else "",
            "assignee": names.get(assignees.get(item.order_id) or uuid.UUID(int=0), ""),
        }
        for item in queue.items
    ]
    by_status = counts.by_status
    status_counts = {s: by_status.get(s, 0) for s in STATUS_CHOICES if s != "open"}
    status_counts["open"] = by_status.get("pending", 0) + by_status.get("redo_answered", 0)
    return {
        "filters": filters,
        "rows": rows,
        "next_after": queue.next_after,
        "counts": counts,
        "status_counts": status_counts,
        "teams": teams,
        "kinds": [k.value for k in WorkOrderKind],
        "flags": [f.value for f in ReviewFlag],
        "statuses": STATUS_CHOICES,
        "default_days": DEFAULT_PERIOD_DAYS,
    }


# ---------------------------------------------------------------- one item


def parse_time(text: object) -> datetime | None:
    """A time the phone wrote as text (door attempts, signatures), if it is an aware ISO time."""
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def _attempt_times(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"method": a.get("method", ""), "at": parse_time(a.get("at")), "raw": a.get("at")} for a in attempts
    ]


def _local_input(moment: datetime, timezone: str) -> str:
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%dT%H:%M")


def item_context(ctx: Ctx, viewer: Viewer, item_id: uuid.UUID) -> dict[str, Any]:
    """The item's evidence (the API's own answer) and the names and address the page shows."""
    company_id = viewer.principal.company_id
    with ctx.db.session(readonly=True) as session:
        detail = service.item_detail(session, actor=viewer.principal, item_id=item_id)
        names = lookups.people_names(session, company_id=company_id)
        teams = {t.id: t.name for t in lookups.teams(session, company_id=company_id)}
        address = lookups.household_address(
            session, company_id=company_id, household_id=detail.order.household_id
        )
    redo_photos = []
    for redo in detail.redo:
        wanted = {i.get("purpose") for i in redo.items if i.get("kind") == "photo"}
        before = [p for p in redo.before.get("photos", []) if not wanted or p.get("purpose") in wanted]
        after = (redo.after or {}).get("photos", [])
        redo_photos.append({"redo": redo, "before": before, "after": after})
    now = ctx.clock.now()
    return {
        "detail": detail,
        "item": detail.item,
        "order": detail.order,
        "names": names,
        "team": teams.get(detail.order.team_id, "") if detail.order.team_id else "",
        "address": address,
        "arrivals": [{"a": a, "attempts": _attempt_times(a.attempts)} for a in detail.arrivals],
        "redos": redo_photos,
        "can_decide": viewer.has_role(*DECIDING),
        "supervising": viewer.has_role(*DECIDING),
        "open_statuses": ("pending", "redo_answered"),
        "purposes": [p.value for p in PhotoPurpose],
        "document_types": DOCUMENT_TYPES,
        "due_default": _local_input(now + timedelta(days=1), viewer.timezone),
        "due_min": _local_input(now, viewer.timezone),
        "parse_time": parse_time,
    }


def _text(value: object, *, required: bool, message: str, field: str) -> str | None:
    text = str(value or "").strip()
    if required and not text:
        raise InvalidInput(message, detail={"field": field})
    if len(text) > MAX_NOTE:
        raise InvalidInput("The text is too long.", detail={"field": field, "max_length": MAX_NOTE})
    return text or None


def _many(value: object) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(v).strip() for v in values if v is not None and str(v).strip()]


def redo_items(data: dict[str, Any]) -> list[RedoItem]:
    """The evidence the form names: photo purposes, a signature (document type), a measurement
    room, a free-text item; at least one, each checked as the API checks it."""
    items: list[dict[str, str]] = [{"kind": "photo", "purpose": p} for p in _many(data.get("photo"))]
    for field, kind, key in (
        ("document_type", "signature", "document_type"),
        ("room", "measurement_room", "room"),
        ("other", "other", "text"),
    ):
        items += [{"kind": kind, key: v} for v in _many(data.get(field))]
    if not items:
        raise InvalidInput("Name at least one thing to redo.", detail={"field": "items"})
    try:
        return msgspec.convert(items, list[RedoItem])
    except msgspec.ValidationError as exc:
        raise InvalidInput(str(exc), detail={"field": "items"}) from None


def due_at(value: object, timezone: str) -> datetime:
    """A ``datetime-local`` value, read in the company's zone, as aware UTC."""
    text = str(value or "").strip()
    if not text:
        raise InvalidInput("Choose when the redo is due.", detail={"field": "due_at"})
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput("Choose when the redo is due.", detail={"field": "due_at"}) from None
    if local.tzinfo is not None or not 2000 <= local.year < 2100:
        raise InvalidInput("Choose when the redo is due.", detail={"field": "due_at"})
    return local.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC)


# ---------------------------------------------------------------- controllers


class ReviewController(Controller):
    path = "/review"
    dependencies = {"filters": Provide(parse_filters, sync_to_thread=False)}

    @get("/", sync_to_thread=True)
    def queue(self, request: Request, ctx: Ctx, viewer: Viewer, filters: Filters) -> Template:
        return render(request, "review/queue.html", **queue_context(ctx, viewer, filters))

    @get("/rows", sync_to_thread=True)
    def rows(self, request: Request, ctx: Ctx, viewer: Viewer, filters: Filters) -> Template:
        """The filters and the table (htmx); the address bar gets the page's shareable URL."""
        url = "/console/review?" + filters.query(after=filters.after)
        return render(
            request, "review/_queue.html", headers={"HX-Push-Url": url}, **queue_context(ctx, viewer, filters)
        )

    @get("/{item_id:uuid}", sync_to_thread=True)
    def item(
        self,
        request: Request,
        ctx: Ctx,
        viewer: Viewer,
        item_id: FromPath[uuid.UUID],
        done: FromQuery[str] = "",
    ) -> Template:
        return _item_page(request, ctx, viewer, item_id, error=None, done=done)

    @post("/{item_id:uuid}/approve", sync_to_thread=True)
    def approve(
        self, request: Request, ctx: Ctx, viewer: Viewer, item_id: FromPath[uuid.UUID], data: Form
    ) -> Template | Redirect:
        def decide(session: Session, now: datetime) -> None:
            note = _text(data.get("note"), required=False, message="", field="note")
            service.approve(session, actor=viewer.principal, item_id=item_id, now=now, note=note)

        return _decide(request, ctx, viewer, item_id, decide, done="approved")

    @post("/{item_id:uuid}/reject", sync_to_thread=True)
    def reject(
        self, request: Request, ctx: Ctx, viewer: Viewer, item_id: FromPath[uuid.UUID], data: Form
    ) -> Template | Redirect:
        def decide(session: Session, now: datetime) -> None:
            reason = _text(
                data.get("reason"), required=True, message="Give the reason for rejecting.", field="reason"
            )
            assert reason is not None
            service.reject(session, actor=viewer.principal, item_id=item_id, now=now, reason=reason)

        return _decide(request, ctx, viewer, item_id, decide, done="rejected")

    @post("/{item_id:uuid}/redo", sync_to_thread=True)
    def redo(
        self, request: Request, ctx: Ctx, viewer: Viewer, item_id: FromPath[uuid.UUID], data: Form
    ) -> Template | Redirect:
        def decide(session: Session, now: datetime) -> None:
            items = redo_items(data)
            due = due_at(data.get("due_at"), viewer.timezone)
            reason = _text(data.get("reason"), required=False, message="", field="reason")
            service.request_redo(
                session,
                actor=viewer.principal,
                item_id=item_id,
                now=now,
                items=items,
                due_at=due,
                reason=reason,
            )

        return _decide(request, ctx, viewer, item_id, decide, done="redo_requested")


def _decide(
    request: Request,
    ctx: Ctx,
    viewer: Viewer,
    item_id: uuid.UUID,
    decide: Callable[[Session, datetime], None],
    *,
    done: str,
) -> Template | Redirect:
    require_console_roles(viewer, *DECIDING)
    try:
        with ctx.db.session() as session:
            decide(session, ctx.clock.now())
    except HeatCrewError as exc:
        if exc.status == 404:
            raise  # another company's item, or none: the error page, as for a GET
        return _item_page(request, ctx, viewer, item_id, error=exc, done="")
    return Redirect(f"/console/review/{item_id}?done={done}", status_code=303)


def _item_page(
    request: Request, ctx: Ctx, viewer: Viewer, item_id: uuid.UUID, *, error: HeatCrewError | None, done: str
) -> Template:
    return render(
        request,
        "review/item.html",
        status=error.status if error else 200,
        error=error,
        done=done if done in DONE else "",
        **item_context(ctx, viewer, item_id),
    )


class EvidenceController(Controller):
    """A photo's copies and a document's PDF for the console's pages, with the cookie session and
    the API's own visibility checks (``evidence.blobs.viewable``, ``visible_document``)."""

    path = "/evidence"

    @get("/blobs/{sha256:str}/{variant:str}", opt={"console_passive": True})
    async def blob(
        self, ctx: Ctx, viewer: Viewer, sha256: FromPath[str], variant: FromPath[str]
    ) -> Redirect | Stream:
        """``thumb`` and ``display`` (no metadata) for every console role; ``original`` (its EXIF
        holds the crew's GPS) for supervisors and admins only (403 for dispatchers); a view of an
        original goes in the audit log, as through the API."""
        return await serve_blob(ctx, viewer.principal, sha256, variant)

    @get("/documents/{document_id:uuid}/pdf", sync_to_thread=True)
    def pdf(self, ctx: Ctx, viewer: Viewer, document_id: FromPath[uuid.UUID]) -> Response[bytes]:
        """The signed document as PDF, as ``GET /api/v1/documents/{id}/pdf`` makes it."""
        with ctx.db.session(readonly=True) as session:
            return pdf_response(ctx, session, visible_document(session, viewer.principal, document_id))


PAGES = ConsolePages(
    controllers=[ReviewController, EvidenceController],
    template_dir=Path(__file__).parent / "templates",
    nav=[NavEntry(N_("Review queue"), "/console/review", order=10)],
)
