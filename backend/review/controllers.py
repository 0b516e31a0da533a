"""HTTP layer of the review: thin, role-guarded. Supervisors and admins decide; dispatchers read."""

import uuid
from datetime import datetime
from typing import Annotated, TypeAlias

from litestar import Controller, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from backend.auth.guards import require_roles
from backend.auth.models import Role
from backend.contract.answers import answers
from backend.deps import Caller, Ctx
from backend.errors import InvalidInput
from backend.review import service
from backend.review.rules import ReviewFlag
from backend.review.schemas import (
    RedoDecision,
    RedoRead,
    RejectDecision,
    ReviewCounts,
    ReviewItemDetail,
    ReviewItemRead,
    ReviewPolicy,
    ReviewQueue,
    Status,
)
from mobile_contract.errors import ErrorCode
from mobile_contract.reference import WorkOrderKind
from mobile_contract.types import EARLIEST, LATEST, AwareDateTime

__all__ = ("ReviewController",)

READ = require_roles(Role.dispatcher, Role.supervisor, Role.admin)
ACT = require_roles(Role.supervisor, Role.admin)
_E = ErrorCode
DECIDE = {"answers": answers(_E.review_decided, _E.not_your_team)}
REDO = {
    "answers": answers(
        _E.review_decided, _E.not_your_team, _E.redo_open, _E.order_cancelled, _E.no_assignee, _E.invalid_due
    )
}
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
After = Annotated[str | None, QueryParameter(max_length=200)]
Where: TypeAlias = NamedDependency[service.QueueFilter]
"""The queue's filters from the query (:func:`_queue_filter`)."""


def _queue_filter(
    statuses: Annotated[list[Status] | None, QueryParameter(name="status")] = None,
    team: FromQuery[uuid.UUID | None] = None,
    kind: FromQuery[WorkOrderKind | None] = None,
    flag: FromQuery[ReviewFlag | None] = None,
    since: FromQuery[AwareDateTime | None] = None,
    until: FromQuery[AwareDateTime | None] = None,
) -> service.QueueFilter:
    """The query's filters, as the queue and its counts both read them (a dependency of both)."""
    return service.QueueFilter(
        statuses=tuple(statuses) if statuses else None,
        team_id=team,
        kind=kind.value if kind else None,
        flag=flag.value if flag else None,
        since=_in_range(since, "since"),
        until=_in_range(until, "until"),
    )


def _in_range(moment: datetime | None, name: str) -> datetime | None:
    """A query's instant within the contract's range (a body's is checked by its struct): near the
    calendar's ends its conversion to UTC overflows. Litestar does not hold a query's value to the
    zone ``AwareDateTime`` asks for, so a time without one is refused here."""
    if moment is not None and moment.utcoffset() is None:
        raise InvalidInput(
            f"{name} must carry a zone, e.g. 2026-12-01T08:00:00+08:00.", detail={"field": name}
        )
    if moment is not None and not EARLIEST <= moment < LATEST:
        raise InvalidInput(
            f"{name} must lie between 2000 and 2100.",
            detail={"field": name, "earliest": EARLIEST.isoformat(), "latest": LATEST.isoformat()},
        )
    return moment


class ReviewController(Controller):
    path = "/api/v1/review"
    tags = ["review"]
    dependencies = {"where": Provide(_queue_filter, sync_to_thread=False)}

    @get("/policy", guards=[READ], sync_to_thread=True)
    def get_policy(self, ctx: Ctx, principal: Caller) -> ReviewPolicy:
        """What enters review: kinds always, flags, the deterministic sample, own-team decisions."""
        with ctx.db.session(readonly=True) as session:
            return service.get_policy(session, actor=principal)

    @put("/policy", guards=[ACT], status_code=HTTP_200_OK, sync_to_thread=True)
    def put_policy(self, ctx: Ctx, principal: Caller, data: JSONBody[ReviewPolicy]) -> ReviewPolicy:
        """Replace the company's review policy (orders completed from now on follow it)."""
        with ctx.db.session() as session:
            return service.set_policy(session, actor=principal, policy=data)

    @get("/items", guards=[READ], sync_to_thread=True)
    def list_items(
        self,
        ctx: Ctx,
        principal: Caller,
        where: Where,
        after: After = None,
        limit: Limit = 50,
    ) -> ReviewQueue:
        """The queue, oldest first (default status: `pending` and `redo_answered`); page with `after`."""
        with ctx.db.session(readonly=True) as session:
            return service.list_items(session, actor=principal, where=where, after=after, limit=limit)

    @get("/counts", guards=[READ], sync_to_thread=True)
    def counts(
        self,
        ctx: Ctx,
        principal: Caller,
        where: Where,
    ) -> ReviewCounts:
        """Items per status, kind, team and flag, each under the other filters."""
        with ctx.db.session(readonly=True) as session:
            return service.counts(session, actor=principal, where=where)

    @get("/items/{item_id:uuid}", guards=[READ], sync_to_thread=True)
    def get_item(self, ctx: Ctx, principal: Caller, item_id: FromPath[uuid.UUID]) -> ReviewItemDetail:
        """Everything a reviewer needs: timeline with the three clocks, arrival proof, photos, documents,
        measurements, redo requests with before and after."""
        with ctx.db.session(readonly=True) as session:
            return service.item_detail(session, actor=principal, item_id=item_id)

    @post(
        "/items/{item_id:uuid}/approve",
        guards=[ACT],
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        opt=DECIDE,
    )
    def approve(self, ctx: Ctx, principal: Caller, item_id: FromPath[uuid.UUID]) -> ReviewItemRead:
        """Approve the work; a timeline event on the order."""
        with ctx.db.session() as session:
            return service.approve(session, actor=principal, item_id=item_id, now=ctx.clock.now())

    @post(
        "/items/{item_id:uuid}/reject", guards=[ACT], status_code=HTTP_200_OK, sync_to_thread=True, opt=DECIDE
    )
    def reject(
        self, ctx: Ctx, principal: Caller, item_id: FromPath[uuid.UUID], data: JSONBody[RejectDecision]
    ) -> ReviewItemRead:
        """Reject the work, with the reason; a timeline event on the order."""
        with ctx.db.session() as session:
            return service.reject(
                session, actor=principal, item_id=item_id, now=ctx.clock.now(), reason=data.reason
            )

    @post(
        "/items/{item_id:uuid}/redo",
        guards=[ACT],
        status_code=HTTP_201_CREATED,
        sync_to_thread=True,
        opt=REDO,
    )
    def redo(
        self, ctx: Ctx, principal: Caller, item_id: FromPath[uuid.UUID], data: JSONBody[RedoDecision]
    ) -> RedoRead:
        """Ask the assignee to redo part of the work; it reaches their phone on the next pull."""
        with ctx.db.session() as session:
            return service.request_redo(
                session,
                actor=principal,
                item_id=item_id,
                now=ctx.clock.now(),
                items=data.items,
                due_at=data.due_at,
                reason=data.reason,
            )
