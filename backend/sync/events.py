"""``GET /api/v1/sync/events``: a phone's "pull now" channel (Server-Sent Events).

The stream carries positions, never data: at once the user's current head (``pull`` true when the
phone's cursor or ``Last-Event-ID`` is behind it), then one ``head`` event per new position in the
user's scope, comment lines as heartbeats, and a last ``end`` event (with the error code the next
request would get) when the session, device or user is revoked or the token expires. A user holds
at most ``live.MAX_STREAMS_PER_USER`` streams on a worker: a new one closes their oldest.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
import msgspec
from litestar.response import ServerSentEventMessage

from backend.auth import service
from backend.auth.principal import Principal
from backend.auth.tokens import AccessClaims
from backend.context import AppContext
from backend.errors import AuthError, EventsBusy
from backend.sync import live
from backend.sync.live import TooManyStreams
from backend.sync.pull import decode_cursor
from mobile_contract.sync import EndEvent, HeadEvent

__all__ = ("STREAM_HEADERS", "check_room", "known_position", "stream")

RETRY_MS = 5_000  # the reconnect delay an EventSource is told (it adds its own back-off)


_encode = msgspec.json.Encoder().encode

# Proxies must neither buffer nor cache the stream.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def known_position(
    ctx: AppContext, principal: Principal, *, cursor: str | None, last_event_id: str | None
) -> int:
    """How far the phone says it is: its cursor's position (of this user), else ``Last-Event-ID``;
    -1 when it says nothing we can use (it is told to pull)."""
    parsed = decode_cursor(cursor)
    if parsed is not None and parsed.user == principal.user_id:
        return parsed.version
    if last_event_id and last_event_id.isdigit() and len(last_event_id) < 20:
        return int(last_event_id)
    return -1


def check_room(ctx: AppContext) -> None:
    """``503 events_busy`` when the worker holds as many streams as it may."""
    if ctx.live.streams >= ctx.live.max_streams:
        retry = 30
        raise EventsBusy(
            detail={"retryable": True, "retry_after_s": retry, "max_streams": ctx.live.max_streams},
            headers={"Retry-After": str(retry)},
        )


def _head(ctx: AppContext, company_id: uuid.UUID, user_id: uuid.UUID) -> int:
    return live.head(ctx.db, company_id=company_id, user_id=user_id)


def _head_message(position: int, *, pull: bool) -> ServerSentEventMessage:
    return ServerSentEventMessage(
        event="head", id=str(position), data=_encode(HeadEvent(position=position, pull=pull)).decode()
    )


async def stream(
    ctx: AppContext, *, principal: Principal, claims: AccessClaims, known: int
) -> AsyncIterator[Any]:
    """The stream's events. It subscribes when it starts, so a stream never started holds nothing;
    one that finds the worker full after all (a race with another) just ends: the phone reconnects."""
    hub = ctx.live
    heartbeat = ctx.settings.events_heartbeat
    try:
        sub = hub.subscribe(
            user_id=principal.user_id,
            company_id=principal.company_id,
            session_id=principal.session_id,
            device_id=principal.device_id,
        )
    except TooManyStreams:
        return
    try:
        position = await anyio.to_thread.run_sync(_head, ctx, principal.company_id, principal.user_id)
        position = max(position, sub.position)
        yield ServerSentEventMessage(
            event="head",
            id=str(position),
            data=_encode(HeadEvent(position=position, pull=position > known)).decode(),
            retry=RETRY_MS,
        )
        sent = position
        while True:
            remaining = claims.expires_at - ctx.clock.now().timestamp()
            if remaining <= 0:
                yield ServerSentEventMessage(
                    event="end", data=_encode(EndEvent(code="token_expired")).decode()
                )
                return
            try:
                await asyncio.wait_for(sub.wake.wait(), timeout=min(heartbeat, remaining))
                woke = True
            except TimeoutError:
                woke = False
            sub.wake.clear()
            if sub.evicted:  # a newer stream of this user took its place (the phone has that one)
                return
            unknown = not hub.known  # notices may be lost: ask the database at every beat
            if sub.check_auth or (unknown and not woke):
                sub.check_auth = False
                try:
                    await anyio.to_thread.run_sync(service.admit, ctx, claims)
                except AuthError as exc:
                    yield ServerSentEventMessage(event="end", data=_encode(EndEvent(code=exc.code)).decode())
                    return
            if sub.recheck or (unknown and not woke):
                sub.recheck = False
                head = await anyio.to_thread.run_sync(_head, ctx, principal.company_id, principal.user_id)
                position = max(position, head)
            position = max(position, sub.position)
            if position > sent or sub.force:
                sub.force = False
                yield _head_message(position, pull=True)
                sent = position
            elif not woke:
                yield ServerSentEventMessage(data=None, comment="heartbeat")
    finally:
        hub.unsubscribe(sub)
