"""`heatcrew blobs lifecycle` against moto_server: the bucket's rules are read back after each run.
Unfinished uploads (``uploads/``) expire after HEATCREW_UPLOAD_EXPIRY, incomplete multipart
uploads are aborted, and the bucket's other rules are kept."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from backend.cli import main
from backend.storage.lifecycle import ABORT_RULE_ID, REMOVED_BLOB_DAYS, REMOVED_BLOBS_RULE_ID, UPLOADS_RULE_ID
from tests.fixtures.s3 import (
    TEST_ACCESS_KEY_ID,
    TEST_REGION,
    TEST_SECRET_ACCESS_KEY,
    moto_s3_endpoint,  # noqa: F401
    s3_bucket,  # noqa: F401
    s3_client,
)

THEIRS = {
    "ID": "keep-access-logs-30-days",
    "Filter": {"Prefix": "logs/"},
    "Status": "Enabled",
    "Expiration": {"Days": 30},
}


@pytest.fixture
def run(moto_s3_endpoint: str, s3_bucket: str, tmp_path: Path):  # noqa: F811
    def invoke(*args: str, **env: str):
        environment = {
            "HEATCREW_VAR_DIR": str(tmp_path / "var"),
            "HEATCREW_SECRET_KEY": "test-signing-key-not-for-production-0123456789",
            "HEATCREW_BLOB_BACKEND": "s3",
            "HEATCREW_S3_BUCKET": s3_bucket,
            "HEATCREW_S3_ENDPOINT_URL": moto_s3_endpoint,
            "HEATCREW_S3_REGION": TEST_REGION,
            "HEATCREW_S3_ACCESS_KEY_ID": TEST_ACCESS_KEY_ID,
            "HEATCREW_S3_SECRET_ACCESS_KEY": TEST_SECRET_ACCESS_KEY,
            **env,
        }
        return CliRunner().invoke(
            main, ["blobs", "lifecycle", *args], env=environment, catch_exceptions=False
        )

    return invoke


def rules(endpoint: str, bucket: str) -> dict[str, dict]:
    answer = s3_client(endpoint).get_bucket_lifecycle_configuration(Bucket=bucket)
    return {rule["ID"]: rule for rule in answer["Rules"]}


def test_the_rules_are_merged_into_the_buckets_and_read_back(
    run,
    moto_s3_endpoint: str,  # noqa: F811
    s3_bucket: str,  # noqa: F811
) -> None:
    client = s3_client(moto_s3_endpoint)
    client.put_bucket_lifecycle_configuration(Bucket=s3_bucket, LifecycleConfiguration={"Rules": [THEIRS]})

    dry = run("--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would change" in dry.output
    assert set(rules(moto_s3_endpoint, s3_bucket)) == {THEIRS["ID"]}  # a dry run writes nothing

    applied = run()
    assert applied.exit_code == 0 and "lifecycle applied" in applied.output
    now = rules(moto_s3_endpoint, s3_bucket)
    assert set(now) == {THEIRS["ID"], UPLOADS_RULE_ID, ABORT_RULE_ID, REMOVED_BLOBS_RULE_ID}
    assert now[THEIRS["ID"]]["Expiration"] == {"Days": 30}
    uploads = now[UPLOADS_RULE_ID]
    assert uploads["Filter"]["Prefix"] == "uploads/" and uploads["Status"] == "Enabled"
    assert uploads["Expiration"]["Days"] == 1  # HEATCREW_UPLOAD_EXPIRY's 24 h
    assert uploads["NoncurrentVersionExpiration"]["NoncurrentDays"] == 1
    assert now[ABORT_RULE_ID]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    # In a versioned bucket a blob removed by retention or an erasure goes for good after the backup window.
    removed = now[REMOVED_BLOBS_RULE_ID]
    assert removed["Filter"]["Prefix"] == "blobs/"
    assert removed["NoncurrentVersionExpiration"]["NoncurrentDays"] == REMOVED_BLOB_DAYS

    again = run()
    assert again.exit_code == 0 and "lifecycle unchanged" in again.output

    # A longer expiry (rounded up to whole days) replaces HeatCrew's rule, never adds a second.
    longer = run(HEATCREW_UPLOAD_EXPIRY=str(2 * 86400 + 1))
    assert "lifecycle applied" in longer.output
    now = rules(moto_s3_endpoint, s3_bucket)
    assert len(now) == 4 and now[UPLOADS_RULE_ID]["Expiration"]["Days"] == 3


def test_a_bucket_without_rules_gets_heatcrews(run, moto_s3_endpoint: str, s3_bucket: str) -> None:  # noqa: F811
    assert run().exit_code == 0
    assert set(rules(moto_s3_endpoint, s3_bucket)) == {UPLOADS_RULE_ID, ABORT_RULE_ID, REMOVED_BLOBS_RULE_ID}


def test_a_local_store_has_no_lifecycle(run) -> None:
    result = run(HEATCREW_BLOB_BACKEND="local")
    assert result.exit_code == 1
    assert "heatcrew maintenance" in result.output
