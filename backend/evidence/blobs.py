"""Upload and view endpoints: files travel apart from actions and are named by their SHA-256.

Every upload is an image checked by its bytes (JPEG, PNG, WebP, HEIC; pixel-count limit) before
anything is kept. The original is stored byte for byte and shown only to supervisors (its EXIF
holds the crew's GPS track); everyone else gets derived copies with all metadata stripped.
"""

import hashlib
import tempfile
from collections.abc import Iterator
from typing import IO, Literal

import msgspec
import sqlalchemy as sa
from litestar import Controller, Request, get, head, put
from litestar.params import FromPath
from litestar.response import Redirect, Response, Stream
from litestar.utils.sync import sync_to_thread
from sqlalchemy.dialects import postgresql, sqlite

from backend.auth.models import Role
from backend.auth.principal import Principal
from backend.context import AppContext
from backend.deps import Caller, Ctx
from backend.errors import BlobHashMismatch, BlobTooLarge, Forbidden, InvalidInput, NotFound
from backend.evidence import photos
from backend.evidence.models import Blob, Photo
from backend.storage import CHUNK_SIZE, is_sha256
from backend.work_orders.models import WorkOrder

__all__ = ("BlobController",)

MAX_BLOB_BYTES = 50 * 1024 * 1024
# Bytes held in memory per upload before they spill to a temporary file.
SPOOL_BYTES = 1024 * 1024
VIEW_URL_SECONDS = 300
OFFICE = (Role.supervisor, Role.admin, Role.dispatcher)
Variant = Literal["thumb", "display", "original"]


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
        """Upload a photo or signature image under its SHA-256: checked by content, verified, idempotent."""
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
            created = await sync_to_thread(_store, ctx, principal, sha256, spool)
        return Response({"sha256": sha256, "size": size}, status_code=201 if created else 200)

    @head("/{sha256:str}", status_code=200)
    async def exists(self, ctx: Ctx, principal: Caller, sha256: FromPath[str]) -> None:
        """200 when this company already holds the file, 404 when it must be uploaded."""
        if not await sync_to_thread(_known, ctx, principal, sha256):
            raise NotFound("Not uploaded yet.", code="blob_not_found")

    @get("/{sha256:str}/{variant:str}", status_code=200)
    async def view(
        self, ctx: Ctx, principal: Caller, sha256: FromPath[str], variant: FromPath[str]
    ) -> Response | Redirect | Stream:
        """A copy without metadata (``thumb``, ``display``); the ``original`` for supervisors only."""
        if variant not in ("thumb", "display", "original"):
            raise NotFound("No such variant; use thumb, display or original.")
        target = await sync_to_thread(_viewable, ctx, principal, sha256, variant)
        url = await sync_to_thread(ctx.blobs.presigned_get_url, target, expires_in=VIEW_URL_SECONDS)
        if url:
            return Redirect(url, status_code=307, headers={"Cache-Control": "private, no-store"})
        media = "image/jpeg" if variant != "original" else "application/octet-stream"
        chunks = await sync_to_thread(ctx.blobs.open, target)
        return Stream(chunks, media_type=media, headers={"Cache-Control": "private, max-age=300"})


def _store(ctx: AppContext, principal: Principal, sha256: str, spool: IO[bytes]) -> bool:
    spool.seek(0)
    data = spool.read()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        # Checked before the (slow) image pipeline; the store checks again while writing.
        raise BlobHashMismatch(detail={"expected": sha256, "actual": actual})
    try:
        claims, copies = photos.process(data)
    except photos.HeatCrewError as exc:
        # Remembered, so that the action waiting for this file is refused too and the queue moves on.
        _refuse(ctx, principal, sha256, len(data), exc.code)
        raise
    info = ctx.blobs.put(sha256, _chunks(spool), max_size=MAX_BLOB_BYTES)
    variants = {}
    for copy in copies:
        copy_sha = hashlib.sha256(copy.content).hexdigest()
        ctx.blobs.put(copy_sha, iter([copy.content]))
        variants[copy.name] = copy_sha
    with ctx.db.session() as session:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        result = session.execute(
            dialect.insert(Blob)
            .values(
                company_id=principal.company_id,
                sha256=info.sha256,
                size=info.size,
                content_type=f"image/{claims.format.lower()}",
                uploaded_by=principal.user_id,
                uploaded_at=ctx.clock.now(),
                media=claims.format,
                claims=msgspec.to_builtins(claims),
                variants=variants,
            )
            .on_conflict_do_nothing()
        )
        return bool(result.rowcount)


def _refuse(ctx: AppContext, principal: Principal, sha256: str, size: int, code: str) -> None:
    with ctx.db.session() as session:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(
            dialect.insert(Blob)
            .values(
                company_id=principal.company_id,
                sha256=sha256,
                size=size,
                uploaded_by=principal.user_id,
                uploaded_at=ctx.clock.now(),
                variants={},
                refused=code,
            )
            .on_conflict_do_nothing()
        )


def _known(ctx: AppContext, principal: Principal, sha256: str) -> bool:
    if not is_sha256(sha256):
        return False
    with ctx.db.session(readonly=True) as session:
        return (
            session.execute(
                sa.select(Blob.sha256).where(
                    Blob.company_id == principal.company_id, Blob.sha256 == sha256, Blob.refused.is_(None)
                )
            ).first()
            is not None
        )


def _viewable(ctx: AppContext, principal: Principal, sha256: str, variant: str) -> str:
    """The hash to serve, after checking this caller may see this file at all."""
    if not is_sha256(sha256):
        raise NotFound("No such file.", code="blob_not_found")
    with ctx.db.session(readonly=True) as session:
        blob = session.get(Blob, (principal.company_id, sha256))
        if blob is None or blob.refused:
            raise NotFound("No such file.", code="blob_not_found")
        if variant == "original":
            if principal.role not in (Role.supervisor, Role.admin):
                raise Forbidden("Originals keep their GPS data and are for supervisors only.")
            return sha256
        if principal.role not in OFFICE and blob.uploaded_by != principal.user_id:
            attached = session.execute(
                sa.select(Photo.id)
                .join(WorkOrder, WorkOrder.id == Photo.order_id)
                .where(
                    Photo.company_id == principal.company_id,
                    Photo.blob_sha256 == sha256,
                    WorkOrder.assignee_id == principal.user_id,
                )
            ).first()
            if attached is None:
                raise NotFound("No such file.", code="blob_not_found")
        copy = blob.variants.get(variant)
        if copy is None:
            raise NotFound("This file has no such copy.", code="blob_not_found")
        return copy
