"""Upload and view endpoints: files travel apart from actions and are named by their SHA-256.

Every upload is an image checked by its bytes (JPEG, PNG, WebP, HEIC; pixel-count limit) before
anything is kept. The original is stored byte for byte and shown only to supervisors (its EXIF
holds the crew's GPS track); everyone else gets derived copies with all metadata stripped.

Uploads are built for phones on bad networks (the protocol is in ``mobile_contract.uploads`` and
in each endpoint's description). A request body is streamed to a scratch file while it is hashed,
never held in memory; bytes that arrived before a dropped connection are kept as the user's
*unfinished upload* in the blob store (so every worker sees them) and the phone sends only the
rest. The file is verified (SHA-256), checked (photo pipeline, reading the scratch file) and
stored when its last byte arrives. Per-user limits: a size per file and a 24-hour byte and file
quota (settings ``max_upload_bytes``, ``upload_quota_*``).
"""

import asyncio
import functools
import hashlib
import math
import os
import tempfile
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import anyio
import msgspec
import sqlalchemy as sa
from litestar import Controller, Request, get, head, post, put
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.response import Redirect, Response, Stream
from litestar.utils.sync import sync_to_thread
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from backend import audit
from backend.auth.models import Role
from backend.auth.principal import Principal
from backend.context import AppContext
from backend.contract.answers import answers
from backend.deps import Caller, Ctx
from backend.errors import (
    BlobHashMismatch,
    BlobSizeMismatch,
    BlobStoreUnavailable,
    BlobTooLarge,
    Forbidden,
    HeatCrewError,
    InvalidInput,
    NotFound,
    PresignUnsupported,
    UploadNotFound,
    UploadOffsetMismatch,
    UploadQuotaExceeded,
    UploadStalled,
)
from backend.evidence.models import Blob, BlobUploader, Measurement, Photo
from backend.storage import is_sha256
from backend.storage.uploads import Partial
from backend.work_orders.models import WorkOrder
from mobile_contract.errors import ErrorCode
from mobile_contract.types import MAX_SAFE_INT

if TYPE_CHECKING:  # Pillow loads with the first photo, not with the worker
    from backend.evidence import photos

from mobile_contract.uploads import (
    UPLOAD_EXPIRES,
    UPLOAD_LENGTH,
    UPLOAD_OFFSET,
    BlobStored,
    CompleteRequest,
    DirectUpload,
    PresignRequest,
    UploadProgress,
)

__all__ = ("QUOTA_WINDOW", "BlobController", "serve_blob", "sweep_unfinished", "viewable")

#: The quota counts what one user uploaded in this sliding window.
QUOTA_WINDOW = timedelta(hours=24)
# Received bytes are handed to the writing thread in blocks of this size (memory per upload).
WRITE_BLOCK = 256 * 1024
# A body that sends nothing for this long is treated as dropped (a phone's half-open connection
# can linger for many minutes): what arrived is kept, so the phone can resume at once.
IDLE_SECONDS = 60.0
# Expired unfinished uploads are swept at most this often per process (lazily, after an upload).
SWEEP_EVERY = timedelta(minutes=10)
VIEW_URL_SECONDS = 300
OFFICE = (Role.supervisor, Role.admin, Role.dispatcher)
Variant = Literal["thumb", "display", "original"]
_T = TypeVar("_T")

Offset = Annotated[
    int | None,
    QueryParameter(
        ge=0, le=MAX_SAFE_INT, description="Append from this byte: must equal the server's `Upload-Offset`."
    ),
]
UploadLength = Annotated[
    int | None,
    HeaderParameter(
        name=UPLOAD_LENGTH.lower(),
        ge=0,
        le=MAX_SAFE_INT,
        required=False,
        description="The whole file's size. Refused up front when over the limit or quota; a body that "
        "ends before it is a deliberate piece (202) instead of the end of the file.",
    ),
]


_E = ErrorCode
_CONTENT = (
    _E.blob_hash_mismatch,
    _E.blob_size_mismatch,
    _E.unsupported_image_format,
    _E.image_too_large,
    _E.corrupt_image,
)
UPLOAD_ANSWERS = {
    "binary_body": True,
    "answers": answers(
        _E.invalid_sha256,
        _E.upload_stalled,
        _E.upload_offset_mismatch,
        _E.blob_too_large,
        *_CONTENT,
        _E.upload_quota_exceeded,
        _E.blob_store_unavailable,
    ),
}
PRESIGN_ANSWERS = {
    "answers": answers(_E.invalid_sha256, _E.presign_unsupported, _E.blob_too_large, _E.upload_quota_exceeded)
}
COMPLETE_ANSWERS = {
    "answers": answers(_E.invalid_sha256, _E.upload_not_found, *_CONTENT, _E.blob_store_unavailable)
}
VIEW_ANSWERS = {
    "answers": answers(_E.invalid_sha256, _E.forbidden, _E.blob_not_found, _E.blob_store_unavailable)
}


class BlobController(Controller):
    path = "/api/v1/blobs"
    tags = ["blobs"]

    @put("/{sha256:str}", status_code=201, request_max_body_size=None, opt=UPLOAD_ANSWERS)
    async def upload(
        self,
        ctx: Ctx,
        principal: Caller,
        request: Request,
        sha256: FromPath[str],
        offset: Offset = None,
        upload_length: UploadLength = None,
    ) -> Response[BlobStored | UploadProgress]:
        """Upload a file (photo, signature image) under its SHA-256, resumably.

        Send the whole file as the body, or, after a dropped connection, `?offset=N` and the bytes
        from N on, where N is the `Upload-Offset` that `HEAD` (or a 409) reported. The body is
        streamed to disk while it is hashed; whatever arrives before the connection drops is kept
        for you (not for other users) for `upload_expiry` seconds after its last byte. A body that
        ends normally completes the file: it is verified against the name (`422
        blob_hash_mismatch`, nothing kept), checked by content (`422 unsupported_image_format`,
        `image_too_large`, `corrupt_image`: remembered, so the action that uses it is refused too)
        and stored: `201`, or `200` when the company already holds it (then the body is not read).

        Other answers: `409 upload_offset_mismatch` (detail and `Upload-Offset` give the offset
        to use), `413 blob_too_large` (detail.limit), `429 upload_quota_exceeded` (detail: the
        24-hour limits and use; `Retry-After`), `408 upload_stalled` when no byte came for a minute
        (what came is kept; `Upload-Offset`), `202` with `Upload-Offset` when `Upload-Length` was
        sent and not reached yet.
        """
        _require_sha256(sha256)
        held = await sync_to_thread(_held_size, ctx, principal, sha256)
        if held is not None:
            return Response(BlobStored(sha256, held), status_code=200, headers={UPLOAD_OFFSET: str(held)})
        start = offset or 0
        expected = upload_length
        if expected is None and request.headers.get("content-length", "").isdigit():
            expected = start + int(request.headers["content-length"])
        if expected is not None and expected < start:
            raise InvalidInput(f"{UPLOAD_LENGTH} is smaller than the offset.", code="invalid_input")
        budget = await sync_to_thread(_budget, ctx, principal, sha256, max(start, expected or 0))
        receiver = await sync_to_thread(_Receiver.start, ctx, principal, sha256, start)
        try:
            finished = await receiver.receive(request, budget)
        except HeatCrewError as exc:  # over the size limit or the quota, or the disk failed: nothing is kept
            await sync_to_thread(receiver.abandon, forget_partial=True)
            if isinstance(exc, BlobTooLarge):
                await sync_to_thread(_refuse_too_large, ctx, principal, sha256)
            raise
        except BaseException:
            receiver.abandon()
            raise
        if finished is not True or (upload_length is not None and receiver.size < upload_length):
            # Dropped (nobody will read this answer), stalled, or a deliberate piece: kept for the rest.
            expires = await sync_to_thread(receiver.keep)
            headers = _progress_headers(receiver.size, expires)
            if finished is None:
                raise UploadStalled(detail={"offset": receiver.size}, headers=headers)
            return Response(UploadProgress(sha256, receiver.size, expires), status_code=202, headers=headers)
        if upload_length is not None and receiver.size != upload_length:
            await sync_to_thread(receiver.abandon, forget_partial=True)
            raise BlobSizeMismatch(detail={"expected": upload_length, "actual": receiver.size})
        created, size = await _finish(ctx, principal, sha256, receiver)
        return Response(BlobStored(sha256, size), status_code=201 if created else 200)

    @head("/{sha256:str}", status_code=200, opt={"answers": answers(_E.invalid_sha256, _E.blob_not_found)})
    async def exists(self, ctx: Ctx, principal: Caller, sha256: FromPath[str]) -> None:
        """200 when this company already holds the file; 404 when it must be uploaded.

        The 404 carries `Upload-Offset`: how many bytes of your unfinished upload the server holds
        (0 for none); resume with `PUT ?offset=` that number. With bytes held, `Upload-Expires`
        (an HTTP date) says when they are forgotten unless more arrive.
        """
        if await sync_to_thread(_held_size, ctx, principal, sha256) is not None:
            return
        partial = await sync_to_thread(_live_partial, ctx, principal, sha256) if is_sha256(sha256) else None
        if partial is None:
            headers = {UPLOAD_OFFSET: "0"}
        else:
            headers = _progress_headers(partial.size, _expires(ctx, partial))
        raise NotFound("Not uploaded yet.", code="blob_not_found", headers=headers)

    @post("/{sha256:str}/presign", status_code=200, opt=PRESIGN_ANSWERS)
    async def presign(
        self, ctx: Ctx, principal: Caller, sha256: FromPath[str], data: JSONBody[PresignRequest]
    ) -> DirectUpload:
        """A short-lived URL to upload the file straight into the bucket (S3 store only).

        Send the file with the answer's `method` and exactly its `headers` to `url`: the signature
        binds the size and the SHA-256, so the bucket refuses anything else. Then call `complete`.
        A server with a local store answers `409 presign_unsupported`: use `PUT` instead. Size
        limit and quota are checked here (`413`, `429`) and again at completion.
        """
        _require_sha256(sha256)
        return await sync_to_thread(_presign, ctx, principal, sha256, data.size)

    @post("/{sha256:str}/complete", status_code=201, opt=COMPLETE_ANSWERS)
    async def complete(
        self,
        ctx: Ctx,
        principal: Caller,
        sha256: FromPath[str],
        data: JSONBody[CompleteRequest | None] = None,
    ) -> Response[BlobStored]:
        """Verify and store what was uploaded through a presigned URL (or an unfinished upload).

        The server reads the upload back (streamed), checks its size (`413`, and `422
        blob_size_mismatch` against a `size` sent here) and its SHA-256 (`422
        blob_hash_mismatch`); a mismatch deletes it. Then the photo pipeline runs as for `PUT`:
        `201`, or `200` when the company already held the file. `404 upload_not_found` when
        nothing is waiting (never uploaded, or expired).
        """
        _require_sha256(sha256)
        held = await sync_to_thread(_held_size, ctx, principal, sha256)
        if held is not None:
            return Response(BlobStored(sha256, held), status_code=200)
        declared = data.size if data is not None else None
        receiver = await sync_to_thread(_gather, ctx, principal, sha256, declared)
        created, size = await _finish(ctx, principal, sha256, receiver)
        return Response(BlobStored(sha256, size), status_code=201 if created else 200)

    @get("/{sha256:str}/{variant:str}", status_code=200, opt=VIEW_ANSWERS)
    async def view(
        self, ctx: Ctx, principal: Caller, sha256: FromPath[str], variant: FromPath[str]
    ) -> Response | Redirect | Stream:
        """A copy without metadata (``thumb``, ``display``); the ``original`` for supervisors only."""
        return await serve_blob(ctx, principal, sha256, variant)


async def serve_blob(ctx: AppContext, principal: Principal, sha256: str, variant: str) -> Redirect | Stream:
    """The answer of ``GET /api/v1/blobs/{sha256}/{variant}`` (and of the console's own route):
    after :func:`viewable` (404 to whoever may not see the file, 403 for an original to a
    non-supervisor), a presigned redirect (S3) or the file streamed."""
    if variant not in ("thumb", "display", "original"):
        raise NotFound("No such variant; use thumb, display or original.")
    target = await sync_to_thread(viewable, ctx, principal, sha256, variant)
    url = await sync_to_thread(ctx.blobs.presigned_get_url, target, expires_in=VIEW_URL_SECONDS)
    if url:
        return Redirect(url, status_code=307, headers={"Cache-Control": "private, no-store"})
    media = "image/jpeg" if variant != "original" else "application/octet-stream"
    chunks = await sync_to_thread(ctx.blobs.open, target)
    return Stream(chunks, media_type=media, headers={"Cache-Control": "private, max-age=300"})


# ---------------------------------------------------------------- receiving


class _Receiver:
    """One request's view of an upload: a private scratch file holding it from byte 0, hashed so far.

    Nobody else writes to the scratch file, so what is verified is exactly what is stored, however
    requests race. Bytes held from earlier requests are copied in first (and hashed on the way).
    """

    def __init__(self, ctx: AppContext, owner: str, sha256: str, path: Path, file: Any) -> None:
        self.ctx = ctx
        self.owner = owner
        self.sha256 = sha256
        self.path = path
        self.file = file
        self.digest = hashlib.sha256()
        self.size = 0

    @classmethod
    def start(cls, ctx: AppContext, principal: Principal, sha256: str, offset: int) -> "_Receiver":
        owner = str(principal.user_id)
        held = _live_partial(ctx, principal, sha256)
        held_size = held.size if held else 0
        if offset not in (0, held_size):
            raise _offset_mismatch(held_size)
        try:
            fd, name = tempfile.mkstemp(prefix="upload.", suffix=".part", dir=ctx.blobs.scratch_dir)
        except OSError as exc:
            raise BlobStoreUnavailable(f"Cannot receive uploads: {exc}") from exc
        receiver = cls(ctx, owner, sha256, Path(name), os.fdopen(fd, "wb"))
        try:
            if offset:
                for chunk in ctx.blobs.uploads.read(owner, sha256) or ():
                    receiver.write(chunk)
                    if receiver.size > offset:
                        break
                if receiver.size != offset:  # replaced or expired meanwhile
                    now_held = ctx.blobs.uploads.stat(owner, sha256)
                    raise _offset_mismatch(now_held.size if now_held else 0)
        except BaseException:
            receiver.abandon()
            raise
        return receiver

    def write(self, block: bytes | bytearray) -> None:
        self.digest.update(block)
        try:
            self.file.write(block)
        except OSError as exc:  # scratch disk full or gone
            raise BlobStoreUnavailable(f"Cannot keep the upload: {exc}") from exc
        self.size += len(block)

    async def receive(self, request: Request, budget: "_Budget") -> bool | None:
        """Stream the request body in: True at its end, False if the client went away, None if stalled."""
        pending = bytearray()
        received = self.size
        while True:
            message: Any = None
            with anyio.move_on_after(IDLE_SECONDS):
                message = await request.receive()
            if message is None or message["type"] == "http.disconnect":
                if pending:
                    await sync_to_thread(self.write, pending)
                return None if message is None else False
            body = message.get("body", b"")
            if body:
                received += len(body)
                if received > budget.limit:
                    raise budget.refusal()
                pending += body
                if len(pending) >= WRITE_BLOCK:
                    block, pending = pending, bytearray()
                    await sync_to_thread(self.write, block)
            if not message.get("more_body", False):
                break
        if pending:
            await sync_to_thread(self.write, pending)
        return True

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()

    def verify(self) -> None:
        """All bytes are in: they must hash to the name, or nothing is kept."""
        self.close()
        actual = self.digest.hexdigest()
        if actual != self.sha256:
            self.abandon(forget_partial=True)
            raise BlobHashMismatch(detail={"expected": self.sha256, "actual": actual})

    def keep(self) -> datetime:
        """Make what arrived the user's unfinished upload (unless a longer one is held already)."""
        now = self.ctx.clock.now()
        self.close()
        staging = self.ctx.blobs.uploads
        held = staging.stat(self.owner, self.sha256)
        if self.size and (held is None or held.size < self.size):
            staging.save(self.owner, self.sha256, self.path, touched_at=now)
        else:
            self.abandon()
        return now + timedelta(seconds=self.ctx.settings.upload_expiry)

    def abandon(self, *, forget_partial: bool = False) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
        if forget_partial:
            self.ctx.blobs.uploads.discard(self.owner, self.sha256)


async def _finish(
    ctx: AppContext, principal: Principal, sha256: str, receiver: _Receiver
) -> tuple[bool, int]:
    """The last byte arrived: verify, run the pipeline on the scratch file, store, record."""
    try:
        await sync_to_thread(receiver.verify)
        try:
            from backend.evidence import photos  # Pillow loads with the first photo

            claims, copies = await _in_pipeline(photos.process, receiver.path)
        except HeatCrewError as exc:
            await sync_to_thread(_refuse, ctx, principal, sha256, receiver, exc.code)
            raise
        return await sync_to_thread(_store, ctx, principal, sha256, receiver, claims, copies)
    finally:
        receiver.abandon()


# Decoding happens on these few threads only. Besides bounding the work, that keeps the memory of
# decoded images in a fixed set of allocator arenas: spread over the web layer's worker threads,
# every thread that ever decoded would keep ~20 MB of heap resident. Made with the first photo,
# as Pillow is.
@functools.cache
def _pipeline() -> ThreadPoolExecutor:
    from backend.evidence import photos

    return ThreadPoolExecutor(max_workers=photos.DECODE_SLOTS, thread_name_prefix="photo-pipeline")


async def _in_pipeline(function: Callable[..., _T], *args: Any) -> _T:
    return await asyncio.get_running_loop().run_in_executor(_pipeline(), functools.partial(function, *args))


def _store(
    ctx: AppContext,
    principal: Principal,
    sha256: str,
    receiver: "_Receiver",
    claims: "photos.PhotoClaims",
    copies: "list[photos.DerivedCopy]",
) -> tuple[bool, int]:
    info = ctx.blobs.put_file(sha256, receiver.path)
    variants = {}
    for copy in copies:
        copy_sha = hashlib.sha256(copy.content).hexdigest()
        ctx.blobs.put(copy_sha, iter([copy.content]))
        variants[copy.name] = copy_sha
    created = _record(ctx, principal, info.sha256, info.size, claims, variants)
    ctx.blobs.uploads.discard(receiver.owner, sha256)
    sweep_unfinished(ctx)
    return created, info.size


def _gather(ctx: AppContext, principal: Principal, sha256: str, declared: int | None) -> "_Receiver":
    """What was uploaded (directly or in pieces), copied to a scratch file and hashed on the way."""
    held = _live_partial(ctx, principal, sha256)
    if held is None:
        raise UploadNotFound(detail={"sha256": sha256})
    if held.size > ctx.settings.max_upload_bytes:
        ctx.blobs.uploads.discard(str(principal.user_id), sha256)
        _refuse_too_large(ctx, principal, sha256)
        raise BlobTooLarge(detail={"limit": ctx.settings.max_upload_bytes})
    _budget(ctx, principal, sha256, held.size)
    receiver = _Receiver.start(ctx, principal, sha256, held.size)
    if declared is not None and declared != receiver.size:
        receiver.abandon(forget_partial=True)
        raise BlobSizeMismatch(detail={"expected": declared, "actual": receiver.size})
    return receiver


def _presign(ctx: AppContext, principal: Principal, sha256: str, size: int) -> DirectUpload:
    staging = ctx.blobs.uploads
    if not staging.direct_uploads:
        raise PresignUnsupported(detail={"upload_with": f"PUT /api/v1/blobs/{sha256}"})
    if _held_size(ctx, principal, sha256) is not None:
        return DirectUpload(sha256=sha256, stored=True)
    _budget(ctx, principal, sha256, size)
    now = ctx.clock.now()
    expiry = ctx.settings.presign_expiry
    direct = staging.presign_put(str(principal.user_id), sha256, size=size, touched_at=now, expires_in=expiry)
    if direct is None:
        raise PresignUnsupported(detail={"upload_with": f"PUT /api/v1/blobs/{sha256}"})
    return DirectUpload(
        sha256=sha256,
        stored=False,
        url=direct.url,
        method=direct.method,
        headers=direct.headers,
        expires_at=now + timedelta(seconds=expiry),
    )


# ---------------------------------------------------------------- limits


class _Budget(msgspec.Struct, frozen=True):
    """The most bytes this file may have, and what to answer past it."""

    limit: int
    by_quota: bool
    detail: dict[str, int]
    retry_after: int

    def refusal(self) -> HeatCrewError:
        if self.by_quota:
            return UploadQuotaExceeded(detail=self.detail, headers={"Retry-After": str(self.retry_after)})
        return BlobTooLarge(detail={"limit": self.limit})


def _budget(ctx: AppContext, principal: Principal, sha256: str, needed: int) -> _Budget:
    """Refuse now if ``needed`` bytes are over the size limit or the 24-hour quota; else the budget.

    The quota counts the files this user stored in the window (refused ones too: they cost the
    same to receive and check) and the bytes of their other unfinished uploads.
    """
    settings = ctx.settings
    if needed > settings.max_upload_bytes:
        _refuse_too_large(ctx, principal, sha256)
        raise BlobTooLarge(detail={"limit": settings.max_upload_bytes})
    now = ctx.clock.now()
    with ctx.db.session(readonly=True) as session:
        # What this user sent: a file the company already held costs them the same to send.
        files, stored_bytes, oldest = session.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(Blob.size), 0),
                sa.func.min(BlobUploader.uploaded_at),
            )
            .select_from(BlobUploader)
            .outerjoin(
                Blob, sa.and_(Blob.company_id == BlobUploader.company_id, Blob.sha256 == BlobUploader.sha256)
            )
            .where(BlobUploader.user_id == principal.user_id, BlobUploader.uploaded_at > now - QUOTA_WINDOW)
        ).one()
    unfinished = sum(
        partial.size for partial in ctx.blobs.uploads.held(str(principal.user_id)) if partial.sha256 != sha256
    )
    used = int(stored_bytes) + unfinished
    # The earliest moment anything leaves the window (it may take more for a large file).
    retry_after = math.ceil((oldest + QUOTA_WINDOW - now).total_seconds()) if oldest else 60
    budget = _Budget(
        limit=min(settings.max_upload_bytes, settings.upload_quota_bytes - used),
        by_quota=settings.upload_quota_bytes - used < settings.max_upload_bytes,
        detail={
            "limit_bytes": settings.upload_quota_bytes,
            "used_bytes": used,
            "limit_files": settings.upload_quota_files,
            "used_files": int(files),
            "window_seconds": int(QUOTA_WINDOW.total_seconds()),
        },
        retry_after=max(1, retry_after),
    )
    if files >= settings.upload_quota_files or needed > budget.limit:
        raise UploadQuotaExceeded(detail=budget.detail, headers={"Retry-After": str(budget.retry_after)})
    return budget


# ---------------------------------------------------------------- unfinished uploads


def _live_partial(ctx: AppContext, principal: Principal, sha256: str) -> Partial | None:
    """This user's unfinished upload of ``sha256``, unless it has expired (then it is removed)."""
    owner = str(principal.user_id)
    partial = ctx.blobs.uploads.stat(owner, sha256)
    if partial is not None and _expires(ctx, partial) <= ctx.clock.now():
        ctx.blobs.uploads.discard(owner, sha256)
        return None
    return partial


def _expires(ctx: AppContext, partial: Partial) -> datetime:
    return partial.touched_at + timedelta(seconds=ctx.settings.upload_expiry)


def _progress_headers(offset: int, expires: datetime) -> dict[str, str]:
    return {UPLOAD_OFFSET: str(offset), UPLOAD_EXPIRES: format_datetime(expires, usegmt=True)}


def _offset_mismatch(held: int) -> UploadOffsetMismatch:
    return UploadOffsetMismatch(detail={"offset": held}, headers={UPLOAD_OFFSET: str(held)})


_last_sweep: "weakref.WeakKeyDictionary[object, datetime]" = weakref.WeakKeyDictionary()


def sweep_unfinished(ctx: AppContext, *, force: bool = False) -> int:
    """Remove expired unfinished uploads; runs at most every few minutes per process unless forced."""
    staging = ctx.blobs.uploads
    now = ctx.clock.now()
    last = _last_sweep.get(staging)
    if not force and last is not None and now - last < SWEEP_EVERY:
        return 0
    _last_sweep[staging] = now
    return staging.sweep(touched_before=now - timedelta(seconds=ctx.settings.upload_expiry))


# ---------------------------------------------------------------- rows


def _record(
    ctx: AppContext,
    principal: Principal,
    sha256: str,
    size: int,
    claims: "photos.PhotoClaims",
    variants: dict[str, str],
) -> bool:
    with ctx.db.session() as session:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        result = session.execute(
            dialect.insert(Blob)
            .values(
                company_id=principal.company_id,
                sha256=sha256,
                size=size,
                content_type=f"image/{claims.format.lower()}",
                uploaded_by=principal.user_id,
                uploaded_at=ctx.clock.now(),
                media=claims.format,
                claims=msgspec.to_builtins(claims),
                variants=variants,
            )
            .on_conflict_do_nothing()
            .returning(Blob.sha256)  # rowcount is -1 here with psycopg 3: ask for the row instead
        )
        created = result.first() is not None
        _note_uploader(session, principal, sha256, at=ctx.clock.now(), refused=None)
        return created


def _note_uploader(
    session: Session, principal: Principal, sha256: str, *, at: datetime, refused: str | None
) -> None:
    """This user sent the file's bytes (``refused``: and was refused them, for this reason)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(BlobUploader).values(
        company_id=principal.company_id,
        sha256=sha256,
        user_id=principal.user_id,
        uploaded_at=at,
        refused=refused,
    )
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["company_id", "sha256", "user_id"],
            set_={"uploaded_at": at, "refused": refused},
        )
    )


def _refuse_too_large(ctx: AppContext, principal: Principal, sha256: str) -> None:
    """A file over the size limit never arrives: the action waiting for it is refused instead.

    Only for this user (nothing was verified, so nothing is said of the file itself).
    """
    with ctx.db.session() as session:
        _note_uploader(session, principal, sha256, at=ctx.clock.now(), refused=BlobTooLarge.code)


def _refuse(ctx: AppContext, principal: Principal, sha256: str, receiver: "_Receiver", code: str) -> None:
    """Remembered, so that the action waiting for this file is refused too and the queue moves on."""
    receiver.abandon(forget_partial=True)
    with ctx.db.session() as session:
        _note_uploader(session, principal, sha256, at=ctx.clock.now(), refused=code)
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(
            dialect.insert(Blob)
            .values(
                company_id=principal.company_id,
                sha256=sha256,
                size=receiver.size,
                uploaded_by=principal.user_id,
                uploaded_at=ctx.clock.now(),
                variants={},
                refused=code,
            )
            .on_conflict_do_nothing()
        )


def _require_sha256(sha256: str) -> None:
    if not is_sha256(sha256):
        raise InvalidInput(
            "The name must be the lower-case hex SHA-256 of the content.", code="invalid_sha256"
        )


def _held_size(ctx: AppContext, principal: Principal, sha256: str) -> int | None:
    """Size of the file if this company holds it (and did not refuse it) and this caller sent its
    bytes, else None. To anyone else the file is not there, whoever else holds it: uploading the
    bytes is the only way on, and proves they have them."""
    if not is_sha256(sha256):
        return None
    with ctx.db.session(readonly=True) as session:
        return session.execute(
            sa.select(Blob.size)
            .join(
                BlobUploader,
                sa.and_(BlobUploader.company_id == Blob.company_id, BlobUploader.sha256 == Blob.sha256),
            )
            .where(
                Blob.company_id == principal.company_id,
                Blob.sha256 == sha256,
                Blob.refused.is_(None),
                BlobUploader.user_id == principal.user_id,
                BlobUploader.refused.is_(None),
            )
        ).scalar_one_or_none()


def _may_see(session: Session, principal: Principal, blob: Blob) -> bool:
    """Office roles see the company's files; field staff their own uploads and the photos of the
    orders they hold and of the measurements they took."""
    if principal.role in OFFICE:
        return True
    sent = sa.select(BlobUploader.user_id).where(
        BlobUploader.company_id == principal.company_id,
        BlobUploader.sha256 == blob.sha256,
        BlobUploader.user_id == principal.user_id,
        BlobUploader.refused.is_(None),
    )
    on_my_order = (
        sa.select(Photo.id)
        .join(WorkOrder, WorkOrder.id == Photo.order_id)
        .where(
            Photo.company_id == principal.company_id,
            Photo.blob_sha256 == blob.sha256,
            WorkOrder.assignee_id == principal.user_id,
        )
    )
    on_my_measurement = (
        sa.select(Photo.id)
        .join(Measurement, Measurement.id == Photo.measurement_id)
        .where(
            Photo.company_id == principal.company_id,
            Photo.blob_sha256 == blob.sha256,
            Measurement.user_id == principal.user_id,
        )
    )
    either = sa.union_all(sent, on_my_order, on_my_measurement).limit(1)
    return session.execute(either).first() is not None


def viewable(ctx: AppContext, principal: Principal, sha256: str, variant: str) -> str:
    """The hash to serve, after checking this caller may see this file at all (404 otherwise,
    before anything else: the answer must not tell whether the company holds it)."""
    if not is_sha256(sha256):
        raise NotFound("No such file.", code="blob_not_found")
    with ctx.db.session(readonly=True) as session:
        blob = session.get(Blob, (principal.company_id, sha256))
        if blob is None or blob.refused or not _may_see(session, principal, blob):
            raise NotFound("No such file.", code="blob_not_found")
        if variant != "original":
            copy = blob.variants.get(variant)
            if copy is None:
                raise NotFound("This file has no such copy.", code="blob_not_found")
            return copy
        if principal.role not in (Role.supervisor, Role.admin):
            raise Forbidden("Originals keep their GPS data and are for supervisors only.")
        removed = sa.select(Photo.id).where(
            Photo.company_id == principal.company_id,
            Photo.blob_sha256 == sha256,
            col(Photo.original_removed_at).is_not(None),
        )
        if session.execute(removed.limit(1)).first() is not None:
            raise NotFound("The original was removed by retention; its copies remain.", code="blob_not_found")
    # Its GPS is personal data: who was shown an original is kept, before the bytes go out.
    audit.record_alone(
        ctx.db,
        company_id=principal.company_id,
        event=audit.Event.photo_original_viewed,
        actor_user_id=principal.user_id,
        actor_device_id=principal.device_id,
        target_type="blob",
        target_id=sha256,
    )
    return sha256
