"""HTTP layer of sync: push, pull, and the device's own record of refused actions."""

from typing import Annotated

import anyio.to_thread
import sqlalchemy as sa
from litestar import Controller, Request, Response, get, post
from litestar.params import FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.response import ServerSentEvent
from litestar.status_codes import HTTP_200_OK
from sqlmodel import col, select

from backend import metrics
from backend.app_version import is_outdated
from backend.auth import service as auth
from backend.auth.tokens import AccessClaims
from backend.context import AppContext
from backend.contract.answers import answers
from backend.deps import Caller, Ctx
from backend.sync import events as live_events
from backend.sync import pull as pull_feed
from backend.sync import push as push_batch
from backend.sync import retirement
from backend.sync.models import REFUSED, SyncAction, SyncDevice
from mobile_contract.errors import ErrorCode
from mobile_contract.sync import PullResponse, PushRequest, PushResponse, RefusedAction, Status, SyncStatus

__all__ = ("SyncController",)


class SyncController(Controller):
    path = "/api/v1/sync"
    tags = ["sync"]

    # A NUL in one action rejects that action only (push.py), not the batch. The token is checked in
    # memory only: the batch's first statement admits the caller (session, device, user) as it
    # locks the device's counter, so a push costs no statement of its own for that.
    @post(
        "/push",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        opt={
            "token_only": True,
            "nul_checked_by_handler": True,
            "answers": answers((403, ErrorCode.device_mismatch), ErrorCode.batch_too_large),
        },
        response_headers=retirement.DOCUMENTED_HEADERS,
    )
    def push(self, ctx: Ctx, data: JSONBody[PushRequest], request: Request) -> Response[PushResponse]:
        """Apply queued actions in `seq` order, each exactly once; see the contract for every status."""
        if data.device_id != request.auth.device_id:
            # Refused before the batch runs, as a 403 of an admitted caller: a caller no longer
            # admitted hears that (401), and the denial joins the audit log with who tried it.
            request.scope["user"] = auth.admit(ctx, request.auth)
        answer = push_batch.push(ctx, claims=request.auth, request=data, outdated_app=is_outdated(request))
        metrics.observe_push(data, answer)
        headers = retirement.announcement(data.actions, docs_url=ctx.settings.deprecation_docs_url)
        return Response(answer, headers=headers)

    # The token is checked in memory only; an empty page known from the worker's hub is answered
    # before anything else (it reveals and changes nothing); any other answer admits the caller
    # (session, device, user) first, as every route does.
    @get("/pull", opt={"token_only": True})
    async def pull(
        self,
        ctx: Ctx,
        request: Request,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=pull_feed.MAX_LIMIT)] = pull_feed.DEFAULT_LIMIT,
    ) -> PullResponse:
        """Changes in your scope since `cursor`; without one (or with a stale one) a full snapshot."""
        claims: AccessClaims = request.auth
        hub = ctx.live
        if cursor and hub.known:
            parsed = pull_feed.decode_cursor(cursor)
            if (
                parsed is not None
                and hub.answers_empty(session_id=claims.session_id, user_id=claims.user_id, cursor=parsed)
                and not hub.is_revoked(
                    session_id=claims.session_id, device_id=claims.device_id, user_id=claims.user_id
                )
            ):
                response = PullResponse(cursor=cursor, has_more=False, reset=False, changes=[])
                metrics.observe_pull(response)
                return response
        response = await anyio.to_thread.run_sync(_pull_from_database, ctx, claims, cursor, limit)
        metrics.observe_pull(response)
        return response

    @get(
        "/events",
        opt={"answers": answers(ErrorCode.events_busy)},
    )
    async def events(
        self,
        ctx: Ctx,
        principal: Caller,
        request: Request,
        cursor: FromQuery[str | None] = None,
        last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID", max_length=40)] = None,
    ) -> ServerSentEvent:
        """A "pull now" channel: your head position at once, then each new one (never data), heartbeat
        comments, and an `end` event when your token expires or your device is revoked. Polling
        `/pull` stays the fallback."""
        known = live_events.known_position(ctx, principal, cursor=cursor, last_event_id=last_event_id)
        live_events.check_room(ctx)
        return ServerSentEvent(
            live_events.stream(ctx, principal=principal, claims=request.auth, known=known),
            headers=live_events.STREAM_HEADERS,
        )

    @get("/status", sync_to_thread=True)
    def status(self, ctx: Ctx, principal: Caller) -> SyncStatus:
        """This device's counter and its refused actions, so the phone can always say why."""
        with ctx.db.session(readonly=True) as session:
            device = session.get(SyncDevice, principal.device_id)
            refused = session.exec(
                select(SyncAction)
                .where(SyncAction.device_id == principal.device_id, sa.text(REFUSED))
                .order_by(col(SyncAction.seq).desc())
                .limit(100)
            ).all()
            return SyncStatus(
                device_id=principal.device_id,
                last_applied_seq=device.last_applied_seq if device else 0,
                refused=[
                    RefusedAction(
                        id=a.action_id,
                        seq=a.seq,
                        type=a.type,
                        v=a.v,
                        status=Status(a.status),
                        code=a.code,
                        message=a.message,
                        current=a.current,
                        occurred_at=a.occurred_at.isoformat(),
                    )
                    for a in refused
                ],
            )


def _pull_from_database(
    ctx: AppContext, claims: AccessClaims, cursor: str | None, limit: int
) -> PullResponse:
    """The pull, whose first statement admits the caller; what it found out goes to the hub."""
    stamp = ctx.live.stamp()  # before the pull's snapshot: what commits after it is noticed after it
    response, learned, principal = pull_feed.pull_and_learn(ctx, claims=claims, cursor=cursor, limit=limit)
    if learned is not None:
        ctx.live.learn(
            stamp,
            company_id=principal.company_id,
            user_id=principal.user_id,
            session_id=principal.session_id,
            epoch=learned.epoch,
            pruned_below=learned.pruned_below,
            bound=learned.bound,
        )
    return response
