"""Unfinished uploads: the bytes one user has sent so far of one file, kept between requests.

A phone on a bad network loses its connection mid-upload. Whatever arrived before the drop is
kept here, under the user and the file's SHA-256, so the phone can ask how much the server holds
and send only the rest. The partial lives in the blob store itself (a directory beside the blobs,
or an ``uploads/`` prefix in the bucket), so every worker of a deployment sees it, and it is
replaced atomically as a whole (never appended in place), so a reader never sees a torn file and
two racing requests can only lose progress, never mix bytes. Nothing here is trusted: the full
file is hashed before it becomes a blob. Each partial records when it was last touched (the
injected clock), and expires a configured time after that.
"""

import contextlib
import os
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import msgspec

from backend.storage.base import require_sha256

__all__ = (
    "Partial",
    "PresignedUpload",
    "UploadStaging",
    "remove_abandoned_scratch",
    "require_names",
    "require_owner",
)

_OWNER_RE = re.compile(r"[0-9a-zA-Z_-]{1,64}")
# Scratch files older than this (by the real clock) were left by a worker that crashed mid-upload.
_ABANDONED_SECONDS = 24 * 3600


class Partial(msgspec.Struct, frozen=True):
    """What the server holds of one user's unfinished upload."""

    sha256: str
    size: int
    touched_at: datetime


class PresignedUpload(msgspec.Struct, frozen=True):
    """A direct upload into the bucket: send ``method`` to ``url`` with exactly these ``headers``."""

    url: str
    method: str
    headers: dict[str, str]


def require_owner(owner: object) -> str:
    """The owner (a user id) as a safe path segment / key part; ValueError otherwise."""
    if not isinstance(owner, str) or _OWNER_RE.fullmatch(owner) is None:
        raise ValueError(f"not a valid upload owner: {owner!r}")
    return owner


def require_names(owner: object, sha256: object) -> tuple[str, str]:
    return require_owner(owner), require_sha256(sha256)


def remove_abandoned_scratch(scratch: Path) -> None:
    """Delete receiving files (``upload.*``) that no live request can still be writing."""
    abandoned = time.time() - _ABANDONED_SECONDS
    try:
        names = os.listdir(scratch)
    except OSError:
        return
    for name in names:
        if name.startswith("upload."):
            path = scratch / name
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < abandoned:
                    path.unlink()


@runtime_checkable
class UploadStaging(Protocol):
    """Partials of one blob store; synchronous, called from worker threads."""

    #: Whether :meth:`presign_put` offers phones a direct upload into the store.
    direct_uploads: bool

    def stat(self, owner: str, sha256: str) -> Partial | None:
        """The partial held for ``owner`` and ``sha256``, or None."""
        ...

    def save(self, owner: str, sha256: str, path: Path, *, touched_at: datetime) -> None:
        """Replace the partial with the file at ``path`` (consumed: moved or deleted)."""
        ...

    def read(self, owner: str, sha256: str) -> Iterator[bytes] | None:
        """Chunks of the partial (opened now, streamed lazily), or None if there is none."""
        ...

    def discard(self, owner: str, sha256: str) -> None:
        """Forget the partial; absent is not an error."""
        ...

    def held(self, owner: str) -> list[Partial]:
        """Every partial of ``owner`` (for quotas)."""
        ...

    def sweep(self, *, touched_before: datetime) -> int:
        """Remove partials last touched before ``touched_before``; returns how many."""
        ...

    def expired(self, *, touched_before: datetime) -> list[tuple[str, Partial]]:
        """The partials (with their owner) last touched before ``touched_before``; nothing removed."""
        ...

    def presign_put(
        self, owner: str, sha256: str, *, size: int, touched_at: datetime, expires_in: int
    ) -> PresignedUpload | None:
        """A direct upload of the whole file into the partial's place, or None if not offered."""
        ...
