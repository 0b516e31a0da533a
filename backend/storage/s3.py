"""Blob store on S3 or an S3-compatible service (MinIO, moto, ...).

The upload is spooled (memory up to 8 MiB, then a temp file) while hashing, and only sent once the
digest matches, so a corrupt or truncated upload never reaches the bucket. S3 PUTs are atomic, so
readers never see partial objects either. Unfinished uploads live under ``uploads/<user>/<sha256>``
in the same bucket (give that prefix a lifecycle rule of a few days as a safety net); phones may
also put a whole file there themselves through a presigned URL.
"""

import base64
import contextlib
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from boto3.session import Session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from backend.errors import BlobNotFound, BlobStoreUnavailable
from backend.storage.base import (
    CHUNK_SIZE,
    BlobInfo,
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

__all__ = ("S3BlobStore", "S3UploadStaging")

_SPOOL_MAX = 8 << 20
# Below this size the upload is a single PutObject carrying ChecksumSHA256, so S3 itself re-verifies
# the bytes. Multipart uploads cannot carry a full-object SHA-256 (S3 only allows CRCs there).
_MULTIPART_THRESHOLD = 64 << 20
_MULTIPART_CHUNK = 16 << 20
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})

_S3Errors = (ClientError, BotoCoreError, Boto3Error)


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _unavailable(exc: BaseException, what: str) -> BlobStoreUnavailable:
    return BlobStoreUnavailable(f"S3 {what} failed: {exc}")


def _stream_body(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK_SIZE)
    except _S3Errors as exc:
        raise _unavailable(exc, "read") from exc
    finally:
        body.close()


class S3BlobStore:
    """Content-addressed blobs at ``s3://bucket/<prefix><sha256>``."""

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        prefix: str = "blobs/",
        scratch_dir: Path | None = None,
        uploads_prefix: str = "uploads/",
    ) -> None:
        if not bucket:
            raise ValueError("S3 bucket name is required")
        self.bucket = bucket
        self.prefix = prefix
        self._scratch_dir = Path(scratch_dir or Path(tempfile.gettempdir()) / "heatcrew-scratch")
        self.endpoint_url = endpoint_url
        self.region = region
        # Own session: boto3's default session is not thread-safe, clients are.
        session = Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        # Custom endpoints (MinIO, moto) generally do not do virtual-host bucket DNS.
        s3_cfg: dict[str, Any] = {"addressing_style": "path"} if endpoint_url else {}
        common: dict[str, Any] = {"signature_version": "s3v4", "s3": s3_cfg}
        self._client = session.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 4, "mode": "standard"},
                max_pool_connections=32,
                **common,
            ),
        )
        # The readiness probe must answer fast and must not hide an outage behind retries.
        self._probe_client = session.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(
                connect_timeout=2,
                read_timeout=2,
                retries={"total_max_attempts": 1, "mode": "standard"},
                **common,
            ),
        )
        self._transfer_config = TransferConfig(
            multipart_threshold=_MULTIPART_THRESHOLD, multipart_chunksize=_MULTIPART_CHUNK
        )
        self._uploads = S3UploadStaging(self, uploads_prefix)

    @property
    def client(self) -> Any:
        """The boto3 client (thread-safe), for the staging area of this store."""
        return self._client

    @property
    def scratch_dir(self) -> Path:
        self._scratch_dir.mkdir(parents=True, exist_ok=True)
        return self._scratch_dir

    @property
    def uploads(self) -> "S3UploadStaging":
        return self._uploads

    def __repr__(self) -> str:
        return (
            f"S3BlobStore(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r}, prefix={self.prefix!r})"
        )

    def key_for(self, sha256: str) -> str:
        """Object key of a blob; validates the name first."""
        return self.prefix + require_sha256(sha256)

    def put(self, sha256: str, chunks: Iterable[bytes], *, max_size: int | None = None) -> BlobInfo:
        """Spool and verify, then upload once; an existing blob is verified but not re-uploaded."""
        key = self.key_for(sha256)
        existing = self.stat(sha256)
        if existing is not None:
            hash_stream(sha256, chunks, None, max_size=max_size)  # verify without spooling
            return existing
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX) as spool:

            def write(chunk: bytes) -> None:
                try:
                    spool.write(chunk)
                except OSError as exc:  # spill file: temp disk full
                    raise BlobStoreUnavailable(f"Cannot spool upload: {exc}") from exc

            size = hash_stream(sha256, chunks, write, max_size=max_size)
            spool.seek(0)
            extra: dict[str, str] = {"ContentType": "application/octet-stream"}
            if size < _MULTIPART_THRESHOLD:
                extra["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
            try:
                self._client.upload_fileobj(
                    spool, self.bucket, key, ExtraArgs=extra, Config=self._transfer_config
                )
            except _S3Errors as exc:
                raise _unavailable(exc, "upload") from exc
        return BlobInfo(sha256=sha256, size=size)

    def put_file(self, sha256: str, path: Path) -> BlobInfo:
        """Verify the local file, then upload it in one request (S3 re-checks the SHA-256)."""
        path = Path(path)
        try:
            size = hash_file(sha256, path)
            if self.stat(sha256) is None:
                checked = sha256 if size < _MULTIPART_THRESHOLD else None
                self.upload_path(path, self.key_for(sha256), sha256=checked)
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
        return BlobInfo(sha256=sha256, size=size)

    def upload_path(
        self, path: Path, key: str, *, sha256: str | None = None, metadata: dict[str, str] | None = None
    ) -> None:
        extra: dict[str, Any] = {"ContentType": "application/octet-stream"}
        if sha256 is not None:
            extra["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
        if metadata:
            extra["Metadata"] = metadata
        try:
            self._client.upload_file(
                str(path), self.bucket, key, ExtraArgs=extra, Config=self._transfer_config
            )
        except _S3Errors as exc:
            raise _unavailable(exc, "upload") from exc

    def exists(self, sha256: str) -> bool:
        return self.stat(sha256) is not None

    def stat(self, sha256: str) -> BlobInfo | None:
        key = self.key_for(sha256)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise _unavailable(exc, "head") from exc
        except _S3Errors as exc:
            raise _unavailable(exc, "head") from exc
        return BlobInfo(sha256=sha256, size=int(head["ContentLength"]))

    def open(self, sha256: str) -> Iterator[bytes]:
        """Start the GET now (so absence raises here), stream the body lazily."""
        key = self.key_for(sha256)
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                raise BlobNotFound(detail={"sha256": sha256}) from exc
            raise _unavailable(exc, "get") from exc
        except _S3Errors as exc:
            raise _unavailable(exc, "get") from exc
        return _stream_body(resp["Body"])

    def delete(self, sha256: str) -> None:
        key = self.key_for(sha256)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return
            raise _unavailable(exc, "delete") from exc
        except _S3Errors as exc:
            raise _unavailable(exc, "delete") from exc

    def presigned_get_url(self, sha256: str, *, expires_in: int) -> str | None:
        """Let clients download straight from the bucket instead of through the app."""
        key = self.key_for(sha256)
        try:
            url: str = self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
            )
        except _S3Errors as exc:
            raise _unavailable(exc, "presign") from exc
        return url

    def check(self) -> None:
        """HEAD the bucket with short timeouts and no retries."""
        try:
            self._probe_client.head_bucket(Bucket=self.bucket)
        except _S3Errors as exc:
            raise _unavailable(exc, f"head_bucket {self.bucket!r}") from exc

    def free_bytes(self) -> int | None:
        """A bucket has no notion of free space."""
        return None

    def ensure_bucket(self) -> None:
        """Create the bucket if missing (dev/test setups; production buckets are provisioned)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise _unavailable(exc, "head_bucket") from exc
        except _S3Errors as exc:
            raise _unavailable(exc, "head_bucket") from exc
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        region = self._client.meta.region_name
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._client.create_bucket(**kwargs)
        except ClientError as exc:
            if _error_code(exc) != "BucketAlreadyOwnedByYou":
                raise _unavailable(exc, "create_bucket") from exc
        except _S3Errors as exc:
            raise _unavailable(exc, "create_bucket") from exc


_TOUCHED = "touched-at"


class S3UploadStaging:
    """Partials as objects ``<prefix><owner>/<sha256>`` with their last touch in the metadata."""

    direct_uploads = True

    def __init__(self, store: S3BlobStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"S3UploadStaging(bucket={self.store.bucket!r}, prefix={self.prefix!r})"

    def _key(self, owner: str, sha256: str) -> str:
        owner, sha256 = require_names(owner, sha256)
        return f"{self.prefix}{owner}/{sha256}"

    def stat(self, owner: str, sha256: str) -> Partial | None:
        key = self._key(owner, sha256)
        try:
            head = self.store.client.head_object(Bucket=self.store.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise _unavailable(exc, "head") from exc
        except _S3Errors as exc:
            raise _unavailable(exc, "head") from exc
        return Partial(sha256=sha256, size=int(head["ContentLength"]), touched_at=_touched(head))

    def save(self, owner: str, sha256: str, path: Path, *, touched_at: datetime) -> None:
        key = self._key(owner, sha256)
        try:
            self.store.upload_path(Path(path), key, metadata={_TOUCHED: _iso(touched_at)})
        finally:
            with contextlib.suppress(OSError):
                Path(path).unlink()

    def read(self, owner: str, sha256: str) -> Iterator[bytes] | None:
        key = self._key(owner, sha256)
        try:
            resp = self.store.client.get_object(Bucket=self.store.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise _unavailable(exc, "get") from exc
        except _S3Errors as exc:
            raise _unavailable(exc, "get") from exc
        return _stream_body(resp["Body"])

    def discard(self, owner: str, sha256: str) -> None:
        try:
            self.store.client.delete_object(Bucket=self.store.bucket, Key=self._key(owner, sha256))
        except ClientError as exc:
            if _error_code(exc) not in _NOT_FOUND_CODES:
                raise _unavailable(exc, "delete") from exc
        except _S3Errors as exc:
            raise _unavailable(exc, "delete") from exc

    def held(self, owner: str) -> list[Partial]:
        return [
            Partial(sha256=key.rsplit("/", 1)[1], size=int(obj["Size"]), touched_at=obj["LastModified"])
            for key, obj in self._listing(f"{self.prefix}{require_owner(owner)}/")
        ]

    def sweep(self, *, touched_before: datetime) -> int:
        """One listing of the prefix, then a HEAD per partial (there are few) for its last touch.

        Also clears this worker's local scratch directory of files a crash left behind.
        """
        removed = 0
        for key, _ in self._listing(self.prefix):
            owner, sha256 = key[len(self.prefix) :].split("/", 1)
            partial = self.stat(owner, sha256)
            if partial is not None and partial.touched_at < touched_before:
                self.discard(owner, sha256)
                removed += 1
        remove_abandoned_scratch(self.store.scratch_dir)
        return removed

    def expired(self, *, touched_before: datetime) -> list[tuple[str, Partial]]:
        found = []
        for key, _ in self._listing(self.prefix):
            owner, sha256 = key[len(self.prefix) :].split("/", 1)
            partial = self.stat(owner, sha256)
            if partial is not None and partial.touched_at < touched_before:
                found.append((owner, partial))
        return found

    def presign_put(
        self, owner: str, sha256: str, *, size: int, touched_at: datetime, expires_in: int
    ) -> PresignedUpload | None:
        """A PUT URL bound to this size and SHA-256: S3 refuses any other length or content."""
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
        headers = {
            "Content-Length": str(size),
            "x-amz-checksum-sha256": checksum,
            f"x-amz-meta-{_TOUCHED}": _iso(touched_at),
        }
        try:
            url: str = self.store.client.generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": self.store.bucket,
                    "Key": self._key(owner, sha256),
                    "ContentLength": size,
                    "ChecksumSHA256": checksum,
                    "Metadata": {_TOUCHED: _iso(touched_at)},
                },
                ExpiresIn=expires_in,
            )
        except _S3Errors as exc:
            raise _unavailable(exc, "presign") from exc
        return PresignedUpload(url=url, method="PUT", headers=headers)

    def _listing(self, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        try:
            pages = self.store.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.store.bucket, Prefix=prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    rest = key[len(self.prefix) :].split("/")
                    if len(rest) == 2 and is_sha256(rest[1]):
                        yield key, obj
        except _S3Errors as exc:
            raise _unavailable(exc, "list") from exc


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _touched(head: dict[str, Any]) -> datetime:
    raw = head.get("Metadata", {}).get(_TOUCHED)
    if raw:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(raw).astimezone(UTC)
    modified: datetime = head["LastModified"]
    return modified.astimezone(UTC)
