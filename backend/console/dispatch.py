"""Dispatch pages: orders created from a call, assigned and reassigned, cancelled, returns decided.

Every change calls the work-order service (the API's own functions); an error it raises is shown
on the page with its stable code, at its status, and nothing is written.
"""

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template
from sqlmodel import Session

from backend.auth.models import Role
from backend.console import N_, ConsolePages, NavEntry, lookups
from backend.console.web import Viewer, parse_id, render, require_console_roles
from backend.deps import Ctx
from backend.errors import HeatCrewError, InvalidInput
from backend.work_orders import service, views
from backend.work_orders.models import WorkOrder
from mobile_contract.reference import Source, WorkOrderKind

__all__ = ("PAGES",)

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
DISPATCH_ROLES = (Role.dispatcher, Role.admin)
MAX_DESCRIPTION = 2000
MAX_REASON = 500


def _choice(enum: type, value: object, field: str) -> str:
    try:
        return enum(str(value)).value
    except ValueError:
        raise InvalidInput(
            f"Choose a {field}.", detail={"field": field, "allowed": [e.value for e in enum]}
        ) from None


def _text(value: object, field: str, *, limit: int, required: bool = True) -> str:
    text = str(value or "").strip()
    if required and not text:
        raise InvalidInput(f"Fill in the {field}.", detail={"field": field})
    if len(text) > limit:
        raise InvalidInput(f"The {field} is too long.", detail={"field": field, "max_length": limit})
    return text


def _form_choices() -> dict[str, Any]:
    return {"kinds": [k.value for k in WorkOrderKind], "sources": [s.value for s in Source]}


class DispatchController(Controller):
    path = "/orders"

    @get("/", sync_to_thread=True)
    def list_orders(self, request: Request, ctx: Ctx, viewer: Viewer) -> Template:
        with ctx.db.session(readonly=True) as session:
            orders = views.list_orders(session, principal=viewer.principal, now=ctx.clock.now(), limit=100)
            names = lookups.people_names(session, company_id=viewer.principal.company_id)
        return render(request, "console/orders.html", orders=orders, names=names, can_dispatch=_can(viewer))

    @get("/new", sync_to_thread=True)
    def new(self, request: Request, ctx: Ctx, viewer: Viewer) -> Template:
        require_console_roles(viewer, *DISPATCH_ROLES)
        return self._new_form(request, ctx, viewer, values={}, error=None)

    @get("/households", sync_to_thread=True)
    def households(self, request: Request, ctx: Ctx, viewer: Viewer, q: FromQuery[str] = "") -> Template:
        """The fragment of households matching the address typed (htmx, as one types)."""
        with ctx.db.session(readonly=True) as session:
            found = lookups.find_households(session, company_id=viewer.principal.company_id, text=q[:100])
        return render(request, "console/_households.html", found=found, q=q, selected=None)

    @post("/", sync_to_thread=True)
    def create(self, request: Request, ctx: Ctx, viewer: Viewer, data: Form) -> Template | Redirect:
        require_console_roles(viewer, *DISPATCH_ROLES)
        now = ctx.clock.now()
        try:
            household_id = parse_id(data.get("household_id"), "household")
            if household_id is None:
                raise InvalidInput("Choose the household.", code="unknown_household")
            with ctx.db.session() as session:
                order = service.create_order(
                    session,
                    actor=viewer.principal,
                    now=now,
                    kind=_choice(WorkOrderKind, data.get("kind"), "kind"),
                    household_id=household_id,
                    source=_choice(Source, data.get("source"), "source"),
                    description=_text(data.get("description"), "description", limit=MAX_DESCRIPTION),
                    urgent=data.get("urgent") in ("on", "true", "1"),
                    assignee_id=parse_id(data.get("assignee_id"), "assignee"),
                )
                order_id = order.id
        except HeatCrewError as exc:
            return self._new_form(request, ctx, viewer, values=data, error=exc)
        return Redirect(f"/console/orders/{order_id}?done=created", status_code=303)

    @get("/{order_id:uuid}", sync_to_thread=True)
    def detail(
        self,
        request: Request,
        ctx: Ctx,
        viewer: Viewer,
        order_id: FromPath[uuid.UUID],
        done: FromQuery[str] = "",
    ) -> Template:
        return self._order_page(request, ctx, viewer, order_id, error=None, done=done)

    @post("/{order_id:uuid}/assign", sync_to_thread=True)
    def assign(
        self, request: Request, ctx: Ctx, viewer: Viewer, order_id: FromPath[uuid.UUID], data: Form
    ) -> Any:
        def change(session: Session, order: WorkOrder, now: Any) -> None:
            assignee_id = parse_id(data.get("assignee_id"), "assignee")
            if assignee_id is None:
                raise InvalidInput("Choose a technician.", code="unknown_user")
            reason = _text(data.get("reason"), "reason", limit=MAX_REASON, required=False) or None
            service.assign(
                session, actor=viewer.principal, order=order, assignee_id=assignee_id, now=now, reason=reason
            )

        return self._change(request, ctx, viewer, order_id, change, done="assigned")

    @post("/{order_id:uuid}/cancel", sync_to_thread=True)
    def cancel(
        self, request: Request, ctx: Ctx, viewer: Viewer, order_id: FromPath[uuid.UUID], data: Form
    ) -> Any:
        def change(session: Session, order: WorkOrder, now: Any) -> None:
            reason = _text(data.get("reason"), "reason", limit=MAX_REASON)
            service.cancel(session, actor=viewer.principal, order=order, reason=reason, now=now)

        return self._change(request, ctx, viewer, order_id, change, done="cancelled")

    @post("/{order_id:uuid}/return/approve", sync_to_thread=True)
    def approve_return(
        self, request: Request, ctx: Ctx, viewer: Viewer, order_id: FromPath[uuid.UUID], data: Form
    ) -> Any:
        def change(session: Session, order: WorkOrder, now: Any) -> None:
            reason = _text(data.get("reason"), "reason", limit=MAX_REASON, required=False) or None
            service.approve_return(session, actor=viewer.principal, order=order, now=now, reason=reason)

        return self._change(request, ctx, viewer, order_id, change, done="return_approved")

    @post("/{order_id:uuid}/return/refuse", sync_to_thread=True)
    def refuse_return(
        self, request: Request, ctx: Ctx, viewer: Viewer, order_id: FromPath[uuid.UUID], data: Form
    ) -> Any:
        def change(session: Session, order: WorkOrder, now: Any) -> None:
            reason = _text(data.get("reason"), "reason", limit=MAX_REASON, required=False) or None
            service.refuse_return(session, actor=viewer.principal, order=order, now=now, reason=reason)

        return self._change(request, ctx, viewer, order_id, change, done="return_refused")

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _change(
        request: Request,
        ctx: Ctx,
        viewer: Viewer,
        order_id: uuid.UUID,
        change: Callable[[Session, WorkOrder, Any], None],
        *,
        done: str,
    ) -> Template | Redirect:
        require_console_roles(viewer, *DISPATCH_ROLES)
        now = ctx.clock.now()
        try:
            with ctx.db.session() as session:
                order = service.get_order_for_update(
                    session, order_id=order_id, company_id=viewer.principal.company_id
                )
                change(session, order, now)
        except HeatCrewError as exc:
            if exc.status == 404:
                raise
            return DispatchController._order_page(request, ctx, viewer, order_id, error=exc, done="")
        return Redirect(f"/console/orders/{order_id}?done={done}", status_code=303)

    @staticmethod
    def _order_page(
        request: Request,
        ctx: Ctx,
        viewer: Viewer,
        order_id: uuid.UUID,
        *,
        error: HeatCrewError | None,
        done: str,
    ) -> Template:
        with ctx.db.session(readonly=True) as session:
            order = views.get_visible_order(session, principal=viewer.principal, order_id=order_id)
            detail = views.order_detail(session, principal=viewer.principal, order=order, now=ctx.clock.now())
            people = lookups.assignable_people(session, company_id=viewer.principal.company_id)
            names = lookups.people_names(session, company_id=viewer.principal.company_id)
        return render(
            request,
            "console/order.html",
            status=error.status if error else 200,
            detail=detail,
            order=detail.order,
            people=people,
            names=names,
            can_dispatch=_can(viewer),
            error=error,
            done=done
            if done in ("created", "assigned", "cancelled", "return_approved", "return_refused")
            else "",
        )

    @staticmethod
    def _new_form(
        request: Request, ctx: Ctx, viewer: Viewer, *, values: dict[str, Any], error: HeatCrewError | None
    ) -> Template:
        with ctx.db.session(readonly=True) as session:
            people = lookups.assignable_people(session, company_id=viewer.principal.company_id)
            household = None
            household_id = values.get("household_id")
            found: list = []
            if household_id:
                try:
                    wanted = uuid.UUID(str(household_id))
                except ValueError:
                    wanted = None
                found = [
                    row
                    for row in lookups.find_households(
                        session,
                        company_id=viewer.principal.company_id,
                        text=str(values.get("q", "")),
                        limit=50,
                    )
                    if row[0].id == wanted
                ]
                household = found[0] if found else None
        return render(
            request,
            "console/order_new.html",
            status=error.status if error else 200,
            people=people,
            values=values,
            error=error,
            found=[household] if household else [],
            selected=str(household[0].id) if household else None,
            **_form_choices(),
        )


def _can(viewer: Viewer) -> bool:
    return viewer.has_role(*DISPATCH_ROLES)


PAGES = ConsolePages(
    controllers=[DispatchController], nav=[NavEntry(N_("Dispatch"), "/console/orders", order=30)]
)
