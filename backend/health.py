"""Liveness and readiness for load balancers and orchestrators."""

import asyncio
from collections.abc import Callable
from typing import Literal

import anyio
import anyio.to_thread
import msgspec
from anyio.lowlevel import RunVar
from litestar import Controller, get

from backend.context import AppContext
from backend.contract.answers import answers
from backend.db.failures import RETRY_AFTER_SECONDS
from backend.deps import Ctx
from backend.errors import NotReady
from mobile_contract.errors import ErrorCode

__all__ = ("READY_BUDGET_SECONDS", "Health", "HealthController", "Readiness")

PUBLIC = {"exclude_from_auth": True}
READY_BUDGET_SECONDS = 1.5
"""``/ready`` answers within this (plus a little): a probe that has not answered by then failed.
Probes run side by side in threads; one still running finishes on its own (the database's own
connect timeout bounds it)."""


class Health(msgspec.Struct):
    status: Literal["ok"]


class Readiness(msgspec.Struct):
    status: Literal["ready"]
    checks: dict[str, str]
    """Each check and what it found: ``ok`` for all of them here."""


class HealthController(Controller):
    tags = ["health"]

    @get("/health", opt=PUBLIC)
    async def health(self) -> Health:
        """The process answers; says nothing about its dependencies."""
        return Health(status="ok")

    @get("/ready", opt={**PUBLIC, "answers": answers(ErrorCode.not_ready)})
    async def ready(self, ctx: Ctx) -> Readiness:
        """Ready when the database answers and the blob store is usable with enough free space.

        Answers within about 2 s. Otherwise ``503 not_ready``: ``detail.failed`` lists the
        failing checks, ``detail.checks`` says what each check found.
        """
        names = ("database", "blob_store")
        probes = [_probe(ctx.db.ping), _probe(lambda: _blob_store(ctx))]
        results = await asyncio.gather(*probes)
        checks = dict(zip(names, results, strict=True))
        failed = [name for name, value in checks.items() if value != "ok"]
        if failed:
            raise NotReady(
                f"Not ready: {', '.join(f'{name} {checks[name]}' for name in failed)}.",
                detail={"status": "not_ready", "failed": failed, "checks": checks},
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return Readiness(status="ready", checks=checks)


# The probes' own threads, not the worker's: when a rush has every worker thread busy, the worker is
# slow, not broken, and a probe waiting behind the rush would take it out of service.
_PROBE_THREADS: RunVar[anyio.CapacityLimiter] = RunVar("heatcrew_probe_threads")


def _probe_limiter() -> anyio.CapacityLimiter:
    try:
        return _PROBE_THREADS.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(4)
        _PROBE_THREADS.set(limiter)
        return limiter


async def _probe(check: Callable[[], object]) -> str:
    """``ok``, or what went wrong: a check returns its own finding or raises."""
    try:
        # Abandoned, not awaited, when the budget runs out: the thread ends by its own timeouts.
        finding = await asyncio.wait_for(
            anyio.to_thread.run_sync(check, abandon_on_cancel=True, limiter=_probe_limiter()),
            READY_BUDGET_SECONDS,
        )
    except TimeoutError:
        return f"unavailable: no answer within {READY_BUDGET_SECONDS:g} s"
    except Exception as exc:  # a probe reports any failure; it must never crash
        return f"unavailable: {type(exc).__name__}"
    return finding if isinstance(finding, str) else "ok"


def _blob_store(ctx: AppContext) -> str | None:
    ctx.blobs.check()
    threshold = ctx.settings.ready_min_free_bytes
    free = ctx.blobs.free_bytes() if threshold else None
    if free is not None and free < threshold:
        return f"low_on_space: {free} bytes free, HEATCREW_READY_MIN_FREE_BYTES is {threshold}"
    return None
