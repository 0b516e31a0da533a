"""The scenes of the golden examples, in the order they are recorded, indexed and replayed."""

import hashlib
from typing import Any

from backend.contract.action_cases import ACTION_CASES, Outcome, pending
from backend.contract.recording import Answer, Example
from backend.contract.story import APP_VERSION, ExpectationFailed, Phone, Story, expect, photo
from mobile_contract.actions import ACTION_TYPES

__all__ = ("run",)


def _slug(key: tuple[str, int]) -> str:
    return f"actions/{key[0]}/v{key[1]}"


def action_scene(story: Story, key: tuple[str, int]) -> None:
    """One phone, its queue from seq 1: applied, sent again, refused, and each other answer it can get."""
    case = ACTION_CASES[key]
    type_, v = key
    base = _slug(key)
    phone = story.phone(case.user, f"phone-{type_}-v{v}".replace("_", "-"))
    story.phones[key] = phone

    def featured(outcome: Outcome, status: str, title: str, code: str | None) -> dict[str, Any]:
        payload = outcome.build(story, phone)
        result = phone.push_one(
            type_, v, payload, Example(f"{base}/{status}", f"{type_} v{v}: {title}", outcome.description)
        )
        if (result["status"], result.get("code")) != (status, code):
            raise ExpectationFailed(f"{type_} v{v} {status}: {result}")
        return result

    featured(case.applied, "applied", "applied", None)
    again = phone.resend(
        Example(
            f"{base}/duplicate",
            f"{type_} v{v}: the same batch again",
            "The answer to the push was lost, so the phone sends the same batch again, untouched. Nothing "
            "is applied twice: `duplicate`, with the first answer in `original_status`.",
        )
    )
    if again["results"][0]["status"] != "duplicate":
        raise ExpectationFailed(f"{type_} v{v} duplicate: {again.body}")
    featured(case.rejected, "rejected", "rejected", case.rejected.code)
    if case.conflict is not None:
        featured(case.conflict, "conflict", "conflict", case.conflict.code)
    if case.waiting is not None:
        featured(case.waiting, "waiting", "waiting for its file", "blob_missing")
        for sha in list(story.pending):
            name = story.pending.pop(sha)
            if phone.upload(name) != sha:
                raise ExpectationFailed(f"the photo {name} changed between runs")
        if phone.resend()["results"][0]["status"] != "applied":
            raise ExpectationFailed(f"{type_} v{v}: still waiting after the upload")
    # A gap: the phone's previous action never reached the server.
    payload = case.applied.build(story, phone)
    gap = phone.action(type_, v, payload, seq=phone.seq + 2)
    answer = phone.push(
        gap,
        example=Example(
            f"{base}/out_of_order",
            f"{type_} v{v}: after a gap",
            f"The action with seq {phone.seq + 1} never reached the server, so this one "
            f"(seq {phone.seq + 2}) "
            "is not applied: `out_of_order / gap`. Push again from `last_applied_seq + 1`.",
        ),
    )
    (result,) = answer["results"]
    if (result["status"], result.get("code")) != ("out_of_order", "gap"):
        raise ExpectationFailed(f"{type_} v{v} out_of_order: {result}")


def auth_scene(story: Story) -> None:
    phone = Phone(story, "tech1", "a3f1c2d4-7b8e-4f60-9a1b-2c3d4e5f6a7b")
    phone.login(
        Example(
            "auth/login",
            "Log in on a phone",
            "The device id is made by the app once per install; it is registered to the user. Keep both "
            "tokens; send the access token as `Authorization: Bearer …`.",
        )
    )
    http = story.http
    expect(
        http.send(
            "POST",
            "/api/v1/auth/login",
            body={
                "username": "tech2",
                "password": "wrong-password",
                "device": {
                    "id": "b7e2d1c0-1111-4a2b-8c3d-9e8f7a6b5c4d",
                    "platform": "ios",
                    "app_version": APP_VERSION,
                },
            },
            example=Example(
                "auth/login_wrong_password",
                "A wrong password",
                "Unknown user and wrong password answer the same. After 5 failures in 15 minutes the "
                "account answers `429 rate_limited` with `Retry-After`.",
            ),
        ),
        401,
        "wrong password",
    )
    expect(
        http.send(
            "GET",
            "/api/v1/me",
            token=phone.token,
            example=Example(
                "auth/me", "Who is logged in", "The user of the access token, and the company's time zone."
            ),
        ),
        200,
        "me",
    )
    first = phone.tokens["refresh_token"]
    refresh_body = {"refresh_token": first, "device_id": phone.device_id}
    renewed = expect(
        http.send(
            "POST",
            "/api/v1/auth/refresh",
            body=refresh_body,
            example=Example(
                "auth/refresh",
                "Refresh the tokens",
                "The refresh token is spent and a new pair comes back. Store the new pair before "
                "anything else.",
            ),
        ),
        200,
        "refresh",
    ).body
    expect(
        http.send(
            "POST",
            "/api/v1/auth/refresh",
            body=refresh_body,
            example=Example(
                "auth/refresh_grace",
                "The same refresh again, after a lost answer",
                "The answer to the refresh never arrived, so the phone sends the same spent token again. "
                "Within 60 s of its first use, while its successor is unused, it succeeds again; the "
                "successor issued before is replaced, so only the newest pair works.",
            ),
        ),
        200,
        "refresh grace",
    )
    expect(
        http.send(
            "POST",
            "/api/v1/auth/refresh",
            body={"refresh_token": renewed["refresh_token"], "device_id": phone.device_id},
            example=Example(
                "auth/refresh_reused",
                "A replaced refresh token",
                "The successor that the grace retry replaced is presented: that is what a stolen token looks "
                "like, so the whole session ends. The phone must log in again; its queue is kept.",
            ),
        ),
        401,
        "refresh reused",
    )
    other = story.phone("tech1", "c9d8e7f6-2222-4b3c-9d4e-5f6a7b8c9d0e")
    expect(
        http.send(
            "POST",
            "/api/v1/auth/logout",
            token=other.token,
            example=Example(
                "auth/logout", "Log out", "Ends this device's session: its refresh token stops working."
            ),
        ),
        200,
        "logout",
    )
    expect(
        http.send(
            "GET",
            "/api/v1/me",
            token=other.token,
            example=Example(
                "errors/session_ended",
                "A token of a session that has ended",
                "After logout (or when an admin disables the user or revokes the device) the very next "
                "request is refused. Stop, keep the queue, and ask the user to log in again.",
            ),
        ),
        401,
        "after logout",
    )
    expect(
        http.send(
            "GET",
            "/api/v1/me",
            example=Example(
                "errors/no_token",
                "No access token",
                "Every route but login, refresh and health needs a token.",
            ),
        ),
        401,
        "no token",
    )
    expect(
        http.send(
            "GET",
            "/health",
            example=Example("health", "Is the server up", "Liveness only; no token needed."),
        ),
        200,
        "health",
    )


def pull_scene(story: Story) -> None:
    """Run before the action scenes, so that the snapshot shows the demo day, not the examples' orders."""
    phone = story.phone("tech2", "d4c3b2a1-3333-4c5d-8e9f-0a1b2c3d4e5f")
    http = story.http
    first = expect(
        http.send(
            "GET",
            "/api/v1/sync/pull",
            token=phone.token,
            example=Example(
                "sync/pull_first",
                "The first pull: a full snapshot",
                "Without a cursor the answer is `reset: true` and everything in the user's scope: their open "
                "orders (with clocks and allowed moves), the households, and the reference data. Keep "
                "the cursor.",
            ),
        ),
        200,
        "first pull",
    ).body
    story.order(assignee="tech2", account="200102", kind="leak")
    expect(
        http.send(
            "GET",
            "/api/v1/sync/pull",
            token=phone.token,
            query={"cursor": first["cursor"]},
            example=Example(
                "sync/pull_incremental",
                "A pull with the cursor",
                "Only what changed since the cursor: here the dispatcher has given the technician a new "
                "order "
                "(and its household). Send the cursor back as it is; while `has_more`, pull again at once.",
            ),
        ),
        200,
        "incremental pull",
    )
    expect(
        http.send(
            "GET",
            "/api/v1/sync/pull",
            token=phone.token,
            query={"cursor": "bm90LWEtY3Vyc29y", "limit": "2"},
            example=Example(
                "sync/pull_reset",
                "A cursor the server does not know",
                "A damaged cursor, another user's, one from before a restore (another epoch) or one pruned "
                "away: `reset: true` and a full snapshot (here in pages of 2). Drop the local copy and take "
                "what comes.",
            ),
        ),
        200,
        "reset pull",
    )


def sync_scene(story: Story) -> None:
    phone = story.notes["tech1"] = story.phone("tech1", "e5f6a7b8-4444-4d6e-9f0a-1b2c3d4e5f60")
    order_id = story.order(assignee="tech1")
    leak = story.name("leak")
    blob = pending(phone, leak)
    answer = phone.push(
        phone.action("evidence.photo", 1, {"work_order_id": order_id, "blob": blob, "purpose": "leak"}),
        phone.action("work_order.note", 1, {"work_order_id": order_id, "text": "接口处滴水"}),
        example=Example(
            "sync/push_after_waiting",
            "A batch stops at an action that waits for its file",
            "The photo's file is not uploaded yet, so the photo waits (`blob_missing`) and the note after it "
            "is not applied either (`out_of_order / after_waiting`): actions apply in seq order.",
        ),
    )
    if [r["status"] for r in answer["results"]] != ["waiting", "out_of_order"]:
        raise ExpectationFailed(f"after waiting: {answer.body}")
    story.pending.pop(blob)
    phone.upload(leak)
    answer = phone.resend(
        Example(
            "sync/push_after_upload",
            "The same batch after the upload",
            "Once the file is uploaded, the same batch is pushed again and both actions apply.",
        )
    )
    if [r["status"] for r in answer["results"]] != ["applied", "applied"]:
        raise ExpectationFailed(f"after upload: {answer.body}")
    note = {"work_order_id": order_id, "text": "复查"}
    answer = phone.push(
        phone.action("work_order.notes", 1, note),
        phone.action("work_order.note", 9, note),
        example=Example(
            "sync/push_unknown_action",
            "Actions this server does not know",
            "A type the server does not know, and a version of a known type it does not accept (the "
            "message lists the versions it does): each is rejected and the queue moves on.",
            breaks_contract="neither (type, v) is in the action catalogue",
        ),
    )
    if [r["status"] for r in answer["results"]] != ["rejected", "rejected"]:
        raise ExpectationFailed(f"unknown actions: {answer.body}")
    expect(
        story.http.send(
            "POST",
            "/api/v1/sync/push",
            token=phone.token,
            body={**phone.last_batch, "sent_at": "2026-12-07T08:30:00"},
            example=Example(
                "sync/push_invalid_body",
                "A batch whose envelope is malformed",
                "A time in the envelope without its zone offset: the whole batch is refused "
                "(`400 invalid_body`, `detail` says where) and nothing is applied. A malformed "
                "payload, by contrast, rejects only its own action.",
                breaks_contract="sent_at has no zone offset",
            ),
        ),
        400,
        "invalid body",
    )
    expect(
        story.http.send(
            "POST",
            "/api/v1/sync/push",
            token=phone.token,
            body=phone.last_batch,
            headers={"Content-Type": "text/plain"},
            example=Example(
                "errors/not_json",
                "A body sent as something other than JSON",
                "Every JSON body is sent as `Content-Type: application/json` (charset, if any, UTF-8).",
                breaks_contract="Content-Type is text/plain",
            ),
        ),
        415,
        "not json",
    )
    refused = story.phones[("work_order.accept", 1)]
    expect(
        story.http.send(
            "GET",
            "/api/v1/sync/status",
            token=refused.token,
            example=Example(
                "sync/status",
                "The device's counter and its refused actions",
                "What the server holds for this device: the last seq applied, and each refused action with "
                "its code and message, so the app can always say why something did not count.",
            ),
        ),
        200,
        "sync status",
    )


def blob_scene(story: Story) -> None:
    phone: Phone = story.notes["tech1"]  # the phone of the sync scene
    http = story.http
    data = photo("blobs/before")
    sha = hashlib.sha256(data).hexdigest()
    path = f"/api/v1/blobs/{sha}"

    def send(method: str, status: int, example: Example | None, **kwargs: Any) -> Answer:
        return expect(
            http.send(method, kwargs.pop("at", path), token=phone.token, example=example, **kwargs),
            status,
            example.name if example else method,
        )

    send(
        "HEAD",
        404,
        Example(
            "blobs/head_missing",
            "Is the file there? Not yet",
            "`404` with `Upload-Offset: 0`: nothing of it held; upload it.",
        ),
    )
    half = len(data) // 2
    send(
        "PUT",
        202,
        Example(
            "blobs/put_first_part",
            "An upload in pieces",
            "With `Upload-Length` (the whole size) a body that ends early is a piece, not the file: `202` "
            "with `Upload-Offset`. A connection that drops keeps what arrived in the same way.",
        ),
        content=data[:half],
        headers={"Upload-Length": str(len(data))},
    )
    send(
        "HEAD",
        404,
        Example(
            "blobs/head_partial",
            "Is the file there? Partly",
            "`Upload-Offset` says how many bytes of the unfinished upload the server holds, `Upload-Expires` "
            "when they are forgotten unless more arrive.",
        ),
    )
    send(
        "PUT",
        409,
        Example(
            "blobs/put_offset_mismatch",
            "Resuming from the wrong offset",
            "The offset must equal the server's `Upload-Offset`; the answer gives the right one.",
        ),
        content=data[10:],
        query={"offset": "10"},
    )
    send(
        "PUT",
        201,
        Example(
            "blobs/put_resume",
            "Resuming an upload",
            "The rest of the file from the server's offset: verified, checked and stored.",
        ),
        content=data[half:],
        query={"offset": str(half)},
    )
    send(
        "HEAD",
        200,
        Example(
            "blobs/head_held",
            "Is the file there? Yes",
            "`200`: this user's upload of it is held; nothing to send.",
        ),
    )
    send(
        "PUT",
        200,
        Example(
            "blobs/put_held", "Uploading a file held already", "`200`: already held; the body is not read."
        ),
        content=data,
    )
    other = photo("blobs/whole")
    send(
        "PUT",
        201,
        Example(
            "blobs/put",
            "Upload a photo",
            "The whole file in one request, named by its SHA-256 (lower-case hex).",
        ),
        at=f"/api/v1/blobs/{hashlib.sha256(other).hexdigest()}",
        content=other,
    )
    send(
        "PUT",
        422,
        Example(
            "blobs/put_hash_mismatch",
            "Bytes that are not the file named",
            "The body's SHA-256 is not the name: nothing is kept.",
        ),
        at=f"/api/v1/blobs/{hashlib.sha256(b'another file').hexdigest()}",
        content=other,
    )
    send(
        "POST",
        409,
        Example(
            "blobs/presign",
            "A direct upload URL, from a server without S3",
            "With an S3 store the answer is `{url, method, headers, expires_at}`: send the file there, then "
            "call `complete`. A server with a local store answers `409 presign_unsupported`: use `PUT`.",
        ),
        at=f"{path}/presign",
        body={"size": len(data)},
    )
    dropped = photo("blobs/dropped")
    dropped_path = f"/api/v1/blobs/{hashlib.sha256(dropped).hexdigest()}"
    # Every byte arrives but the end of the upload is never acknowledged: the server holds it all,
    # unfinished (a declared length one byte longer stands in for the connection that dropped).
    send("PUT", 202, None, at=dropped_path, content=dropped, headers={"Upload-Length": str(len(dropped) + 1)})
    send(
        "POST",
        201,
        Example(
            "blobs/complete",
            "Completing an upload",
            "After a presigned upload to the bucket, or an upload whose bytes all arrived but whose end "
            "was never acknowledged (`HEAD` shows `Upload-Offset` equal to the size), `complete` reads "
            "the file back, checks its size and SHA-256, runs the photo checks and stores it.",
        ),
        at=f"{dropped_path}/complete",
        body={"size": len(dropped)},
    )
    missing = hashlib.sha256(b"never uploaded").hexdigest()
    send(
        "POST",
        404,
        Example(
            "blobs/complete_nothing_waiting",
            "Completing an upload that never came",
            "`complete` verifies and stores what a presigned upload (or an unfinished one) left; with "
            "nothing waiting: `404 upload_not_found`.",
        ),
        at=f"/api/v1/blobs/{missing}/complete",
        body={"size": 1024},
    )
    send(
        "GET",
        200,
        Example(
            "blobs/display",
            "The display copy of a photo",
            "1000 px at most, metadata stripped (a small photo stays as it is). `thumb` is 320 px.",
        ),
        at=f"{path}/display",
    )
    send(
        "GET",
        403,
        Example(
            "blobs/original_forbidden",
            "The original of a photo",
            "Originals keep their metadata (the crew's GPS track): supervisors and admins only.",
        ),
        at=f"{path}/original",
    )


def reads_scene(story: Story) -> None:
    """What a phone reads besides the change feed, on the orders of the examples."""
    http = story.http
    phone: Phone = story.notes["tech1"]
    signed = story.notes["signed"]

    def read(path: str, status: int, example: Example, *, user: Phone = phone, **kwargs: Any) -> Answer:
        return expect(
            http.send("GET", path, token=user.token, example=example, **kwargs), status, example.name
        )

    read(
        "/api/v1/work-orders",
        200,
        Example(
            "orders/list", "The technician's orders", "Newest call first; a technician sees only their own."
        ),
        query={"state": "assigned", "limit": "3"},
    )
    read(
        f"/api/v1/work-orders/{signed['order_id']}",
        200,
        Example(
            "orders/detail",
            "One order with its timeline",
            "The order, every event on its timeline (the phone's, the server's and the corrected clocks), "
            "appointments, check-ins and SLA clocks.",
        ),
    )
    foreign = story.order(assignee="tech2", account="200101")
    read(
        f"/api/v1/work-orders/{foreign}",
        404,
        Example(
            "orders/detail_not_yours",
            "Another technician's order",
            "What the caller may not see does not exist for them.",
        ),
    )
    read(
        f"/api/v1/households/{story.household('100101')}",
        200,
        Example(
            "households/detail",
            "A household of one of the technician's orders",
            "The resident's phone number is shown only while one of the technician's orders there is active.",
        ),
    )
    read(
        "/api/v1/documents",
        200,
        Example(
            "documents/list",
            "The documents of an order",
            "Oldest first; corrections are listed beside what they replace.",
        ),
        query={"work_order_id": signed["order_id"]},
    )
    read(
        f"/api/v1/documents/{signed['document_id']}",
        200,
        Example(
            "documents/detail", "One document", "The exact content signed, its hash, and every signature."
        ),
    )
    read(
        f"/api/v1/documents/{signed['document_id']}/verify",
        200,
        Example(
            "documents/verify",
            "Is the document intact and signed",
            "The server recomputes the content hash and each signature's seal: `valid`, "
            "`awaiting_signatures` (who is missing), `superseded` or `tampered`.",
        ),
    )
    inspector = story.phones[("measurement.record", 1)]
    read(
        f"/api/v1/measurements/{story.notes['measurement_id']}",
        200,
        Example(
            "measurements/detail",
            "A measurement and the server's judgement",
            "The rooms as measured, the result against the standard, and whether the record is validly "
            "signed (here it awaits the inspector's and the resident's signatures).",
        ),
        user=inspector,
    )
    read(
        "/api/v1/sla/policy",
        200,
        Example(
            "reference/sla_policy",
            "The company's SLA policy",
            "Targets per kind and the photos each kind needs before completion.",
        ),
    )
    read(
        "/api/v1/reference/teams",
        200,
        Example("reference/teams", "The company's teams", "For showing names; ids appear on orders."),
    )
    read(
        "/api/v1/reference/stations",
        200,
        Example("reference/stations", "The company's heating stations", "For showing names."),
    )
    read(
        "/api/v1/instruments",
        200,
        Example(
            "instruments/list",
            "Thermometers",
            "Each instrument and until when its calibration holds; measurements name one.",
        ),
    )


def run(story: Story) -> None:
    """Every scene, in the order the examples are indexed (and replayed)."""
    auth_scene(story)
    pull_scene(story)
    for key in sorted(ACTION_TYPES):
        action_scene(story, key)
    sync_scene(story)
    blob_scene(story)
    reads_scene(story)
