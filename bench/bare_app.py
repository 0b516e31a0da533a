"""The floor of ``bench/http_bench.py``: a bare Litestar app answering the same requests.

It decodes and encodes the same structs (``PushRequest``, ``PullResponse``) as HeatCrew but does
no authentication, opens no session and touches no database, so the difference to HeatCrew is
what HeatCrew itself costs per request.

    uvicorn bench.bare_app:app --workers 2
"""

from datetime import UTC, datetime

from litestar import Litestar, Request, get, post

from mobile_contract.sync import ActionResult, PullResponse, PushRequest, PushResponse, Status

__all__ = ("app",)


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/api/v1/sync/pull")
async def pull(request: Request, cursor: str | None = None) -> PullResponse:
    return PullResponse(cursor=cursor or "0", has_more=False, reset=False, changes=[])


@post("/api/v1/sync/push", status_code=200)
async def push(data: PushRequest) -> PushResponse:
    results = [ActionResult(id=a.id, seq=a.seq, status=Status.applied) for a in data.actions]
    last = data.actions[-1].seq if data.actions else 0
    return PushResponse(
        last_applied_seq=last, server_time=datetime.now(UTC), server_epoch="bare", results=results
    )


@get("/api/v1/me")
async def me() -> dict[str, str]:
    return {"username": "bare"}


app = Litestar([health, pull, push, me], openapi_config=None, debug=False)
