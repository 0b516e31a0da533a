"""The review story in a real headless Chromium against ``heatcrew demo``, on both databases: the
supervisor filters the queue and opens the demo's completed repair (tech2's, photos and a signed
receipt), sees a photo and the verified signatures, sends it back for a photo; tech2's phone (the
reference client, ``mobile_contract.client``) pulls the request, uploads a new photo and answers
with ``redo.response``; the supervisor finds the item back in the queue, sees before and after
side by side and approves. axe-core at 1366x768 and 1024x768 on the queue and the item."""

import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from backend.demo import DEMO_PASSWORD
from mobile_contract.client import OutboxClient
from tests.browser.conftest import DESKTOP, TABLET, Server, shot, sign_in

pytestmark = pytest.mark.browser

ALL_LOADED = """(selector) => {
  const images = [...document.querySelectorAll(selector)];
  return images.length > 0 && images.every((i) => i.complete && i.naturalWidth > 0);
}"""


def _demo_item(server: Server) -> dict[str, Any]:
    response = server.api("GET", "/api/v1/review/items", username="supervisor1", params={"kind": "repair"})
    assert response.status_code == 200, response.text
    pending = [i for i in response.json()["items"] if i["status"] == "pending"]
    assert pending, "heatcrew demo seeds a completed repair of tech2's waiting in review"
    return pending[0]


def _new_photo() -> bytes:
    out = io.BytesIO()
    Image.effect_noise((640, 480), 60).convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


def _wait_loaded(page: Any, selector: str) -> None:
    page.wait_for_function(ALL_LOADED, arg=selector)
    widths = page.eval_on_selector_all(selector, "(images) => images.map((i) => i.naturalWidth)")
    assert widths and all(w > 0 for w in widths), widths


def test_chromium_review_redo_story(page_at, console_server: Server, check_axe, tmp_path: Path) -> None:
    db = console_server.database
    item = _demo_item(console_server)
    item_url = f"/console/review/{item['id']}"

    # (1) The supervisor filters the queue (htmx, the URL follows) and opens the item.
    page = page_at(DESKTOP)
    sign_in(page, "supervisor1")
    page.goto("/console/review")
    assert page.locator("#period-note").is_visible()
    check_axe(page, f"review-queue-desktop-{db}")
    with page.expect_response(lambda r: "/console/review/rows" in r.url and r.status == 200):
        page.select_option("#f-kind", "repair")
    page.wait_for_url(re.compile(r"/console/review\?.*kind=repair"))
    row = page.locator(f'tr[data-item="{item["id"]}"]')
    assert row.get_attribute("data-status") == "pending"
    assert "维修工 刘洋" in row.inner_text()
    shot(page, f"review-1-queue-filtered-{db}")
    row.locator("a").click()
    page.wait_for_url(f"**{item_url}")

    # (2) A photo shows (its copy loaded) and the receipt's signatures are verified.
    _wait_loaded(page, "#photos img")
    receipt = page.locator('#documents .document[data-status="valid"]')
    assert receipt.count() == 1 and "有效" in receipt.inner_text()
    assert receipt.locator('tr[data-intact="true"]').count() == 2
    timeline = page.locator("#timeline")
    for clock in ("clock-phone", "clock-corrected", "clock-server"):
        assert timeline.locator(f"td.{clock}").count() >= 4
    assert page.locator('#arrivals [data-validation="verified"]').count() == 1
    check_axe(page, f"review-item-desktop-{db}")
    shot(page, f"review-2-item-{db}")

    tablet = page_at(TABLET)
    sign_in(tablet, "supervisor1")
    tablet.goto("/console/review")
    check_axe(tablet, f"review-queue-tablet-{db}")
    tablet.goto(item_url)
    _wait_loaded(tablet, "#photos img")
    check_axe(tablet, f"review-item-tablet-{db}")

    # (3) Sent back for redo, naming the "after" photo.
    page.check("#redo-photo-after")
    page.fill("#redo-other", "请拍清楚暖气片接口")
    page.click("#send-redo")
    page.wait_for_url(re.compile(r"\?done=redo_requested"))
    assert page.locator("#item-status").get_attribute("data-status") == "redo_requested"
    assert page.locator('#timeline tr[data-event="redo_requested"]').count() == 1
    shot(page, f"review-3-redo-requested-{db}")

    # (4) tech2's phone pulls the request, uploads a new photo and answers it.
    with httpx.Client(base_url=console_server.base, timeout=30) as http:
        phone = OutboxClient(http, tmp_path / f"tech2-{db}.sqlite")
        phone.login("tech2", DEMO_PASSWORD)
        phone.pull()
        requests = {k: v for k, v in phone.local("redo_request").items() if v["order_id"] == item["order_id"]}
        ((request_id, request),) = requests.items()
        assert request["status"] == "open"
        assert (request["items"][0]["kind"], request["items"][0].get("purpose")) == ("photo", "after")
        new_sha = phone.attach_file(_new_photo())
        action_id, _ = phone.enqueue(
            "redo.response",
            {
                "redo_request_id": request_id,
                "photos": [{"purpose": "after", "blob": new_sha}],
                "note": "已重拍",
            },
            blobs=[new_sha],
        )
        phone.push()
        assert phone.outcome(action_id)["status"] == "applied", phone.outcome(action_id)
        phone.pull()
        assert request_id not in phone.local("redo_request")  # answered: gone from the phone
        phone.close()

    # (5) Back in the queue as redo answered; before and after side by side; approved.
    page.goto("/console/review")
    row = page.locator(f'tr[data-item="{item["id"]}"]')
    assert row.get_attribute("data-status") == "redo_answered"
    shot(page, f"review-4-queue-redo-answered-{db}")
    row.locator("a").click()
    page.wait_for_url(f"**{item_url}")
    redo = page.locator('#redos .redo[data-status="answered"]')
    assert redo.count() == 1
    assert redo.locator(f'.after figure[data-sha="{new_sha}"]').count() == 1
    assert redo.locator(".before figure").count() >= 1
    _wait_loaded(page, "#redos .before img")
    _wait_loaded(page, "#redos .after img")
    assert "已重拍" in redo.inner_text()
    check_axe(page, f"review-item-answered-desktop-{db}")
    shot(page, f"review-5-before-after-{db}")
    page.fill("#approve-note", "返工合格")
    page.click("#approve")
    page.wait_for_url(re.compile(r"\?done=approved"))
    assert page.locator("#item-status").get_attribute("data-status") == "approved"
    assert page.locator('#timeline tr[data-event="review_approved"]').count() == 1
    assert page.locator("#decisions form").count() == 0
    shot(page, f"review-6-approved-{db}")
    after = console_server.api("GET", f"/api/v1/review/items/{item['id']}", username="supervisor1").json()
    assert after["item"]["status"] == "approved" and after["redo"][0]["status"] == "answered"
