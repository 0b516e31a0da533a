"""Pick the blob backend from settings, so the app never imports a concrete store directly."""

from pathlib import Path

from backend.storage.base import BlobStore
from backend.storage.local import LocalBlobStore

__all__ = ("build_blob_store",)


def build_blob_store(settings: object) -> BlobStore:
    """Build the store named by ``settings.blob_backend`` ("local" or "s3").

    Attributes are read with getattr so any settings-like object works (app settings, test
    namespaces). Creating a missing bucket is left to dev/test setup (``S3BlobStore.ensure_bucket``).
    """
    backend = str(getattr(settings, "blob_backend", None) or "local").strip().lower()
    if backend == "local":
        blob_dir = getattr(settings, "blob_dir", None)
        if not blob_dir:
            raise ValueError("blob_backend 'local' needs blob_dir")
        return LocalBlobStore(Path(blob_dir))
    if backend == "s3":
        bucket = getattr(settings, "s3_bucket", None)
        if not bucket:
            raise ValueError("blob_backend 's3' needs s3_bucket")
        # Here, not at the top: boto3 and botocore cost a worker ~9 MiB, needed only with S3.
        from backend.storage.s3 import S3BlobStore

        return S3BlobStore(
            bucket,
            endpoint_url=getattr(settings, "s3_endpoint_url", None) or None,
            region=getattr(settings, "s3_region", None) or None,
            access_key_id=getattr(settings, "s3_access_key_id", None) or None,
            secret_access_key=getattr(settings, "s3_secret_access_key", None) or None,
            scratch_dir=Path(var_dir) / "tmp" if (var_dir := getattr(settings, "var_dir", None)) else None,
        )
    raise ValueError(f"unknown blob_backend {backend!r} (expected 'local' or 's3')")
