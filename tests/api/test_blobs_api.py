"""Uploading files as a phone on a bad network does: streamed, verified, resumable, limited, direct to S3.

Every test runs on SQLite and on PostgreSQL. A dropped connection is produced the way uvicorn
reports one to the application (the body stops, then ``http.disconnect``); a test against real
server processes drops real sockets (``test_resume_across_two_server_processes``).
"""

import hashlib
import io
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient
from PIL import Image

from backend.clock import ManualClock
from backend.context import AppContext
from backend.evidence import blobs
from backend.evidence.blobs import sweep_unfinished
from backend.evidence.models import Blob
from mobile_contract.client import Offline, OutboxClient
from tests.api.helpers import assert_error, auth, login
from tests.fixtures.field import new_order
from tests.fixtures.live_server import start_server, stop_server
from tests.fixtures.pushing import Phone
from tests.fixtures.s3 import TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY, s3_client

pytestmark = pytest.mark.usefixtures("demo")


# ---------------------------------------------------------------- helpers


def photo(size: tuple[int, int] = (640, 480), quality: int = 92) -> bytes:
    """A noisy JPEG (noise does not compress, so the file has some weight); new bytes every call."""
    noise = Image.effect_noise(size, 60)
    img = Image.merge("RGB", (noise, noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT), noise.rotate(180)))
    img.paste((200, 30, 30), (0, 0, size[0] // 4, size[1] // 4))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_row(ctx: AppContext, sha256: str) -> Blob | None:
    with ctx.db.session(readonly=True) as session:
        rows = session.execute(sa.select(Blob).where(Blob.sha256 == sha256)).scalars().all()
    assert len(rows) <= 1
    return rows[0] if rows else None


def scratch_files(ctx: AppContext) -> list[str]:
    return [n for n in os.listdir(ctx.blobs.scratch_dir) if n.startswith("upload.")]


def presign(client: TestClient, tokens: dict, sha256: str, size: int) -> httpx.Response:
    return client.post(f"/api/v1/blobs/{sha256}/presign", json={"size": size}, headers=auth(tokens))


def offset_of(client: TestClient, tokens: dict, sha256: str) -> int:
    head = client.head(f"/api/v1/blobs/{sha256}", headers=auth(tokens))
    assert head.status_code == 404
    return int(head.headers["Upload-Offset"])


def drop_midway(
    app: Litestar,
    tokens: dict,
    sha256: str,
    body: bytes,
    *,
    offset: int = 0,
    total: int,
    disconnect: bool = True,
) -> list[dict[str, Any]]:
    """PUT whose connection drops after ``body``: the app sees the bytes, then ``http.disconnect``.

    ``total`` is the Content-Length the phone announced (the whole rest of the file). Without
    ``disconnect`` the connection stays open and silent, as a phone's half-open one does.
    Returns the ASGI messages the app sent back.
    """
    query = f"offset={offset}".encode() if offset else b""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": body[i : i + 65536], "more_body": True}
        for i in range(0, len(body), 65536)
    ]
    if disconnect:
        messages.append({"type": "http.disconnect"})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path = f"/api/v1/blobs/{sha256}"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {tokens['access_token']}".encode()),
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(total).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    anyio.run(app, scope, receive, send)
    assert not messages, "the app stopped reading before the connection dropped"
    return sent


# ---------------------------------------------------------------- whole uploads


def test_a_whole_upload_is_verified_checked_stored_and_idempotent(
    client: TestClient, ctx: AppContext
) -> None:
    tokens = login(client, "tech1")
    data = photo()
    name = sha(data)
    assert offset_of(client, tokens, name) == 0
    first = client.put(f"/api/v1/blobs/{name}", content=data, headers=auth(tokens))
    assert first.status_code == 201, first.text
    assert first.json() == {"sha256": name, "size": len(data)}
    row = blob_row(ctx, name)
    assert row is not None and row.media == "JPEG" and set(row.variants) == {"thumb", "display"}
    assert ctx.blobs.exists(name) and all(ctx.blobs.exists(v) for v in row.variants.values())
    thumb = client.get(f"/api/v1/blobs/{name}/thumb", headers=auth(tokens))
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size == (320, 240)
    assert client.head(f"/api/v1/blobs/{name}", headers=auth(tokens)).status_code == 200
    again = client.put(f"/api/v1/blobs/{name}", content=data, headers=auth(tokens))
    assert again.status_code == 200 and again.json() == {"sha256": name, "size": len(data)}
    assert scratch_files(ctx) == []


def test_wrong_bytes_are_refused_and_nothing_is_kept(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1")
    data = photo()
    claimed = sha(photo())
    body = assert_error(
        client.put(f"/api/v1/blobs/{claimed}", content=data, headers=auth(tokens)), 422, "blob_hash_mismatch"
    )
    assert body["detail"] == {"expected": claimed, "actual": sha(data)}
    assert not ctx.blobs.exists(claimed) and not ctx.blobs.exists(sha(data))
    assert blob_row(ctx, claimed) is None
    assert offset_of(client, tokens, claimed) == 0
    assert scratch_files(ctx) == []


def test_concurrent_uploads_of_the_same_file_store_it_once(client: TestClient, ctx: AppContext) -> None:
    people = [login(client, name) for name in ("tech1", "tech1", "tech2", "supervisor1")]
    data = photo((1024, 768))
    name = sha(data)
    statuses: list[int] = []
    barrier = threading.Barrier(len(people))

    def upload(tokens: dict) -> None:
        barrier.wait()
        statuses.append(client.put(f"/api/v1/blobs/{name}", content=data, headers=auth(tokens)).status_code)

    threads = [threading.Thread(target=upload, args=(tokens,)) for tokens in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * (len(people) - 1) + [201]
    row = blob_row(ctx, name)
    assert row is not None and row.size == len(data)
    assert b"".join(ctx.blobs.open(name)) == data
    assert scratch_files(ctx) == []


def test_an_upload_that_is_no_image_is_refused_and_remembered(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1")
    data = b"%PDF-1.4 " + os.urandom(200_000)
    name = sha(data)
    drop_midway(client.app, tokens, name, data[:100_000], total=len(data))
    rest = client.put(f"/api/v1/blobs/{name}?offset=100000", content=data[100_000:], headers=auth(tokens))
    assert_error(rest, 422, "unsupported_image_format")
    row = blob_row(ctx, name)
    assert row is not None and row.refused == "unsupported_image_format"
    assert not ctx.blobs.exists(name)
    assert offset_of(client, tokens, name) == 0  # the unfinished upload went with it


# ---------------------------------------------------------------- resuming


def test_a_dropped_upload_is_resumed_from_where_it_stopped(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1")
    data = photo((1600, 1200))
    name, half = sha(data), len(data) // 2
    drop_midway(client.app, tokens, name, data[:half], total=len(data))
    head = client.head(f"/api/v1/blobs/{name}", headers=auth(tokens))
    assert head.status_code == 404
    assert int(head.headers["Upload-Offset"]) == half
    assert "GMT" in head.headers["Upload-Expires"]
    assert blob_row(ctx, name) is None  # nothing is stored before the last byte

    rest = client.put(f"/api/v1/blobs/{name}?offset={half}", content=data[half:], headers=auth(tokens))
    assert rest.status_code == 201, rest.text
    assert rest.json() == {"sha256": name, "size": len(data)}
    row = blob_row(ctx, name)
    assert row is not None and row.claims["width"] == 1600 and set(row.variants) == {"thumb", "display"}
    assert b"".join(ctx.blobs.open(name)) == data
    assert ctx.blobs.uploads.held(str(row.uploaded_by)) == []
    assert scratch_files(ctx) == []


def test_a_resume_can_drop_again_and_a_new_whole_upload_restarts(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1")
    data = photo((1600, 1200))
    name = sha(data)
    drop_midway(client.app, tokens, name, data[:50_000], total=len(data))
    drop_midway(client.app, tokens, name, data[50_000:120_000], offset=50_000, total=len(data) - 50_000)
    assert offset_of(client, tokens, name) == 120_000
    # A phone that lost track sends everything again: that is always allowed, and completes.
    whole = client.put(f"/api/v1/blobs/{name}", content=data, headers=auth(tokens))
    assert whole.status_code == 201
    assert client.head(f"/api/v1/blobs/{name}", headers=auth(tokens)).status_code == 200
    assert b"".join(ctx.blobs.open(name)) == data


def test_a_silent_connection_counts_as_dropped(
    client: TestClient, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobs, "IDLE_SECONDS", 0.2)
    tokens = login(client, "tech1")
    data = photo()
    name = sha(data)
    sent = drop_midway(client.app, tokens, name, data[:60_000], total=len(data), disconnect=False)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 408
    assert (b"upload-offset", b"60000") in start["headers"]
    assert offset_of(client, tokens, name) == 60_000
    rest = client.put(f"/api/v1/blobs/{name}?offset=60000", content=data[60_000:], headers=auth(tokens))
    assert rest.status_code == 201


def test_a_wrong_offset_is_refused_with_the_right_one(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1")
    data = photo()
    name = sha(data)
    nowhere = client.put(f"/api/v1/blobs/{name}?offset=1000", content=data[1000:], headers=auth(tokens))
    assert assert_error(nowhere, 409, "upload_offset_mismatch")["detail"] == {"offset": 0}
    assert nowhere.headers["Upload-Offset"] == "0"
    drop_midway(client.app, tokens, name, data[:30_000], total=len(data))
    for wrong in (29_999, 30_001):
        answer = client.put(
            f"/api/v1/blobs/{name}?offset={wrong}", content=data[wrong:], headers=auth(tokens)
        )
        assert assert_error(answer, 409, "upload_offset_mismatch")["detail"] == {"offset": 30_000}
        assert answer.headers["Upload-Offset"] == "30000"
    assert offset_of(client, tokens, name) == 30_000  # a refused append leaves the upload as it was
    negative = client.put(f"/api/v1/blobs/{name}?offset=-5", content=b"x", headers=auth(tokens))
    assert negative.status_code == 400


def test_another_user_cannot_append_to_or_see_an_unfinished_upload(
    client: TestClient, ctx: AppContext
) -> None:
    owner, other = login(client, "tech1"), login(client, "tech2")
    data = photo()
    name = sha(data)
    drop_midway(client.app, owner, name, data[:40_000], total=len(data))
    assert offset_of(client, other, name) == 0
    append = client.put(f"/api/v1/blobs/{name}?offset=40000", content=data[40_000:], headers=auth(other))
    assert assert_error(append, 409, "upload_offset_mismatch")["detail"] == {"offset": 0}
    assert offset_of(client, owner, name) == 40_000  # untouched
    done = client.put(f"/api/v1/blobs/{name}?offset=40000", content=data[40_000:], headers=auth(owner))
    assert done.status_code == 201


def test_a_wrong_rest_fails_verification_and_forgets_the_upload(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1")
    data = photo()
    name = sha(data)
    drop_midway(client.app, tokens, name, data[:40_000], total=len(data))
    wrong = client.put(f"/api/v1/blobs/{name}?offset=40000", content=photo()[40_000:], headers=auth(tokens))
    assert_error(wrong, 422, "blob_hash_mismatch")
    assert offset_of(client, tokens, name) == 0
    assert not ctx.blobs.exists(name) and blob_row(ctx, name) is None
    assert scratch_files(ctx) == []


def test_unfinished_uploads_expire(make_client: Callable[..., TestClient], clock: ManualClock) -> None:
    client = make_client(upload_expiry=600)  # shorter than an access token lives
    ctx: AppContext = client.app.state.ctx
    tokens = login(client, "tech1")
    data = photo()
    name = sha(data)
    drop_midway(client.app, tokens, name, data[:40_000], total=len(data))
    owner = str(blob_owner(ctx, "tech1"))
    clock.advance(seconds=540)
    assert offset_of(client, tokens, name) == 40_000
    clock.advance(seconds=120)
    assert offset_of(client, tokens, name) == 0  # expired: forgotten when asked ...
    late = client.put(f"/api/v1/blobs/{name}?offset=40000", content=data[40_000:], headers=auth(tokens))
    assert assert_error(late, 409, "upload_offset_mismatch")["detail"] == {"offset": 0}
    assert ctx.blobs.uploads.stat(owner, name) is None

    other = photo()
    drop_midway(client.app, tokens, sha(other), other[:10_000], total=len(other))
    assert [p.size for p in ctx.blobs.uploads.held(owner)] == [10_000]
    clock.advance(seconds=601)
    assert sweep_unfinished(ctx, force=True) == 1  # ... and by the sweeper when nobody asks
    assert ctx.blobs.uploads.held(owner) == []


def blob_owner(ctx: AppContext, username: str) -> uuid.UUID:
    from tests.fixtures.field import principal

    return principal(ctx, username).user_id


def test_a_file_can_be_sent_in_pieces_with_upload_length(client: TestClient, ctx: AppContext) -> None:
    tokens = login(client, "tech1")
    data = photo()
    name = sha(data)
    headers = {**auth(tokens), "Upload-Length": str(len(data))}
    piece = client.put(f"/api/v1/blobs/{name}", content=data[:50_000], headers=headers)
    assert piece.status_code == 202, piece.text
    assert piece.json()["offset"] == 50_000 and piece.headers["Upload-Offset"] == "50000"
    rest = client.put(f"/api/v1/blobs/{name}?offset=50000", content=data[50_000:], headers=headers)
    assert rest.status_code == 201
    assert b"".join(ctx.blobs.open(name)) == data


# ---------------------------------------------------------------- limits


def test_a_file_over_the_size_limit_is_refused_and_nothing_kept(
    make_client: Callable[..., TestClient], ctx: AppContext
) -> None:
    client = make_client(max_upload_bytes=100_000)
    tokens = login(client, "tech1")
    data = photo((1024, 768))
    assert len(data) > 100_000
    name = sha(data)
    announced = client.put(f"/api/v1/blobs/{name}", content=data, headers=auth(tokens))
    assert assert_error(announced, 413, "blob_too_large")["detail"] == {"limit": 100_000}

    def unannounced() -> Iterator[bytes]:  # chunked: the limit is found while reading
        for i in range(0, len(data), 16_384):
            yield data[i : i + 16_384]

    streamed = client.put(f"/api/v1/blobs/{name}", content=unannounced(), headers=auth(tokens))
    assert assert_error(streamed, 413, "blob_too_large")["detail"] == {"limit": 100_000}
    declared = client.put(
        f"/api/v1/blobs/{name}", content=data[:1000], headers={**auth(tokens), "Upload-Length": "100001"}
    )
    assert_error(declared, 413, "blob_too_large")
    assert offset_of(client, tokens, name) == 0
    assert not ctx.blobs.exists(name) and blob_row(ctx, name) is None
    assert scratch_files(ctx) == []
    small = photo((200, 150))
    assert client.put(f"/api/v1/blobs/{sha(small)}", content=small, headers=auth(tokens)).status_code == 201


def test_a_photo_over_the_size_limit_refuses_its_action_and_the_queue_moves_on(
    make_client: Callable[..., TestClient], ctx: AppContext
) -> None:
    """Found by review: an upload refused for its size left the action that uses it waiting for ever."""
    client = make_client(max_upload_bytes=100_000)
    phone = Phone(client, ctx, "tech1")
    order_id = str(new_order(ctx).id)
    data = photo((1024, 768))
    assert_error(
        client.put(f"/api/v1/blobs/{sha(data)}", content=data, headers=auth(phone.tokens)),
        413,
        "blob_too_large",
    )
    answer = phone.push(
        "evidence.photo", 1, {"work_order_id": order_id, "blob": sha(data), "purpose": "before"}
    )
    assert (answer["status"], answer["code"]) == ("rejected", "blob_refused")
    assert "blob_too_large" in answer["message"]
    assert (
        phone.push("work_order.note", 1, {"work_order_id": order_id, "text": "照片太大，另拍"})["status"]
        == "applied"
    )
    # Only this user's attempt is remembered: the file itself is not known to the company.
    assert blob_row(ctx, sha(data)) is None


def test_the_daily_file_quota(make_client: Callable[..., TestClient], clock: ManualClock) -> None:
    client = make_client(upload_quota_files=2)
    tokens, other = login(client, "tech1"), login(client, "tech2")
    for _ in range(2):
        data = photo((200, 150))
        assert client.put(f"/api/v1/blobs/{sha(data)}", content=data, headers=auth(tokens)).status_code == 201
    third = photo((200, 150))
    refused = client.put(f"/api/v1/blobs/{sha(third)}", content=third, headers=auth(tokens))
    detail = assert_error(refused, 429, "upload_quota_exceeded")["detail"]
    assert detail["limit_files"] == 2 and detail["used_files"] == 2 and detail["window_seconds"] == 86400
    assert 0 < int(refused.headers["Retry-After"]) <= 86400
    # Quotas are per user, and the window slides.
    assert client.put(f"/api/v1/blobs/{sha(third)}", content=third, headers=auth(other)).status_code == 201
    fourth = photo((200, 150))
    clock.advance(hours=24, seconds=1)
    tokens = login(client, "tech1")
    assert client.put(f"/api/v1/blobs/{sha(fourth)}", content=fourth, headers=auth(tokens)).status_code == 201


def test_the_daily_byte_quota_counts_unfinished_uploads(make_client: Callable[..., TestClient]) -> None:
    first, second = photo((800, 600)), photo((800, 600))
    client = make_client(upload_quota_bytes=len(first) + len(second) // 2)
    tokens = login(client, "tech1")
    drop_midway(client.app, tokens, sha(first), first[:100], total=len(first))
    assert client.put(f"/api/v1/blobs/{sha(first)}", content=first, headers=auth(tokens)).status_code == 201
    refused = client.put(f"/api/v1/blobs/{sha(second)}", content=second, headers=auth(tokens))
    detail = assert_error(refused, 429, "upload_quota_exceeded")["detail"]
    assert detail["used_bytes"] == len(first) and detail["limit_bytes"] == len(first) + len(second) // 2
    assert "Retry-After" in refused.headers
    # A piece that fits is kept, and counts against the quota of every other file.
    piece = client.put(
        f"/api/v1/blobs/{sha(second)}",
        content=second[:1000],
        headers={**auth(tokens), "Upload-Length": str(len(second) // 4)},
    )
    assert piece.status_code == 202
    left = len(second) // 2 - 1000
    third = os.urandom(16)
    over = client.put(
        f"/api/v1/blobs/{sha(third)}", content=third, headers={**auth(tokens), "Upload-Length": str(left + 1)}
    )
    assert assert_error(over, 429, "upload_quota_exceeded")["detail"]["used_bytes"] == len(first) + 1000


def test_the_phone_keeps_a_file_over_quota_for_a_later_sync(
    make_client: Callable[..., TestClient], tmp_path: Path, clock: ManualClock
) -> None:
    client = make_client(upload_quota_files=1)
    phone = OutboxClient(client, tmp_path / "phone.sqlite", device_id="quota-phone-01")
    phone.login("tech1", "demo-password")
    phone.pull()
    order_id = sorted(phone.local("work_order"))[0]
    first, second = phone.attach_file(photo((200, 150))), phone.attach_file(photo((200, 150)))
    shots = [
        phone.enqueue("evidence.photo", {"work_order_id": order_id, "blob": blob, "purpose": "before"})[0]
        for blob in (first, second)
    ]
    phone.push()
    assert phone.outcome(shots[0])["status"] == "applied"
    assert phone.outcome(shots[1])["status"] is None  # no final answer yet
    assert [a["id"] for a in phone.pending()] == [shots[1]]  # waits: not refused, not dropped
    clock.advance(hours=24, seconds=1)
    phone.login("tech1", "demo-password")
    phone.push()
    assert phone.outcome(shots[1])["status"] == "applied"
    phone.close()


def test_presign_with_the_local_store_says_to_use_put(client: TestClient) -> None:
    tokens = login(client, "tech1")
    name = sha(b"anything")
    answer = client.post(f"/api/v1/blobs/{name}/presign", json={"size": 10}, headers=auth(tokens))
    detail = assert_error(answer, 409, "presign_unsupported")["detail"]
    assert detail == {"upload_with": f"PUT /api/v1/blobs/{name}"}
    assert_error(client.post(f"/api/v1/blobs/{name}/complete", headers=auth(tokens)), 404, "upload_not_found")


# ---------------------------------------------------------------- S3: direct uploads


@pytest.fixture
def s3_client_app(
    make_client: Callable[..., TestClient], moto_s3_endpoint: str, s3_bucket: str
) -> TestClient:
    return make_client(
        blob_backend="s3",
        s3_endpoint_url=moto_s3_endpoint,
        s3_bucket=s3_bucket,
        s3_region=TEST_REGION,
        s3_access_key_id=TEST_ACCESS_KEY_ID,
        s3_secret_access_key=TEST_SECRET_ACCESS_KEY,
    )


def s3_keys(endpoint: str, bucket: str) -> list[str]:
    listing = s3_client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def test_direct_upload_to_s3_then_completion(
    s3_client_app: TestClient, moto_s3_endpoint: str, s3_bucket: str
) -> None:
    client = s3_client_app
    ctx: AppContext = client.app.state.ctx
    tokens = login(client, "tech1")
    data = photo((1024, 768))
    name = sha(data)
    direct = presign(client, tokens, name, len(data))
    assert direct.status_code == 200, direct.text
    ticket = direct.json()
    assert ticket["stored"] is False and ticket["method"] == "PUT"
    assert ticket["headers"]["Content-Length"] == str(len(data))
    assert "x-amz-checksum-sha256" in ticket["headers"]
    signed = httpx.URL(ticket["url"]).params["X-Amz-SignedHeaders"].split(";")
    assert {"content-length", "x-amz-checksum-sha256"} <= set(signed)  # size and hash are bound
    sent = httpx.put(ticket["url"], content=data, headers=ticket["headers"], timeout=30)
    assert sent.status_code == 200, sent.text
    assert offset_of(client, tokens, name) == len(data)  # it waits as an unfinished upload

    done = client.post(f"/api/v1/blobs/{name}/complete", json={"size": len(data)}, headers=auth(tokens))
    assert done.status_code == 201, done.text
    assert done.json() == {"sha256": name, "size": len(data)}
    row = blob_row(ctx, name)
    assert row is not None and set(row.variants) == {"thumb", "display"}
    keys = s3_keys(moto_s3_endpoint, s3_bucket)
    assert f"blobs/{name}" in keys and not [k for k in keys if k.startswith("uploads/")]
    again = presign(client, tokens, name, len(data))
    assert again.json()["stored"] is True and again.json()["url"] is None
    assert client.post(f"/api/v1/blobs/{name}/complete", headers=auth(tokens)).status_code == 200


def test_a_direct_upload_that_does_not_match_is_deleted(
    s3_client_app: TestClient, moto_s3_endpoint: str, s3_bucket: str
) -> None:
    client = s3_client_app
    ctx: AppContext = client.app.state.ctx
    tokens = login(client, "tech1")
    data, impostor = photo(), photo()
    name = sha(data)
    ticket = client.post(
        f"/api/v1/blobs/{name}/presign", json={"size": len(data)}, headers=auth(tokens)
    ).json()
    # Real S3 refuses this already (the checksum is signed); the completion must not rely on it.
    headers = {k: v for k, v in ticket["headers"].items() if k.lower() != "content-length"}
    httpx.put(ticket["url"], content=impostor, headers=headers, timeout=30)
    wrong = client.post(f"/api/v1/blobs/{name}/complete", headers=auth(tokens))
    assert_error(wrong, 422, "blob_hash_mismatch")
    assert s3_keys(moto_s3_endpoint, s3_bucket) == []
    assert blob_row(ctx, name) is None
    assert_error(client.post(f"/api/v1/blobs/{name}/complete", headers=auth(tokens)), 404, "upload_not_found")

    httpx.put(ticket["url"], content=data, headers=ticket["headers"], timeout=30)
    short = client.post(f"/api/v1/blobs/{name}/complete", json={"size": len(data) + 1}, headers=auth(tokens))
    assert_error(short, 422, "blob_size_mismatch")
    assert s3_keys(moto_s3_endpoint, s3_bucket) == []


def test_presign_checks_size_and_quota_up_front(
    make_client: Callable[..., TestClient], moto_s3_endpoint: str, s3_bucket: str
) -> None:
    client = make_client(
        blob_backend="s3",
        s3_endpoint_url=moto_s3_endpoint,
        s3_bucket=s3_bucket,
        s3_region=TEST_REGION,
        s3_access_key_id=TEST_ACCESS_KEY_ID,
        s3_secret_access_key=TEST_SECRET_ACCESS_KEY,
        max_upload_bytes=1_000_000,
        upload_quota_bytes=1_000_500,
    )
    tokens = login(client, "tech1")
    name = sha(b"big")
    too_big = client.post(f"/api/v1/blobs/{name}/presign", json={"size": 1_000_001}, headers=auth(tokens))
    assert assert_error(too_big, 413, "blob_too_large")["detail"] == {"limit": 1_000_000}
    assert client.post(
        f"/api/v1/blobs/{name}/presign", json={"size": 1_000_000}, headers=auth(tokens)
    ).is_success
    data = photo((200, 150))
    drop_midway(client.app, tokens, sha(data), data[:1000], total=len(data))  # 1000 bytes held
    over = client.post(f"/api/v1/blobs/{name}/presign", json={"size": 1_000_000}, headers=auth(tokens))
    assert assert_error(over, 429, "upload_quota_exceeded")["detail"]["used_bytes"] == 1000
    assert client.post(
        f"/api/v1/blobs/{name}/presign", json={"size": 999_500}, headers=auth(tokens)
    ).is_success
    bad = client.post(f"/api/v1/blobs/{name}/presign", json={"size": -1}, headers=auth(tokens))
    assert bad.status_code == 400


def test_resuming_through_the_app_with_the_s3_store(
    s3_client_app: TestClient, moto_s3_endpoint: str, s3_bucket: str
) -> None:
    client = s3_client_app
    ctx: AppContext = client.app.state.ctx
    tokens = login(client, "tech1")
    data = photo((1600, 1200))
    name = sha(data)
    drop_midway(client.app, tokens, name, data[:70_000], total=len(data))
    assert offset_of(client, tokens, name) == 70_000
    assert [k for k in s3_keys(moto_s3_endpoint, s3_bucket) if k.startswith("uploads/")]
    rest = client.put(f"/api/v1/blobs/{name}?offset=70000", content=data[70_000:], headers=auth(tokens))
    assert rest.status_code == 201, rest.text
    assert b"".join(ctx.blobs.open(name)) == data
    assert not [k for k in s3_keys(moto_s3_endpoint, s3_bucket) if k.startswith("uploads/")]


# ---------------------------------------------------------------- real servers, real sockets


class CuttingNetwork:
    """httpx to a real server; the next file upload is cut off after ``cut_after`` bytes of body."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        self.cut_after: int | None = None
        self.requests: list[str] = []

    def switch_to(self, base: str) -> None:
        self.http.close()
        self.http = httpx.Client(base_url=base, timeout=30)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        self.requests.append(f"{method} {url}")
        if method == "PUT" and self.cut_after is not None:
            limit, self.cut_after = self.cut_after, None
            kwargs["content"] = _cut(kwargs["content"], limit)
        return self.http.request(method, url, **kwargs)


def _cut(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    sent = 0
    for chunk in chunks:
        if sent + len(chunk) >= limit:
            yield chunk[: limit - sent]
            raise httpx.WriteError("the train went into a tunnel")
        sent += len(chunk)
        yield chunk


def held_offset(base: str, token: dict[str, str], name: str) -> int:
    """The server's Upload-Offset, once it has noticed the drop (it may take a moment)."""
    deadline = time.monotonic() + 10
    while True:
        head = httpx.head(f"{base}/api/v1/blobs/{name}", headers=token)
        assert head.status_code == 404
        offset = int(head.headers["Upload-Offset"])
        if offset or time.monotonic() > deadline:
            return offset
        time.sleep(0.05)


def test_resume_across_two_server_processes(database_url: str, tmp_path: Path, ctx: AppContext) -> None:
    """The phone's connection drops mid-file on one server process; the phone resumes on another."""
    env = {
        "HEATCREW_DATABASE_URL": database_url,
        "HEATCREW_VAR_DIR": str(tmp_path / "server-var"),
        "HEATCREW_SECRET_KEY": "blob-test-key-0123456789abcdef0123456789",
        "HEATCREW_AUTO_MIGRATE": "false",
        "HEATCREW_LOG_LEVEL": "warning",
    }
    ctx.db.engine.dispose()
    first, base_a = start_server(tmp_path, ["serve"], env)
    second, base_b = start_server(tmp_path, ["serve"], env)
    try:
        network = CuttingNetwork(base_a)
        phone = OutboxClient(network, tmp_path / "phone.sqlite", device_id="tunnel-phone-01")
        phone.login("tech1", "demo-password")
        phone.pull()
        order_id = sorted(phone.local("work_order"))[0]
        data = photo((2000, 1500))
        name = phone.attach_file(data)
        phone.enqueue("evidence.photo", {"work_order_id": order_id, "blob": name, "purpose": "leak"})
        network.cut_after = len(data) // 2
        with pytest.raises(Offline):
            phone.push()

        token = {"Authorization": f"Bearer {phone._get('access_token')}"}
        kept = held_offset(base_a, token, name)
        assert 0 < kept <= len(data) // 2
        assert held_offset(base_b, token, name) == kept  # the other process sees what the first kept

        network.switch_to(base_b)
        report = phone.push()
        assert report.applied == 1
        puts = [r for r in network.requests if r.startswith("PUT")]
        assert puts == [f"PUT /api/v1/blobs/{name}", f"PUT /api/v1/blobs/{name}?offset={kept}"]
        assert httpx.head(f"{base_a}/api/v1/blobs/{name}", headers=token).status_code == 200
        thumb = httpx.get(f"{base_a}/api/v1/blobs/{name}/thumb", headers=token)
        assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size == (320, 240)
        phone.close()
    except Exception as exc:  # the servers' own account of what went wrong
        logs = "\n".join(log.read_text()[-3000:] for log in sorted(tmp_path.glob("server-*.log")))
        raise AssertionError(f"{exc!r}\n--- server logs ---\n{logs}") from exc
    finally:
        stop_server(first)
        stop_server(second)


def test_the_upload_protocol_is_documented_in_openapi(client: TestClient) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    blob = paths["/api/v1/blobs/{sha256}"]
    assert "Upload-Offset" in blob["head"]["description"]
    put = blob["put"]["description"]
    assert "?offset=N" in put and "409 upload_offset_mismatch" in put and "429 upload_quota_exceeded" in put
    assert {p["name"] for p in blob["put"]["parameters"]} >= {"offset", "upload-length"}
    assert "presign_unsupported" in paths["/api/v1/blobs/{sha256}/presign"]["post"]["description"]
    assert "blob_hash_mismatch" in paths["/api/v1/blobs/{sha256}/complete"]["post"]["description"]


def test_a_blob_store_outage_says_when_to_send_again(client: TestClient, settings: Any) -> None:
    """Like every 503, an unusable blob store answers Retry-After: the phone resends the same upload."""
    import shutil

    tokens = login(client, "tech1")
    shutil.rmtree(settings.blob_dir)
    settings.blob_dir.write_text("a file where the blob directory was")  # the disk went away
    data = photo()
    response = client.put(f"/api/v1/blobs/{sha(data)}", content=data, headers=auth(tokens))
    assert_error(response, 503, "blob_store_unavailable")
    assert int(response.headers["Retry-After"]) > 0
