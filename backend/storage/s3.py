"""Blob store on S3 or an S3-compatible service (MinIO, moto, ...).

The upload is spooled (memory up to 8 MiB, then a temp file) while hashing, and only sent once the
digest matches, so a corrupt or truncated upload never reaches the bucket. S3 PUTs are atomic, so
readers never see partial objects either.
"""

import base64
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from boto3.session import Session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from backend.errors import BlobNotFound, BlobStoreUnavailable
from backend.storage.base import CHUNK_SIZE, BlobInfo, hash_stream, require_sha256

__all__ = ("S3BlobStore",)

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
    ) -> None:
        if not bucket:
            raise ValueError("S3 bucket name is required")
        self.bucket = bucket
        self.prefix = prefix
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
