"""Blob store on a local (or mounted) filesystem.

Layout: ``root/ab/cd/<sha256>`` for blobs (sharded so no directory grows huge), ``root/tmp/``
for in-flight uploads and ``root/uploads/<user>/<sha256>`` for unfinished (resumable) ones.
Uploads are written to a temp file on the same filesystem, fsynced and then ``os.replace``d into
place, so a reader never sees a half-written or unverified blob.
"""

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from backend.errors import BlobNotFound, BlobStoreUnavailable
from backend.storage.base import (
    CHUNK_SIZE,
    BlobInfo,
    file_chunks,
    hash_file,
    hash_stream,
    is_sha256,
    require_sha256,
)
from backend.storage.uploads import (
    Partial,
    PresignedUpload,
    remove_abandoned_scratch,
    require_names,
    require_owner,
)

__all__ = ("LocalBlobStore", "LocalUploadStaging")


def _fsync_dir(path: Path) -> None:
    """Persist directory entries (a rename is only durable once its directory is synced)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories; durability is best effort there
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _fs_errors(what: str) -> Iterator[None]:
    """Report filesystem failures (disk full, root gone, EIO) as the store being unavailable."""
    try:
        yield
    except OSError as exc:
        raise BlobStoreUnavailable(f"Blob directory {what} failed: {exc}") from exc


def _read_chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        while chunk := f.read(CHUNK_SIZE):
            yield chunk


class LocalBlobStore:
    """Content-addressed blobs under ``root``; safe for concurrent writers of the same blob."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BlobStoreUnavailable(f"Cannot create blob directory {self.root}: {exc}") from exc
        self._uploads = LocalUploadStaging(self.root / "uploads", self.tmp_dir)

    @property
    def scratch_dir(self) -> Path:
        return self.tmp_dir

    @property
    def uploads(self) -> "LocalUploadStaging":
        return self._uploads

    def __repr__(self) -> str:
        return f"LocalBlobStore(root={str(self.root)!r})"

    def path_for(self, sha256: str) -> Path:
        """Where the blob lives (whether or not it exists); validates the name first."""
        require_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, sha256: str, chunks: Iterable[bytes], *, max_size: int | None = None) -> BlobInfo:
        """Verify-then-rename upload; an already stored blob is only verified, never rewritten."""
        final = self.path_for(sha256)
        if final.is_file():
            size = hash_stream(sha256, chunks, None, max_size=max_size)
            return BlobInfo(sha256=sha256, size=size)

        with _fs_errors("write"):
            fd, tmp_name = tempfile.mkstemp(prefix=f"{sha256[:16]}.", suffix=".part", dir=self.tmp_dir)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:

                def write(chunk: bytes) -> None:
                    with _fs_errors("write"):
                        f.write(chunk)

                # Errors raised by ``chunks`` itself (client went away, ...) propagate unchanged.
                size = hash_stream(sha256, chunks, write, max_size=max_size)
                with _fs_errors("write"):
                    f.flush()
                    os.fsync(f.fileno())
            with _fs_errors("write"):
                os.chmod(tmp, 0o644)
                self._make_shard_dir(final.parent)
                os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(final.parent)
        return BlobInfo(sha256=sha256, size=size)

    def put_file(self, sha256: str, path: Path) -> BlobInfo:
        """Verify the file, then move it into place (no copy when it is on the blob filesystem)."""
        final = self.path_for(sha256)
        path = Path(path)
        try:
            with _fs_errors("read"):
                size = hash_file(sha256, path)
            if final.is_file():
                return BlobInfo(sha256=sha256, size=size)
            with _fs_errors("write"):
                with path.open("rb+") as f:
                    os.fsync(f.fileno())
                os.chmod(path, 0o644)
                self._make_shard_dir(final.parent)
                try:
                    os.replace(path, final)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:  # not on the blob filesystem: copy instead
                        raise
                    return self.put(sha256, file_chunks(path))
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
        _fsync_dir(final.parent)
        return BlobInfo(sha256=sha256, size=size)

    def _make_shard_dir(self, shard: Path) -> None:
        if shard.is_dir():
            return
        shard.mkdir(parents=True, exist_ok=True)
        _fsync_dir(shard.parent)
        _fsync_dir(self.root)

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def stat(self, sha256: str) -> BlobInfo | None:
        try:
            st = self.path_for(sha256).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return BlobInfo(sha256=sha256, size=st.st_size)

    def open(self, sha256: str) -> Iterator[bytes]:
        """Open eagerly (so absence raises now and a later delete cannot cut the stream short)."""
        path = self.path_for(sha256)
        try:
            f = path.open("rb")
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise BlobNotFound(detail={"sha256": sha256}) from exc
        except OSError as exc:
            raise BlobStoreUnavailable(f"Cannot read blob directory: {exc}") from exc
        return _read_chunks(f)

    def delete(self, sha256: str) -> None:
        # Shard directories are left in place: removing them would race with a concurrent put.
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            self.path_for(sha256).unlink()

    def presigned_get_url(self, sha256: str, *, expires_in: int) -> str | None:
        """Local files have no direct URL; callers stream through the app instead."""
        require_sha256(sha256)
        return None

    def check(self) -> None:
        """Prove we can create, sync and remove a file where uploads are staged."""
        try:
            if not self.root.is_dir():
                raise NotADirectoryError(f"{self.root} is not a directory")
            fd, name = tempfile.mkstemp(prefix="check.", dir=self.tmp_dir)
            try:
                os.write(fd, b"ok")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(name)
        except OSError as exc:
            raise BlobStoreUnavailable(f"Blob directory is not writable: {exc}") from exc

    def free_bytes(self) -> int | None:
        """Free bytes on the blob directory's file system (the readiness threshold is checked on it)."""
        try:
            return shutil.disk_usage(self.root).free
        except OSError as exc:
            raise BlobStoreUnavailable(f"Cannot read the free space of {self.root}: {exc}") from exc


class LocalUploadStaging:
    """Partials as files ``root/<owner>/<sha256>``; the file's mtime is when it was last touched."""

    direct_uploads = False

    def __init__(self, root: Path, scratch: Path) -> None:
        self.root = Path(root)
        self.scratch = Path(scratch)

    def __repr__(self) -> str:
        return f"LocalUploadStaging(root={str(self.root)!r})"

    def _path(self, owner: str, sha256: str) -> Path:
        owner, sha256 = require_names(owner, sha256)
        return self.root / owner / sha256

    def stat(self, owner: str, sha256: str) -> Partial | None:
        try:
            st = self._path(owner, sha256).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Partial(sha256=sha256, size=st.st_size, touched_at=datetime.fromtimestamp(st.st_mtime, UTC))

    def save(self, owner: str, sha256: str, path: Path, *, touched_at: datetime) -> None:
        target = self._path(owner, sha256)
        path = Path(path)
        try:
            with _fs_errors("write"):
                # Stamped before it becomes visible, so a sweeper never sees the real-clock mtime.
                stamp = int(touched_at.timestamp() * 1e9)
                os.utime(path, ns=(stamp, stamp))
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    def read(self, owner: str, sha256: str) -> Iterator[bytes] | None:
        try:
            return file_chunks(self._path(owner, sha256))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise BlobStoreUnavailable(f"Cannot read an unfinished upload: {exc}") from exc

    def discard(self, owner: str, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            self._path(owner, sha256).unlink()

    def held(self, owner: str) -> list[Partial]:
        folder = self.root / require_owner(owner)
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        held = [self.stat(owner, name) for name in names if is_sha256(name)]
        return [partial for partial in held if partial is not None]

    def sweep(self, *, touched_before: datetime) -> int:
        """Remove expired partials, and files a crashed worker left in the scratch directory."""
        removed = 0
        limit = touched_before.timestamp()
        for folder in _listdir(self.root):
            for name in _listdir(self.root / folder):
                path = self.root / folder / name
                with contextlib.suppress(OSError):
                    if path.stat().st_mtime < limit:
                        path.unlink()
                        removed += 1
        remove_abandoned_scratch(self.scratch)
        return removed

    def expired(self, *, touched_before: datetime) -> list[tuple[str, Partial]]:
        found = []
        for folder in _listdir(self.root):
            for name in _listdir(self.root / folder):
                if not is_sha256(name):
                    continue
                partial = self.stat(folder, name) if _is_owner(folder) else None
                if partial is not None and partial.touched_at < touched_before:
                    found.append((folder, partial))
        return found

    def presign_put(
        self, owner: str, sha256: str, *, size: int, touched_at: datetime, expires_in: int
    ) -> PresignedUpload | None:
        """A directory has no URL of its own: uploads go through the app."""
        require_names(owner, sha256)
        return None


def _is_owner(name: str) -> bool:
    try:
        require_owner(name)
    except ValueError:
        return False
    return True


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
