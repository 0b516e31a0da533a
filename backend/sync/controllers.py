"""HTTP layer of sync: push, pull, and the device's own record of refused actions."""

from typing import Annotated

import sqlalchemy as sa
from litestar import Controller, Request, Response, get, post
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK
from sqlmodel import col, select

from backend import metrics
from backend.app_version import is_outdated
from backend.contract.answers import answers
from backend.deps import Caller, Ctx
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

    # A NUL in one action rejects that action only (push.py), not the batch.
    @post(
        "/push",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        opt={
            "nul_checked_by_handler": True,
            "answers": answers((403, ErrorCode.device_mismatch), ErrorCode.batch_too_large),
        },
        response_headers=retirement.DOCUMENTED_HEADERS,
    )
    def push(
        self, ctx: Ctx, principal: Caller, data: JSONBody[PushRequest], request: Request
    ) -> Response[PushResponse]:
        """Apply queued actions in `seq` order, each exactly once; see the contract for every status."""
        answer = push_batch.push(ctx, principal=principal, request=data, outdated_app=is_outdated(request))
        metrics.observe_push(data, answer)
        headers = retirement.announcement(data.actions, docs_url=ctx.settings.deprecation_docs_url)
        return Response(answer, headers=headers)

    @get("/pull", sync_to_thread=True)
    def pull(
        self,
        ctx: Ctx,
        principal: Caller,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=pull_feed.MAX_LIMIT)] = pull_feed.DEFAULT_LIMIT,
    ) -> PullResponse:
        """Changes in your scope since `cursor`; without one (or with a stale one) a full snapshot."""
        response = pull_feed.pull(ctx, principal=principal, cursor=cursor, limit=limit)
        metrics.observe_pull(response)
        return response

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
