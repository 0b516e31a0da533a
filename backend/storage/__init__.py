"""Content-addressed blob storage (evidence photos, attachments) on local disk or S3."""

from backend.storage.base import CHUNK_SIZE, BlobInfo, BlobStore, is_sha256, require_sha256
from backend.storage.factory import build_blob_store
from backend.storage.local import LocalBlobStore
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
