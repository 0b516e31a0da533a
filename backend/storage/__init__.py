"""Content-addressed blob storage (evidence photos, attachments) on local disk or S3."""

from typing import TYPE_CHECKING

from backend.storage.base import CHUNK_SIZE, BlobInfo, BlobStore, is_sha256, require_sha256
from backend.storage.factory import build_blob_store
from backend.storage.local import LocalBlobStore

if TYPE_CHECKING:
    from backend.storage.s3 import S3BlobStore

__all__ = (
    "CHUNK_SIZE",
    "BlobInfo",
    "BlobStore",
    "LocalBlobStore",
    "S3BlobStore",
    "build_blob_store",
    "is_sha256",
    "require_sha256",
)


def __getattr__(name: str) -> object:
    # S3BlobStore on first use only: boto3 and botocore cost a worker ~9 MiB, needed only with S3.
    if name == "S3BlobStore":
        from backend.storage.s3 import S3BlobStore

        return S3BlobStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
