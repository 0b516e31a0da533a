"""Upload endpoints: files travel apart from actions and are named by their SHA-256."""

import tempfile
from collections.abc import Iterator
from typing import IO

import sqlalchemy as sa
from litestar import Controller, Request, head, put
from litestar.params import FromPath
from litestar.response import Response
from litestar.utils.sync import sync_to_thread
from sqlalchemy.dialects import postgresql, sqlite

from backend.deps import Caller, Ctx
from backend.errors import BlobTooLarge, InvalidInput, NotFound
from backend.evidence.models import Blob
from backend.storage import CHUNK_SIZE, BlobInfo, is_sha256

__all__ = ("BlobController",)

MAX_BLOB_BYTES = 50 * 1024 * 1024
# Bytes held in memory per upload before they spill to a temporary file.
SPOOL_BYTES = 1024 * 1024


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    spool.seek(0)
    while chunk := spool.read(CHUNK_SIZE):
        yield chunk


class BlobController(Controller):
    path = "/api/v1/blobs"
    tags = ["blobs"]

    @put("/{sha256:str}", request_max_body_size=MAX_BLOB_BYTES, status_code=201)
    async def upload(
        self, ctx: Ctx, principal: Caller, request: Request, sha256: FromPath[str]
    ) -> Response[dict]:
        """Upload a file under its SHA-256: verified, idempotent; an action can then refer to it."""
        if not is_sha256(sha256):
            raise InvalidInput(
                "The name must be the lower-case hex SHA-256 of the content.", code="invalid_sha256"
            )
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BLOB_BYTES:
                    raise BlobTooLarge(detail={"limit": MAX_BLOB_BYTES})
                await sync_to_thread(spool.write, chunk)
            info: BlobInfo = await sync_to_thread(
                ctx.blobs.put, sha256, _chunks(spool), max_size=MAX_BLOB_BYTES
            )
        created = await sync_to_thread(_register, ctx, principal, info, request.headers.get("content-type"))
        return Response({"sha256": info.sha256, "size": info.size}, status_code=201 if created else 200)

    @head("/{sha256:str}", status_code=200)
    async def exists(self, ctx: Ctx, principal: Caller, sha256: FromPath[str]) -> None:
        """200 when this company already holds the file, 404 when it must be uploaded."""
        found = await sync_to_thread(_known, ctx, principal, sha256)
        if not found:
            raise NotFound("Not uploaded yet.", code="blob_not_found")


def _register(ctx: Ctx, principal: Caller, info: BlobInfo, content_type: str | None) -> bool:
    with ctx.db.session() as session:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        result = session.execute(
            dialect.insert(Blob)
            .values(
                company_id=principal.company_id,
                sha256=info.sha256,
                size=info.size,
                content_type=(content_type or "")[:64] or None,
                uploaded_by=principal.user_id,
                uploaded_at=ctx.clock.now(),
            )
            .on_conflict_do_nothing()
        )
        return bool(result.rowcount)


def _known(ctx: Ctx, principal: Caller, sha256: str) -> bool:
    if not is_sha256(sha256):
        return False
    with ctx.db.session(readonly=True) as session:
        return (
            session.execute(
                sa.select(Blob.sha256).where(Blob.company_id == principal.company_id, Blob.sha256 == sha256)
            ).first()
            is not None
        )
