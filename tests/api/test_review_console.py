"""The console's review pages in process, on SQLite and PostgreSQL: the queue with its counts and
filters, an item's evidence (timeline clocks, arrival proof, photos, signatures and their
verification, measurements), each decision through its form with CSRF, and who may see and decide."""

import hashlib
import io
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient
from PIL import Image
from PIL.TiffImagePlugin import IFDRational
from sqlmodel import select

from backend.clock import ManualClock
from backend.context import AppContext
from backend.demo import seed_review_demo
from backend.org.models import Company, Team
from backend.review.models import RedoRequest, ReviewItem
from backend.sync.handlers import CATALOGUE, Applying
from backend.work_orders.models import WorkOrder, WorkOrderEvent
from tests.api.helpers import auth, login
from tests.api.test_review_api import north_supervisor  # noqa: F401 (a fixture)
from tests.fixtures.console import signed_in
from tests.fixtures.field import act, new_order, principal, when

pytestmark = pytest.mark.usefixtures("demo")

AT_DOOR = {"lat": 41.79683, "lon": 123.42452, "accuracy_m": 12.0}  # household 100101's building
# 41°47'50"N 123°25'28.3"E: about 40 m north of the building.
GPS = {
    1: "N",
    2: (IFDRational(41, 1), IFDRational(47, 1), IFDRational(50, 1)),
    3: "E",
    4: (IFDRational(123, 1), IFDRational(25, 1), IFDRational(283, 10)),
}


def apply_action(ctx: AppContext, actor: Any, type_: str, payload: dict[str, Any]) -> None:
    handler = CATALOGUE[(type_, 1)]
    with ctx.db.session() as session:
        handler.apply(
            Applying(session, actor, when(ctx.clock.now()), uuid.uuid4(), raw=payload),
            handler.decode(payload),
        )


def photo_with_gps() -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8825).update(GPS)
    out = io.BytesIO()
    Image.new("RGB", (400, 300), (40, 90, 160)).save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


@pytest.fixture
def demo_item(ctx: AppContext) -> uuid.UUID:
    """``heatcrew demo``'s review item: tech2's completed repair, two photos, a signed receipt."""
    with ctx.db.session() as session:
        company = session.exec(select(Company).where(Company.code == "demo")).one()
        seed_review_demo(ctx, session, company)
    with ctx.db.session(readonly=True) as session:
        return session.exec(select(ReviewItem.id)).one()


@pytest.fixture
def measured_item(client: TestClient, ctx: AppContext, demo_item: uuid.UUID) -> uuid.UUID:
    """A temperature complaint of tech1's: a failed measurement and a thermometer photo with GPS."""
    tech = principal(ctx, "tech1")
    order = new_order(ctx, kind="temperature_complaint", account="100101")
    act(ctx, order.id, "accept", tech)
    act(
        ctx,
        order.id,
        "record_arrival",
        tech,
        attempts=[{"method": "knock", "at": "2026-12-07T00:40:00Z"}],
        outcome="admitted",
        badge_shown=True,
        **AT_DOOR,
    )
    act(ctx, order.id, "start_work", tech)
    data = photo_with_gps()
    sha = hashlib.sha256(data).hexdigest()
    upload = client.put(f"/api/v1/blobs/{sha}", content=data, headers=auth(login(client, "tech1")))
    assert upload.status_code == 201, upload.text
    apply_action(
        ctx, tech, "evidence.photo", {"work_order_id": str(order.id), "blob": sha, "purpose": "thermometer"}
    )
    with ctx.db.session(readonly=True) as session:
        household = session.get(WorkOrder, order.id).household_id  # type: ignore[union-attr]
    apply_action(
        ctx,
        tech,
        "measurement.record",
        {
            "measurement_id": str(uuid.uuid4()),
            "household_id": str(household),
            "work_order_id": str(order.id),
            "instrument_id": "TH-0042",
            "rooms": [
                {"name": "客厅", "kind": "living_room", "readings_c": [12.1, 12.0, 12.2], "height_m": 1.4}
            ],
            "outdoor_c": -8.0,
            "closed_minutes": 45,
        },
    )
    act(ctx, order.id, "complete", tech, result="answered", satisfaction=3)
    with ctx.db.session(readonly=True) as session:
        return session.exec(select(ReviewItem.id).where(ReviewItem.order_id == order.id)).one()


def item_row(ctx: AppContext, item_id: uuid.UUID) -> ReviewItem:
    with ctx.db.session(readonly=True) as session:
        item = session.get(ReviewItem, item_id)
        assert item is not None
        return item


def events(ctx: AppContext, item_id: uuid.UUID) -> list[str]:
    order_id = item_row(ctx, item_id).order_id
    with ctx.db.session(readonly=True) as session:
        rows = session.exec(
            select(WorkOrderEvent.type)
            .where(WorkOrderEvent.order_id == order_id)
            .order_by(WorkOrderEvent.received_at, WorkOrderEvent.corrected_at)
        )
        return list(rows)


def code_of(page: Any) -> str:
    match = re.search(r'data-code="([a-z_]+)"', page.text)
    assert match, page.text[:2000]
    return match.group(1)


# ---------------------------------------------------------------- the queue


def test_the_queue_shows_items_with_counts_and_filters(
    client: TestClient, ctx: AppContext, demo_item: uuid.UUID, measured_item: uuid.UUID
) -> None:
    signed_in(client, "supervisor1")
    page = client.get("/console/review")
    assert page.status_code == 200, page.text
    text = page.text
    refs = re.findall(r'data-ref="([0-9A-F]{8})"', text)
    assert len(refs) == 2  # oldest first: the demo's repair, then the complaint
    assert text.index(f'data-item="{demo_item}"') < text.index(f'data-item="{measured_item}"')
    assert "维修工 刘洋" in text and "维修工 张伟" in text  # the assignees
    # Why each entered, translated (Chinese by default): the kind rule and the flag.
    assert "必审类型" in text and "测温不合格" in text
    # Each filter option with its count, and the default period said on the page.
    assert re.search(r'<option value="repair"[^>]*>报修 \(1\)</option>', text)
    assert re.search(r'<option value="measurement_failed"[^>]*>测温不合格 \(1\)</option>', text)
    assert re.search(r'<option value="open" selected>[^<]*\(2\)</option>', text)
    with ctx.db.session(readonly=True) as session:
        team = session.exec(select(Team).where(Team.code == "T2")).one()
    assert re.search(rf'<option value="{team.id}"[^>]*>{team.name} \(1\)</option>', text)
    assert 'id="period-note"' in text and "30" in text
    since = (ctx.clock.now() - timedelta(days=30)).date().isoformat()
    assert f'name="since" value="{since}"' in text

    # Filters: by kind, by flag, by team; the htmx fragment pushes the shareable URL.
    by_kind = client.get("/console/review", params={"kind": "temperature_complaint"})
    assert re.findall(r'data-item="([^"]+)"', by_kind.text) == [str(measured_item)]
    by_flag = client.get(
        "/console/review/rows", params={"flag": "measurement_failed"}, headers={"HX-Request": "true"}
    )
    assert by_flag.status_code == 200
    assert re.findall(r'data-item="([^"]+)"', by_flag.text) == [str(measured_item)]
    assert "<html" not in by_flag.text
    assert by_flag.headers["hx-push-url"].startswith("/console/review?")
    assert "flag=measurement_failed" in by_flag.headers["hx-push-url"]
    assert f"since={since}" in by_flag.headers["hx-push-url"] and 'id="period-note"' in by_flag.text
    everything = client.get("/console/review", params={"since": ""})
    assert len(re.findall(r'data-item="([^"]+)"', everything.text)) == 2
    assert "默认显示最近" not in everything.text and "默认显示最近" in by_flag.text
    by_team = client.get("/console/review", params={"team": str(team.id)})
    assert re.findall(r'data-item="([^"]+)"', by_team.text) == [str(demo_item)]
    # A period that ends before today holds nothing; a bad value is a 400 with its code.
    old = client.get("/console/review", params={"since": "2026-01-01", "until": "2026-01-31"})
    assert 'id="queue-empty"' in old.text
    bad = client.get("/console/review", params={"kind": "nonsense"})
    assert bad.status_code == 400 and code_of(bad) == "invalid_input"
    assert client.get("/console/review", params={"since": "yesterday"}).status_code == 400
    # Status: decided items leave the open queue.
    approved = client.get("/console/review", params={"status": "approved"})
    assert 'id="queue-empty"' in approved.text


def test_counts_stop_at_the_cap_and_the_page_says_so(
    client: TestClient,
    demo_item: uuid.UUID,
    measured_item: uuid.UUID,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each count is a LIMIT over an index range: at the cap the page shows "N+" and no total."""
    from backend.review import service

    monkeypatch.setattr(service, "COUNT_CAP", 2)
    signed_in(client, "supervisor1")
    text = client.get("/console/review").text
    assert re.search(r'<option value="open" selected>[^<]*\(2\+\)</option>', text)  # two open: the cap
    assert re.search(r'<option value="repair"[^>]*>报修 \(1\)</option>', text)  # under the cap: exact
    assert "符合筛选条件的超过 1 项" in text and "计数最多显示到 2" in text
    one = client.get("/console/review", params={"kind": "repair"}).text
    assert "符合筛选条件的共 1 项" in one


def test_the_queue_pages_by_keyset(client: TestClient, ctx: AppContext, clock: ManualClock) -> None:
    from backend.review import console

    seen_policy = {"always_kinds": ["repair"], "flags": [], "sample_percent": 0, "own_team_only": False}
    h = auth(login(client, "supervisor1"))
    assert client.put("/api/v1/review/policy", json=seen_policy, headers=h).status_code == 200
    tech = principal(ctx, "tech1")
    for _ in range(3):
        order = new_order(ctx)
        act(ctx, order.id, "accept", tech)
        act(
            ctx,
            order.id,
            "record_arrival",
            tech,
            attempts=[],
            outcome="admitted",
            badge_shown=True,
            **AT_DOOR,
        )
        act(ctx, order.id, "start_work", tech)
        act(ctx, order.id, "complete", tech, result="not_fixed", satisfaction=3)
        clock.advance(minutes=1)
    signed_in(client, "supervisor1")
    old = console.PAGE_SIZE
    console.PAGE_SIZE = 2
    try:
        first = client.get("/console/review")
        ids = re.findall(r'data-item="([^"]+)"', first.text)
        assert len(ids) == 2
        link = re.search(r'id="next-page"', first.text)
        assert link
        after = re.search(r'href="/console/review\?([^"]+)" hx-get="[^"]+"[^>]*id="next-page"', first.text)
        assert after, first.text
        second = client.get("/console/review?" + after.group(1).replace("&amp;", "&"))
        more = re.findall(r'data-item="([^"]+)"', second.text)
        assert len(more) == 1 and not set(more) & set(ids)
        assert 'id="next-page"' not in second.text and 'id="first-page"' in second.text
    finally:
        console.PAGE_SIZE = old


# ---------------------------------------------------------------- an item


def test_the_item_page_shows_the_evidence(
    client: TestClient, ctx: AppContext, demo_item: uuid.UUID, measured_item: uuid.UUID
) -> None:
    signed_in(client, "supervisor1")
    page = client.get(f"/console/review/{demo_item}")
    assert page.status_code == 200, page.text
    text = page.text
    # The timeline with all three clocks.
    assert 'data-event="completed"' in text and 'data-event="arrived"' in text
    assert text.count('class="clock-phone"') == text.count('class="clock-server"') >= 5
    assert 'class="clock-corrected"' in text
    # Arrival proof: verified at the door, distance, accuracy, the door attempt and its time.
    assert 'data-validation="verified"' in text and "已核实在住户处" in text
    assert "± 8 米" in text and "按门铃" in text
    # Photos by purpose as derived copies, served with the cookie session.
    shas = re.findall(r'src="/console/evidence/blobs/([0-9a-f]{64})/thumb"', text)
    assert len(shas) == 2
    for sha in shas:
        image = client.get(f"/console/evidence/blobs/{sha}/thumb")
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert image.content[:2] == b"\xff\xd8"
        assert client.get(f"/console/evidence/blobs/{sha}/display").status_code == 200
    # The receipt with both signatures verified, and its PDF.
    assert 'data-status="valid"' in text and text.count('data-intact="true"') == 2
    assert "有效" in text and "封签完好" in text
    (document_id,) = re.findall(r'href="/console/evidence/documents/([0-9a-f-]{36})/pdf"', text)
    pdf = client.get(f"/console/evidence/documents/{document_id}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # Supervisors: the decision forms, the original's link; no GPS in the demo's photos.
    assert 'id="approve-form"' in text and 'id="redo-form"' in text
    assert "原图中没有 GPS" in text

    measured = client.get(f"/console/review/{measured_item}").text
    assert 'data-result="fail"' in measured and 'data-room="客厅"' in measured
    assert "12.1, 12.0, 12.2" in measured and "不合格" in measured
    assert 'class="problems"' in measured or 'class="procedure-ok"' in measured
    # The original's EXIF GPS and its distance from the household, for supervisors.
    assert "41.79722" in measured and 'class="exif-distance"' in measured
    distance = re.search(r'class="exif-distance">距住户 (\d+) 米', measured)
    assert distance and 20 < int(distance.group(1)) < 80
    (sha,) = re.findall(r'src="/console/evidence/blobs/([0-9a-f]{64})/thumb"', measured)
    original = client.get(f"/console/evidence/blobs/{sha}/original")
    assert original.status_code == 200 and original.content == photo_with_gps()
    # Its GPS is personal data: the view is in the audit log, by whom and of which file.
    from backend.audit.models import AuditEvent
    from backend.auth.models import User

    with ctx.db.session(readonly=True) as session:
        viewed = session.exec(
            select(AuditEvent.actor_user_id).where(
                AuditEvent.event == "photo.original_viewed", AuditEvent.target_id == sha
            )
        ).all()
        supervisor = session.exec(select(User.id).where(User.username == "supervisor1")).one()
    assert viewed == [supervisor]


def test_a_dispatcher_reads_without_decisions_or_gps(
    client: TestClient, ctx: AppContext, measured_item: uuid.UUID
) -> None:
    token = signed_in(client, "dispatcher1")
    page = client.get(f"/console/review/{measured_item}")
    assert page.status_code == 200
    assert 'id="decisions"' not in page.text and 'id="approve-form"' not in page.text
    assert "41.79722" not in page.text and "/original" not in page.text
    (sha,) = re.findall(r'src="/console/evidence/blobs/([0-9a-f]{64})/thumb"', page.text)
    assert client.get(f"/console/evidence/blobs/{sha}/thumb").status_code == 200
    refused = client.get(f"/console/evidence/blobs/{sha}/original")
    assert refused.status_code == 403 and code_of(refused) == "forbidden"
    for action, data in (("approve", {}), ("reject", {"reason": "x"}), ("redo", {"other": "x"})):
        response = client.post(
            f"/console/review/{measured_item}/{action}", data={"csrf_token": token, **data}
        )
        assert response.status_code == 403 and code_of(response) == "forbidden"
    assert item_row(ctx, measured_item).status == "pending"


def test_another_companys_item_and_files_are_not_found(
    client: TestClient,
    ctx: AppContext,
    demo_item: uuid.UUID,
    north_supervisor: str,  # noqa: F811
) -> None:
    from tests.fixtures.console import console_login

    response = client.post(
        "/console/login",
        data={
            "username": north_supervisor,
            "password": "north-password-1",
            "csrf_token": _login_token(client),
            "next": "/console/review",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    page = client.get(f"/console/review/{demo_item}")
    assert page.status_code == 404 and code_of(page) == "not_found"
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/review").text).group(1)
    approve = client.post(f"/console/review/{demo_item}/approve", data={"csrf_token": token})
    assert approve.status_code == 404
    assert item_row(ctx, demo_item).status == "pending"
    assert f'data-item="{demo_item}"' not in client.get("/console/review").text
    client.cookies.clear()
    signed_in(client, "supervisor1")
    text = client.get(f"/console/review/{demo_item}").text
    sha = re.findall(r'src="/console/evidence/blobs/([0-9a-f]{64})/thumb"', text)[0]
    (document_id,) = re.findall(r'href="/console/evidence/documents/([0-9a-f-]{36})/pdf"', text)
    client.cookies.clear()
    assert console_login(client, north_supervisor, password="north-password-1").status_code == 303
    blob = client.get(f"/console/evidence/blobs/{sha}/thumb")
    assert blob.status_code == 404 and code_of(blob) == "blob_not_found"
    assert client.get(f"/console/evidence/documents/{document_id}/pdf").status_code == 404
    assert client.get("/console/review/" + str(uuid.uuid4())).status_code == 404


def _login_token(client: TestClient) -> str:
    form = client.get("/console/login")
    return re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)


def test_technicians_cannot_open_the_pages(client: TestClient, demo_item: uuid.UUID) -> None:
    page = client.get(f"/console/review/{demo_item}", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith(
        "/console/login?next=/console/review/"
    )
    # (field roles are refused at sign-in: tests/api/test_console.py)


# ---------------------------------------------------------------- decisions


def test_approve_through_the_form_then_a_second_decision_is_a_409_on_the_page(
    client: TestClient, ctx: AppContext, demo_item: uuid.UUID
) -> None:
    token = signed_in(client, "supervisor1")
    response = client.post(
        f"/console/review/{demo_item}/approve",
        data={"csrf_token": token, "note": "照片清楚"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"].endswith("?done=approved")
    page = client.get(response.headers["location"])
    assert 'data-done="approved"' in page.text and 'data-event="review_approved"' in page.text
    assert "照片清楚" in page.text
    item = item_row(ctx, demo_item)
    assert item.status == "approved" and item.decision_reason == "照片清楚"
    assert events(ctx, demo_item)[-1] == "review_approved"
    again = client.post(f"/console/review/{demo_item}/reject", data={"csrf_token": token, "reason": "迟了"})
    assert again.status_code == 409 and code_of(again) == "review_decided"
    assert "<html" in again.text and 'id="timeline"' in again.text  # the page, with the message
    assert item_row(ctx, demo_item).status == "approved"


def test_reject_needs_a_reason(client: TestClient, ctx: AppContext, demo_item: uuid.UUID) -> None:
    token = signed_in(client, "supervisor1")
    empty = client.post(f"/console/review/{demo_item}/reject", data={"csrf_token": token, "reason": "  "})
    assert empty.status_code == 400 and code_of(empty) == "invalid_input"
    assert item_row(ctx, demo_item).status == "pending"
    response = client.post(
        f"/console/review/{demo_item}/reject",
        data={"csrf_token": token, "reason": "收据签名不清"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert item_row(ctx, demo_item).status == "rejected"
    page = client.get(f"/console/review/{demo_item}")
    assert 'data-event="review_rejected"' in page.text and "收据签名不清" in page.text
    assert 'id="approve-form"' not in page.text  # decided


def test_redo_through_the_structured_form(
    client: TestClient, ctx: AppContext, clock: ManualClock, demo_item: uuid.UUID
) -> None:
    token = signed_in(client, "supervisor1")
    url = f"/console/review/{demo_item}/redo"
    nothing = client.post(url, data={"csrf_token": token, "due_at": "2026-12-08T17:00"})
    assert nothing.status_code == 400 and code_of(nothing) == "invalid_input"
    past = client.post(url, data={"csrf_token": token, "photo": "after", "due_at": "2026-12-07T08:00"})
    assert past.status_code == 400 and code_of(past) == "invalid_due"  # 08:00 Shanghai is before 08:30
    no_due = client.post(url, data={"csrf_token": token, "photo": "after", "due_at": ""})
    assert no_due.status_code == 400
    bad_purpose = client.post(
        url, data={"csrf_token": token, "photo": "selfie", "due_at": "2026-12-08T17:00"}
    )
    assert bad_purpose.status_code == 400 and code_of(bad_purpose) == "invalid_input"
    with ctx.db.session(readonly=True) as session:
        assert session.exec(select(RedoRequest)).all() == []
    response = client.post(
        url,
        data={
            "csrf_token": token,
            "photo": ["after", "before"],
            "document_type": "receipt",
            "room": "卧室",
            "other": "拍清楚阀门",
            "due_at": "2026-12-08T17:00",
            "reason": "照片模糊",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    with ctx.db.session(readonly=True) as session:
        (request,) = session.exec(select(RedoRequest)).all()
    assert [{k: v for k, v in i.items() if v is not None} for i in request.items] == [
        {"kind": "photo", "purpose": "after"},
        {"kind": "photo", "purpose": "before"},
        {"kind": "signature", "document_type": "receipt"},
        {"kind": "measurement_room", "room": "卧室"},
        {"kind": "other", "text": "拍清楚阀门"},
    ]
    # 17:00 in Shanghai is 09:00 UTC.
    assert request.due_at.isoformat() == "2026-12-08T09:00:00+00:00"
    assert item_row(ctx, demo_item).status == "redo_requested"
    page = client.get(f"/console/review/{demo_item}")
    assert 'data-event="redo_requested"' in page.text and 'id="redos"' in page.text
    assert 'id="redo-form"' not in page.text and 'id="approve-form"' in page.text
    again = client.post(url, data={"csrf_token": token, "photo": "after", "due_at": "2026-12-09T17:00"})
    assert again.status_code == 409  # review_decided: the item is redo_requested
    assert code_of(again) in ("review_decided", "redo_open")


@pytest.mark.parametrize("action", ["approve", "reject", "redo"])
def test_a_decision_without_the_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, ctx: AppContext, demo_item: uuid.UUID, action: str
) -> None:
    signed_in(client, "supervisor1")
    data = {"reason": "x", "photo": "after", "due_at": "2026-12-08T17:00"}
    for sent in (data, {**data, "csrf_token": "forged"}):
        response = client.post(f"/console/review/{demo_item}/{action}", data=sent)
        assert response.status_code == 403 and code_of(response) == "csrf_token_invalid"
    assert item_row(ctx, demo_item).status == "pending"
    assert not any(e.startswith(("review_", "redo_")) for e in events(ctx, demo_item))
