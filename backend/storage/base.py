"""The blob-store contract shared by every backend.

Blobs are content-addressed: the name *is* the lowercase hex SHA-256 of the bytes, so a blob can
never change once stored, uploads are idempotent, and any reader can re-verify what it got.
"""

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import msgspec

from backend.errors import BlobHashMismatch, BlobTooLarge

if TYPE_CHECKING:
    from backend.storage.uploads import UploadStaging

__all__ = (
    "CHUNK_SIZE",
    "BlobInfo",
    "BlobStore",
    "file_chunks",
    "hash_file",
    "hash_stream",
    "is_sha256",
    "require_sha256",
)

#: Read/stream granularity: large enough to keep syscall and HTTP overhead low, small enough to
#: keep per-request memory bounded.
CHUNK_SIZE = 1 << 20

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class BlobInfo(msgspec.Struct, frozen=True):
    """What is known about a stored blob without reading it."""

    sha256: str
    size: int


def is_sha256(s: object) -> bool:
    """True for exactly 64 lowercase hex characters (the only accepted blob name form)."""
    return isinstance(s, str) and _SHA256_RE.fullmatch(s) is not None


def require_sha256(s: object) -> str:
    """Return ``s`` if it is a valid blob name; a ValueError otherwise, so no path/key injection."""
    if not is_sha256(s):
        raise ValueError(f"not a lowercase hex SHA-256: {s!r}")
    return s  # type: ignore[return-value]


def hash_stream(
    sha256: str,
    chunks: Iterable[bytes],
    write: Callable[[bytes], object] | None,
    *,
    max_size: int | None,
) -> int:
    """Feed ``chunks`` to ``write`` (if any) while hashing; return the size once the digest matches.

    Shared by all backends so size limits and hash checks behave identically. Raises
    BlobTooLarge before writing the chunk that would cross ``max_size`` (and stops consuming the
    stream), and BlobHashMismatch if the bytes do not hash to ``sha256``.
    """
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        if not chunk:
            continue
        size += len(chunk)
        if max_size is not None and size > max_size:
            raise BlobTooLarge(detail={"limit": max_size})
        digest.update(chunk)
        if write is not None:
            write(chunk)
    actual = digest.hexdigest()
    if actual != sha256:
        raise BlobHashMismatch(detail={"expected": sha256, "actual": actual})
    return size


def file_chunks(path: Path) -> Iterator[bytes]:
    """The file at ``path`` in :data:`CHUNK_SIZE` pieces (opened now, read lazily, then closed)."""
    f = path.open("rb")

    def chunks() -> Iterator[bytes]:
        with f:
            while chunk := f.read(CHUNK_SIZE):
                yield chunk

    return chunks()


def hash_file(sha256: str, path: Path) -> int:
    """Size of the file at ``path`` once it is shown to hash to ``sha256`` (BlobHashMismatch if not).

    Reads through one small reused buffer, so re-checking a large file costs no memory to speak of.
    """
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256")
        size = f.tell()
    actual = digest.hexdigest()
    if actual != sha256:
        raise BlobHashMismatch(detail={"expected": sha256, "actual": actual})
    return size


@runtime_checkable
class BlobStore(Protocol):
    """Synchronous content-addressed store; the web layer runs these calls in a worker thread."""

    def put(self, sha256: str, chunks: Iterable[bytes], *, max_size: int | None = None) -> BlobInfo:
        """Stream ``chunks`` in; the blob becomes visible only if it hashes to ``sha256``."""
        ...

    def put_file(self, sha256: str, path: Path) -> BlobInfo:
        """Store the file at ``path`` (hashed again on the way); ``path`` is consumed either way.

        ``path`` should be in :attr:`scratch_dir`, where a local store can move it into place
        instead of copying it.
        """
        ...

    @property
    def scratch_dir(self) -> Path:
        """A local directory for files being received (on the blob filesystem when there is one)."""
        ...

    @property
    def uploads(self) -> "UploadStaging":
        """Unfinished uploads, kept in this store so that every worker sees them."""
        ...

    def exists(self, sha256: str) -> bool:
        """Whether a blob with this hash is stored."""
        ...

    def stat(self, sha256: str) -> BlobInfo | None:
        """Size of a stored blob, or None if absent."""
        ...

    def open(self, sha256: str) -> Iterator[bytes]:
        """Chunks of the blob (raises BlobNotFound at call time, not on first iteration)."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove the blob; absent blobs are not an error."""
        ...

    def presigned_get_url(self, sha256: str, *, expires_in: int) -> str | None:
        """A time-limited direct download URL, or None if the backend cannot offer one."""
        ...

    def check(self) -> None:
        """Readiness probe: raise BlobStoreUnavailable if the store cannot be used right now."""
        ...

    def free_bytes(self) -> int | None:
        """Bytes still free where blobs are written, or None where that has no meaning (S3)."""
        ...
