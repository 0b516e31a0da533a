"""Liveness and readiness for load balancers and orchestrators."""

from litestar import Controller, get
from litestar.response import Response
from litestar.utils.sync import sync_to_thread

from backend.deps import Ctx

__all__ = ("HealthController",)

PUBLIC = {"exclude_from_auth": True}


class HealthController(Controller):
    tags = ["health"]

    @get("/health", opt=PUBLIC)
    async def health(self) -> dict[str, str]:
        """The process answers; says nothing about its dependencies."""
        return {"status": "ok"}

    @get("/ready", opt=PUBLIC)
    async def ready(self, ctx: Ctx) -> Response[dict[str, object]]:
        """Ready only when the database and the blob store both answer; 503 otherwise."""
        checks: dict[str, str] = {}
        for name, probe in (("database", ctx.db.ping), ("blob_store", ctx.blobs.check)):
            try:
                await sync_to_thread(probe)
                checks[name] = "ok"
            except Exception as exc:  # a probe reports any failure; it must never crash
                checks[name] = f"unavailable: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        return Response(
            {"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503
        )
