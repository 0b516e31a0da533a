"""Behaviour of the content-addressed blob store, identical for the local and S3 backends."""

import hashlib
import os
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from backend.errors import BlobHashMismatch, BlobNotFound, BlobStoreUnavailable, BlobTooLarge
from backend.storage import (
    CHUNK_SIZE,
    BlobInfo,
    BlobStore,
    LocalBlobStore,
    S3BlobStore,
    build_blob_store,
    is_sha256,
)
from tests.fixtures.s3 import (
    TEST_ACCESS_KEY_ID,
    TEST_REGION,
    TEST_SECRET_ACCESS_KEY,
    moto_s3_endpoint,  # noqa: F401
    s3_bucket,  # noqa: F401
)

__all__ = ()

SMALL_CHUNK = 64 * 1024


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _chunked(data: bytes, size: int = SMALL_CHUNK) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _read_all(store: BlobStore, sha256: str) -> bytes:
    return b"".join(store.open(sha256))


def _s3_store(endpoint: str, bucket: str) -> S3BlobStore:
    return S3BlobStore(
        bucket,
        endpoint_url=endpoint,
        region=TEST_REGION,
        access_key_id=TEST_ACCESS_KEY_ID,
        secret_access_key=TEST_SECRET_ACCESS_KEY,
    )


def _tmp_files(store: BlobStore) -> list[str]:
    return os.listdir(store.tmp_dir) if isinstance(store, LocalBlobStore) else []


@pytest.fixture(params=["local", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    return _s3_store(request.getfixturevalue("moto_s3_endpoint"), request.getfixturevalue("s3_bucket"))


@pytest.fixture(scope="module")
def big_blob() -> bytes:
    return os.urandom(3 * 1024 * 1024 + 123)


def test_store_satisfies_protocol(blob_store: BlobStore) -> None:
    assert isinstance(blob_store, BlobStore)


def test_round_trip_multi_chunk(blob_store: BlobStore, big_blob: bytes) -> None:
    sha = _sha(big_blob)
    assert not blob_store.exists(sha)
    assert blob_store.stat(sha) is None

    info = blob_store.put(sha, _chunked(big_blob))

    assert info == BlobInfo(sha256=sha, size=len(big_blob))
    assert blob_store.exists(sha)
    assert blob_store.stat(sha) == info
    chunks = list(blob_store.open(sha))
    assert len(chunks) > 1
    assert all(len(c) <= CHUNK_SIZE for c in chunks)
    assert b"".join(chunks) == big_blob
    assert _tmp_files(blob_store) == []


def test_empty_blob(blob_store: BlobStore) -> None:
    sha = _sha(b"")
    assert blob_store.put(sha, iter(())) == BlobInfo(sha256=sha, size=0)
    assert _read_all(blob_store, sha) == b""


def test_second_put_is_idempotent_and_consumes_stream(blob_store: BlobStore) -> None:
    data = os.urandom(200_000)
    sha = _sha(data)
    first = blob_store.put(sha, _chunked(data))
    path = blob_store.path_for(sha) if isinstance(blob_store, LocalBlobStore) else None
    before = path.stat() if path is not None else None

    stream = _chunked(data)
    second = blob_store.put(sha, stream)

    assert second == first
    assert next(stream, None) is None  # fully consumed (verified), not skipped
    assert _read_all(blob_store, sha) == data
    if path is not None and before is not None:
        after = path.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten


def test_hash_mismatch_leaves_nothing(blob_store: BlobStore) -> None:
    claimed = _sha(b"what the client promised")
    actual = b"what the client sent" * 10_000

    with pytest.raises(BlobHashMismatch) as exc_info:
        blob_store.put(claimed, _chunked(actual))

    assert exc_info.value.detail == {"expected": claimed, "actual": _sha(actual)}
    assert not blob_store.exists(claimed)
    assert blob_store.stat(claimed) is None
    assert _tmp_files(blob_store) == []


def test_mismatching_reupload_keeps_existing_blob(blob_store: BlobStore) -> None:
    data = b"original evidence"
    sha = _sha(data)
    blob_store.put(sha, [data])

    with pytest.raises(BlobHashMismatch):
        blob_store.put(sha, [b"tampered evidence"])

    assert _read_all(blob_store, sha) == data


def test_max_size_exceeded_leaves_nothing(blob_store: BlobStore) -> None:
    data = os.urandom(300_000)
    sha = _sha(data)

    with pytest.raises(BlobTooLarge) as exc_info:
        blob_store.put(sha, _chunked(data), max_size=len(data) - 1)

    assert exc_info.value.detail == {"limit": len(data) - 1}
    assert not blob_store.exists(sha)
    assert _tmp_files(blob_store) == []


def test_max_size_exactly_reached_is_accepted(blob_store: BlobStore) -> None:
    data = os.urandom(100_000)
    sha = _sha(data)
    assert blob_store.put(sha, _chunked(data), max_size=len(data)).size == len(data)


def test_max_size_stops_reading_the_stream(blob_store: BlobStore) -> None:
    consumed = 0

    def endless() -> Iterator[bytes]:
        nonlocal consumed
        while True:
            consumed += 1
            yield b"x" * SMALL_CHUNK

    with pytest.raises(BlobTooLarge):
        blob_store.put("0" * 64, endless(), max_size=10 * SMALL_CHUNK)
    assert consumed == 11


def test_open_missing_raises_at_call_time(blob_store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        blob_store.open(_sha(b"never stored"))


@pytest.mark.parametrize(
    "name",
    [
        "",
        "abc",
        "A" * 64,
        "g" * 64,
        "0" * 63,
        "0" * 65,
        "0" * 64 + "\n",
        "../" + "0" * 61,
        "00/" + "0" * 61,
    ],
)
def test_invalid_name_rejected(blob_store: BlobStore, name: str) -> None:
    assert not is_sha256(name)
    with pytest.raises(ValueError):
        blob_store.put(name, [b"x"])
    with pytest.raises(ValueError):
        blob_store.open(name)
    with pytest.raises(ValueError):
        blob_store.exists(name)
    with pytest.raises(ValueError):
        blob_store.stat(name)
    with pytest.raises(ValueError):
        blob_store.delete(name)
    with pytest.raises(ValueError):
        blob_store.presigned_get_url(name, expires_in=60)


def test_delete(blob_store: BlobStore) -> None:
    data = b"to be deleted"
    sha = _sha(data)
    blob_store.put(sha, [data])

    blob_store.delete(sha)

    assert not blob_store.exists(sha)
    with pytest.raises(BlobNotFound):
        blob_store.open(sha)
    blob_store.delete(sha)  # absent: no error
    blob_store.put(sha, [data])  # and it can be stored again
    assert _read_all(blob_store, sha) == data


def test_check_passes_on_healthy_store(blob_store: BlobStore) -> None:
    blob_store.check()
    assert _tmp_files(blob_store) == []


def test_concurrent_puts_of_same_blob(blob_store: BlobStore) -> None:
    data = os.urandom(CHUNK_SIZE + 4321)
    sha = _sha(data)
    barrier = threading.Barrier(8)
    results: list[BlobInfo] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(blob_store.put(sha, _chunked(data)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    assert results == [BlobInfo(sha256=sha, size=len(data))] * 8
    assert _read_all(blob_store, sha) == data
    assert _tmp_files(blob_store) == []


# --- local-only -------------------------------------------------------------------------------


def test_local_layout_is_sharded(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "root")
    data = b"sharded"
    sha = _sha(data)
    store.put(sha, [data])
    assert (tmp_path / "root" / sha[:2] / sha[2:4] / sha).read_bytes() == data


def test_local_check_fails_when_root_became_a_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    store = LocalBlobStore(root)
    store.check()
    for p in sorted(root.rglob("*"), reverse=True):
        p.rmdir()
    root.rmdir()
    root.write_bytes(b"not a directory")

    with pytest.raises(BlobStoreUnavailable):
        store.check()
    with pytest.raises(BlobStoreUnavailable):
        store.put(_sha(b"x"), [b"x"])


def test_local_presigned_url_is_none(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    sha = _sha(b"x")
    store.put(sha, [b"x"])
    assert store.presigned_get_url(sha, expires_in=60) is None


def test_failed_stream_propagates_and_leaves_nothing(blob_store: BlobStore) -> None:
    """An error from the upload source is the caller's, not a store outage; no partial blob."""
    sha = _sha(b"partial and more")

    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        blob_store.put(sha, broken())
    assert not blob_store.exists(sha)
    assert _tmp_files(blob_store) == []


# --- S3-only ----------------------------------------------------------------------------------


def test_s3_presigned_url_fetches_bytes(moto_s3_endpoint: str, s3_bucket: str) -> None:  # noqa: F811
    store = _s3_store(moto_s3_endpoint, s3_bucket)
    data = os.urandom(50_000)
    sha = _sha(data)
    store.put(sha, _chunked(data))

    url = store.presigned_get_url(sha, expires_in=300)

    assert url is not None and url.startswith(moto_s3_endpoint)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as resp:
        assert resp.read() == data


def test_s3_object_key_uses_prefix(moto_s3_endpoint: str, s3_bucket: str) -> None:  # noqa: F811
    store = _s3_store(moto_s3_endpoint, s3_bucket)
    sha = _sha(b"k")
    store.put(sha, [b"k"])
    obj = store._client.get_object(Bucket=s3_bucket, Key=f"blobs/{sha}")
    assert obj["Body"].read() == b"k"


def test_s3_check_fails_for_missing_bucket(moto_s3_endpoint: str) -> None:  # noqa: F811
    store = _s3_store(moto_s3_endpoint, "heatcrew-no-such-bucket")
    with pytest.raises(BlobStoreUnavailable):
        store.check()


def test_s3_check_fails_fast_for_dead_endpoint() -> None:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = _s3_store(f"http://127.0.0.1:{port}", "whatever")

    started = time.monotonic()
    with pytest.raises(BlobStoreUnavailable):
        store.check()
    assert time.monotonic() - started < 10


def test_s3_put_to_missing_bucket_is_unavailable(moto_s3_endpoint: str) -> None:  # noqa: F811
    store = _s3_store(moto_s3_endpoint, "heatcrew-no-such-bucket")
    with pytest.raises(BlobStoreUnavailable):
        store.put(_sha(b"x"), [b"x"])


def test_s3_ensure_bucket_creates_it(moto_s3_endpoint: str) -> None:  # noqa: F811
    store = _s3_store(moto_s3_endpoint, f"heatcrew-ensure-{os.urandom(6).hex()}")
    with pytest.raises(BlobStoreUnavailable):
        store.check()
    store.ensure_bucket()
    store.ensure_bucket()  # idempotent
    store.check()


# --- factory ----------------------------------------------------------------------------------


def _settings(**overrides: object) -> SimpleNamespace:
    base: dict[str, object] = {
        "blob_backend": "local",
        "blob_dir": None,
        "s3_endpoint_url": None,
        "s3_bucket": None,
        "s3_region": None,
        "s3_access_key_id": None,
        "s3_secret_access_key": None,
    }
    base.update(overrides)
    return SimpleNamespace(**base)


def test_factory_builds_local(tmp_path: Path) -> None:
    store = build_blob_store(_settings(blob_dir=tmp_path / "b"))
    assert isinstance(store, LocalBlobStore)
    store.check()


def test_factory_builds_s3(moto_s3_endpoint: str, s3_bucket: str) -> None:  # noqa: F811
    store = build_blob_store(
        _settings(
            blob_backend="s3",
            s3_bucket=s3_bucket,
            s3_endpoint_url=moto_s3_endpoint,
            s3_region=TEST_REGION,
            s3_access_key_id=TEST_ACCESS_KEY_ID,
            s3_secret_access_key=TEST_SECRET_ACCESS_KEY,
        )
    )
    assert isinstance(store, S3BlobStore)
    store.check()


@pytest.mark.parametrize(
    "overrides",
    [{"blob_backend": "ftp"}, {"blob_backend": "local"}, {"blob_backend": "s3"}],
)
def test_factory_rejects_bad_settings(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_blob_store(_settings(**overrides))


# --- verified files and unfinished uploads ---------------------------------------------------------

WHEN = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
OWNER = "0190f1d2-7a3b-7c4d-8e5f-000000000001"


def _scratch_file(store: BlobStore, data: bytes) -> Path:
    path = store.scratch_dir / f"upload.test-{_sha(data)[:8]}.part"
    path.write_bytes(data)
    return path


def test_put_file_stores_a_verified_file_and_consumes_it(blob_store: BlobStore, big_blob: bytes) -> None:
    path = _scratch_file(blob_store, big_blob)
    info = blob_store.put_file(_sha(big_blob), path)
    assert info == BlobInfo(sha256=_sha(big_blob), size=len(big_blob))
    assert _read_all(blob_store, _sha(big_blob)) == big_blob
    assert not path.exists()
    again = _scratch_file(blob_store, big_blob)
    assert blob_store.put_file(_sha(big_blob), again).size == len(big_blob)  # idempotent
    assert not again.exists()


def test_put_file_refuses_a_file_that_does_not_match(blob_store: BlobStore) -> None:
    path = _scratch_file(blob_store, b"what arrived")
    claimed = _sha(b"what was promised")
    with pytest.raises(BlobHashMismatch):
        blob_store.put_file(claimed, path)
    assert not blob_store.exists(claimed) and not path.exists()


def test_local_put_file_moves_instead_of_copying(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = os.urandom(100_000)
    path = _scratch_file(store, data)
    inode = path.stat().st_ino
    store.put_file(_sha(data), path)
    assert store.path_for(_sha(data)).stat().st_ino == inode


def test_unfinished_uploads_are_kept_per_owner_and_replaced_whole(
    blob_store: BlobStore, big_blob: bytes
) -> None:
    staging = blob_store.uploads
    name = _sha(big_blob)
    assert staging.stat(OWNER, name) is None and staging.read(OWNER, name) is None
    staging.save(OWNER, name, _scratch_file(blob_store, big_blob[:1000]), touched_at=WHEN)
    later = WHEN + timedelta(minutes=5)
    staging.save(OWNER, name, _scratch_file(blob_store, big_blob[:200_000]), touched_at=later)
    partial = staging.stat(OWNER, name)
    assert partial is not None and partial.size == 200_000
    assert partial.touched_at == later
    chunks = staging.read(OWNER, name)
    assert chunks is not None and b"".join(chunks) == big_blob[:200_000]
    assert staging.stat("someone-else", name) is None
    assert [(p.sha256, p.size) for p in staging.held(OWNER)] == [(name, 200_000)]
    assert not blob_store.exists(name)  # an unfinished upload is never a blob
    staging.discard(OWNER, name)
    staging.discard(OWNER, name)  # absent is fine
    assert staging.stat(OWNER, name) is None and staging.held(OWNER) == []


def test_sweep_removes_only_expired_unfinished_uploads(blob_store: BlobStore) -> None:
    staging = blob_store.uploads
    old, fresh = b"old bytes", b"fresh bytes"
    staging.save(OWNER, _sha(old), _scratch_file(blob_store, old), touched_at=WHEN - timedelta(days=2))
    staging.save("another-user", _sha(fresh), _scratch_file(blob_store, fresh), touched_at=WHEN)
    assert staging.sweep(touched_before=WHEN - timedelta(days=1)) == 1
    assert staging.stat(OWNER, _sha(old)) is None
    assert staging.stat("another-user", _sha(fresh)) is not None


def test_expired_lists_what_a_sweep_would_remove_and_removes_nothing(blob_store: BlobStore) -> None:
    staging = blob_store.uploads
    old, fresh = b"old bytes!", b"fresh bytes"
    staging.save(OWNER, _sha(old), _scratch_file(blob_store, old), touched_at=WHEN - timedelta(days=2))
    staging.save("another-user", _sha(fresh), _scratch_file(blob_store, fresh), touched_at=WHEN)
    expired = staging.expired(touched_before=WHEN - timedelta(days=1))
    assert [(owner, p.sha256, p.size) for owner, p in expired] == [(OWNER, _sha(old), len(old))]
    assert staging.stat(OWNER, _sha(old)) is not None  # only listed
    assert staging.expired(touched_before=WHEN - timedelta(days=3)) == []


@pytest.mark.parametrize("owner", ["", "../x", "a/b", "x" * 65, None])
def test_owner_names_cannot_escape(blob_store: BlobStore, owner: object) -> None:
    with pytest.raises(ValueError):
        blob_store.uploads.stat(owner, _sha(b"x"))  # type: ignore[arg-type]


def test_local_store_offers_no_direct_uploads(tmp_path: Path) -> None:
    staging = LocalBlobStore(tmp_path / "blobs").uploads
    assert staging.direct_uploads is False
    assert staging.presign_put(OWNER, _sha(b"x"), size=1, touched_at=WHEN, expires_in=60) is None


def test_s3_direct_upload_is_bound_to_size_and_hash_and_lands_as_unfinished(
    moto_s3_endpoint: str,  # noqa: F811
    s3_bucket: str,  # noqa: F811
) -> None:
    store = _s3_store(moto_s3_endpoint, s3_bucket)
    data = os.urandom(50_000)
    direct = store.uploads.presign_put(OWNER, _sha(data), size=len(data), touched_at=WHEN, expires_in=60)
    assert direct is not None and direct.method == "PUT"
    signed = urllib.parse.parse_qs(urllib.parse.urlsplit(direct.url).query)["X-Amz-SignedHeaders"][0]
    assert {"content-length", "x-amz-checksum-sha256", "host"} <= set(signed.split(";"))
    answer = httpx.put(direct.url, content=data, headers=direct.headers, timeout=10, trust_env=False)
    assert answer.status_code == 200, answer.text
    partial = store.uploads.stat(OWNER, _sha(data))
    assert partial is not None and partial.size == len(data) and partial.touched_at == WHEN
    assert not store.exists(_sha(data))


def test_sweep_clears_receiving_files_a_crashed_worker_left(blob_store: BlobStore) -> None:
    stale = blob_store.scratch_dir / "upload.crashed.part"
    live = blob_store.scratch_dir / "upload.live.part"
    for path in (stale, live):
        path.write_bytes(b"half a photo")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (two_days_ago, two_days_ago))
    blob_store.uploads.sweep(touched_before=WHEN)
    assert not stale.exists() and live.exists()
    live.unlink()
