"""The bucket's lifecycle rules: a safety net under ``heatcrew maintenance`` for what it may miss.

Unfinished resumable uploads live under ``uploads/<user>/<sha256>`` (``S3UploadStaging``). Each
resumed ``PUT`` replaces the object, so its age is the time since its last byte arrived, which
is what ``HEATCREW_UPLOAD_EXPIRY`` counts. The rules, applied by ``heatcrew blobs lifecycle``:

- ``heatcrew-expire-unfinished-uploads``: objects under the uploads prefix expire after the
  upload expiry, rounded *up* to whole days (S3 counts days; the app's own sweep stays the precise
  one, the rule only catches what no sweep reached);
- ``heatcrew-abort-incomplete-multipart``: multipart uploads left incomplete anywhere in the
  bucket (a worker that died while storing a large blob) are aborted after a day, their parts freed;
- ``heatcrew-expire-removed-blobs``: in a versioned bucket (the backup of the blob store), a blob
  removed by retention or an erasure stays as a noncurrent version for ``REMOVED_BLOB_DAYS`` (the
  backup window), then goes for good. Blobs are never overwritten (their name is their hash), so
  only removals make noncurrent versions. The uploads rule expires noncurrent versions after a day.

The bucket's other rules are kept: the configuration is read, HeatCrew's rules (by ID) are
replaced or added, and the whole is written back only when it changed.
"""

import math
from typing import Any

import msgspec
from botocore.exceptions import ClientError

from backend.storage.s3 import S3BlobStore

__all__ = (
    "ABORT_RULE_ID",
    "REMOVED_BLOBS_RULE_ID",
    "REMOVED_BLOB_DAYS",
    "UPLOADS_RULE_ID",
    "LifecyclePlan",
    "apply",
    "heatcrew_rules",
)

UPLOADS_RULE_ID = "heatcrew-expire-unfinished-uploads"
ABORT_RULE_ID = "heatcrew-abort-incomplete-multipart"
REMOVED_BLOBS_RULE_ID = "heatcrew-expire-removed-blobs"
_OURS = {UPLOADS_RULE_ID, ABORT_RULE_ID, REMOVED_BLOBS_RULE_ID}

REMOVED_BLOB_DAYS = 35
"""Days a removed blob stays recoverable in a versioned bucket: a month of daily backups, and a
few days to notice. An erased resident's photo original is gone for good after it."""


class LifecyclePlan(msgspec.Struct):
    bucket: str
    rules: list[dict[str, Any]]
    """The whole configuration as it is (or, in a dry run, would be) after applying."""
    changed: bool
    """HeatCrew's rules differed from the bucket's (or were missing)."""
    applied: bool
    """The configuration was written (not a dry run, and something changed)."""


def heatcrew_rules(
    *, blobs_prefix: str, uploads_prefix: str, upload_expiry_seconds: int
) -> list[dict[str, Any]]:
    days = max(1, math.ceil(upload_expiry_seconds / 86400))
    return [
        {
            "ID": UPLOADS_RULE_ID,
            "Filter": {"Prefix": uploads_prefix},
            "Status": "Enabled",
            "Expiration": {"Days": days},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        },
        {
            "ID": REMOVED_BLOBS_RULE_ID,
            "Filter": {"Prefix": blobs_prefix},
            "Status": "Enabled",
            "NoncurrentVersionExpiration": {"NoncurrentDays": REMOVED_BLOB_DAYS},
        },
        {
            "ID": ABORT_RULE_ID,
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
    ]


def current_rules(store: S3BlobStore) -> list[dict[str, Any]]:
    try:
        answer = store.client.get_bucket_lifecycle_configuration(Bucket=store.bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
            return []
        raise
    rules: list[dict[str, Any]] = answer.get("Rules", [])
    return rules


def apply(store: S3BlobStore, *, upload_expiry_seconds: int, dry_run: bool = False) -> LifecyclePlan:
    """Merge HeatCrew's rules into the bucket's lifecycle configuration (written unless ``dry_run``)."""
    existing = current_rules(store)
    ours = heatcrew_rules(
        blobs_prefix=store.prefix,
        uploads_prefix=store.uploads.prefix,
        upload_expiry_seconds=upload_expiry_seconds,
    )
    kept = [rule for rule in existing if rule.get("ID") not in _OURS]
    merged = kept + ours
    present = {rule.get("ID"): rule for rule in existing if rule.get("ID") in _OURS}
    changed = any(_normal(present.get(rule["ID"])) != _normal(rule) for rule in ours)
    applied = False
    if changed and not dry_run:
        store.client.put_bucket_lifecycle_configuration(
            Bucket=store.bucket, LifecycleConfiguration={"Rules": merged}
        )
        applied = True
    return LifecyclePlan(bucket=store.bucket, rules=merged, changed=changed, applied=applied)


def _normal(rule: dict[str, Any] | None) -> dict[str, Any] | None:
    """A rule as compared: S3 may answer with fields the request left out (``Prefix`` beside
    ``Filter``, an empty ``Expiration``), which are not a difference."""
    if rule is None:
        return None
    keep = (
        "ID",
        "Filter",
        "Status",
        "Expiration",
        "NoncurrentVersionExpiration",
        "AbortIncompleteMultipartUpload",
    )
    return {key: rule[key] for key in keep if key in rule and rule[key] not in ({}, None)}
