"""Uploading files (photos, signature images): the answers and the headers of the blob endpoints.

Files travel apart from actions and are named by the SHA-256 of their bytes. How a phone on a bad
network uploads one (``backend/evidence/blobs.py`` documents each endpoint):

1. ``HEAD /api/v1/blobs/{sha256}``: ``200`` when the server already holds the file; ``404`` with
   ``Upload-Offset: N``, the bytes of this user's unfinished upload it holds (``0`` for none).
2. ``PUT /api/v1/blobs/{sha256}`` with the whole file, or ``PUT ...?offset=N`` with the bytes from
   ``N`` on. What arrives before a dropped connection is kept; a body that ends normally completes
   the file, which is then verified and stored (``201``, ``200`` if it was already there). A wrong
   ``offset`` answers ``409 upload_offset_mismatch`` with the right one.
3. With an S3 store the phone may instead ask ``POST .../presign`` for a direct upload URL, send the
   file there, and call ``POST .../complete``.
"""

from datetime import datetime
from typing import Annotated

import msgspec

from mobile_contract.types import MAX_SAFE_INT, Sha256Hex

__all__ = (
    "UPLOAD_EXPIRES",
    "UPLOAD_LENGTH",
    "UPLOAD_OFFSET",
    "BlobStored",
    "CompleteRequest",
    "DirectUpload",
    "PresignRequest",
    "UploadProgress",
)

#: Response header: bytes of the unfinished upload the server holds (also sent with 202 and 409).
UPLOAD_OFFSET = "Upload-Offset"
#: Optional request header: the whole file's size, when a request deliberately sends only a piece.
UPLOAD_LENGTH = "Upload-Length"
#: Response header (HTTP date): when the server forgets an unfinished upload that gets no more bytes.
UPLOAD_EXPIRES = "Upload-Expires"

FileSize = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT, description="Bytes.")]


class BlobStored(msgspec.Struct, frozen=True):
    """201: the file was verified and stored now; 200: the server already held it."""

    sha256: Sha256Hex
    size: FileSize


class UploadProgress(msgspec.Struct, frozen=True):
    """202: a piece was kept (``Upload-Length`` not reached yet); send the rest from ``offset``."""

    sha256: Sha256Hex
    offset: FileSize
    expires_at: datetime


class PresignRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Ask for a direct upload URL for a file of exactly ``size`` bytes."""

    size: FileSize


class DirectUpload(msgspec.Struct, frozen=True):
    """Send the file with ``method`` to ``url`` with exactly ``headers``, then call ``complete``.

    ``stored`` is true (and ``url`` null) when the server already holds the file.
    """

    sha256: Sha256Hex
    stored: bool
    url: str | None = None
    method: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    expires_at: datetime | None = None


class CompleteRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Optional body of ``complete``: the size the phone sent, checked against what arrived."""

    size: FileSize | None = None
