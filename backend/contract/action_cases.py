"""Every action of the catalogue, each in every answer it can get, built from the demo company's day.

For each ``(type, v)``: a payload that applies, one that is refused (``rejected``), for intents one
that no longer fits the order (``conflict``), and for actions that name a file one whose file is
not uploaded yet (``waiting``). ``duplicate`` and ``out_of_order`` need no payload of their own.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backend.contract.story import (
    ACTION_TIME,
    ARRIVED,
    STARTED,
    ExpectationFailed,
    Phone,
    Story,
    expect,
    phone_made,
    photo,
)
from mobile_contract.documents import content_sha256

__all__ = ("ACTION_CASES", "ActionCase", "Outcome", "pending")

Build = Callable[[Story, Phone], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A payload that gets one answer, and what the example says about it."""

    build: Build
    description: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class ActionCase:
    user: str
    applied: Outcome
    rejected: Outcome
    conflict: Outcome | None = None  # intents only
    waiting: Outcome | None = None  # actions that name a file


def _own(**fields: Any) -> Build:
    return lambda story, phone: {"work_order_id": story.order(assignee=phone.username), **fields}


def _own_in(steps: tuple[str, ...], **fields: Any) -> Build:
    return lambda story, phone: {"work_order_id": story.order(assignee=phone.username, steps=steps), **fields}


def _foreign(**fields: Any) -> Build:
    """An order of tech2's: for tech1 it does not exist."""
    return lambda story, phone: {"work_order_id": story.order(assignee="tech2", account="200101"), **fields}


WINDOW = {"window_start": "2026-12-07T14:00:00+08:00", "window_end": "2026-12-07T16:00:00+08:00"}
FOREIGN = (
    "The order belongs to another technician: for this user it does not exist, so the answer is "
    "`rejected / not_found` (never `forbidden`: an id confirms nothing)."
)


def _cancelled_then_appointment(story: Story, phone: Phone) -> dict[str, Any]:
    order_id = story.order(assignee=phone.username, steps=("accept",))
    story.office_does(order_id, "cancel", {"reason": "住户来电取消"})
    return {"work_order_id": order_id, **WINDOW}


def _photo(purpose: str = "before", *, foreign: bool = False) -> Build:
    def build(story: Story, phone: Phone) -> dict[str, Any]:
        owner = "tech2" if foreign else phone.username
        order_id = story.order(assignee=owner, account="200101" if foreign else "100101")
        return {"work_order_id": order_id, "blob": phone.upload(story.name(purpose)), "purpose": purpose}

    return build


def _photo_not_uploaded(story: Story, phone: Phone) -> dict[str, Any]:
    order_id = story.order(assignee=phone.username)
    return {"work_order_id": order_id, "blob": pending(phone, story.name("before")), "purpose": "before"}


def pending(phone: Phone, name: str) -> str:
    """A photo the phone has taken but not uploaded yet; uploaded after the example."""
    data = photo(name)
    sha = hashlib.sha256(data).hexdigest()
    phone.story.pending[sha] = name
    return sha


def _measurement(instrument: str) -> Build:
    def build(story: Story, phone: Phone) -> dict[str, Any]:
        order_id = story.order(assignee=phone.username, kind="temperature_complaint", account="100103")
        measurement_id = phone_made(story.name("measurement"))
        story.notes.setdefault("measurement_id", measurement_id)
        return {
            "measurement_id": measurement_id,
            "household_id": story.household("100103"),
            "work_order_id": order_id,
            "instrument_id": instrument,
            "rooms": [
                {"name": "主卧", "kind": "bedroom", "readings_c": [17.6, 17.7, 17.6], "height_m": 1.5},
                {"name": "客厅", "kind": "living_room", "readings_c": [18.1, 18.2, 18.2], "height_m": 1.5},
            ],
            "outdoor_c": -12.5,
            "closed_minutes": 35,
            # No measured_at: the server then takes the (corrected) time of the action, so the
            # instrument is judged on the server's day, also on a server seeded on another day.
        }

    return build


def receipt(order_id: str, **changes: Any) -> dict[str, Any]:
    """A service receipt (回执) for one of tech1's orders, as the phone writes it when the work ends.

    It must agree with the server's records: tech1's full name and staff number, the arrival the
    story recorded (by the phone's clock, a few minutes before) and the moment it is issued.
    """
    return {
        "work_order_id": order_id,
        "order_ref": order_id[-8:].upper(),
        "technician_name": "维修工 张伟",
        "staff_number": "T0301",
        "resident_name": "赵建国",
        "address": "和平区南京北街 12 号 1-2-201",
        "arrived_at": "2026-12-07T08:25:00+08:00",
        "completed_at": ACTION_TIME,
        "found": "卧室暖气片排气阀漏水",
        "done": "更换排气阀，试压正常",
        "result": "fixed",
        "satisfaction": 5,
        "parts_used": ["排气阀 DN15"],
        **changes,
    }


def _issue(**changes: Any) -> Build:
    def build(story: Story, phone: Phone) -> dict[str, Any]:
        order_id = story.order(assignee=phone.username, steps=STARTED)
        return {
            "document": {"type": "receipt", "id": phone_made(story.name("receipt"))},
            "content": receipt(order_id, **changes),
        }

    return build


def _signature(*, tampered: bool = False, image: bool = False) -> Build:
    def build(story: Story, phone: Phone) -> dict[str, Any]:
        issued = _issue()(story, phone)
        result = story.helper(phone.username).push_one("document.issue", 1, issued)
        if result["status"] != "applied":
            raise ExpectationFailed(f"document.issue: {result}")
        content = {**issued["content"], "satisfaction": 1} if tampered else issued["content"]
        signature: dict[str, Any] = {
            "document": issued["document"],
            "signer_name": "赵建国",
            "signer_role": "resident",
            "content_sha256": content_sha256(content),
        }
        if image:
            signature["blob"] = pending(phone, f"signature/{issued['document']['id']}")
        else:
            signature["strokes"] = [[[0, 0, 0], [40, 12, 30], [80, 4, 60]], [[10, 30, 0], [70, 32, 45]]]
        if not tampered:
            story.notes.setdefault(
                "signed", {"document_id": issued["document"]["id"], "order_id": content["work_order_id"]}
            )
        return signature

    return build


def _revisit(*, unknown: bool = False) -> Build:
    def build(story: Story, phone: Phone) -> dict[str, Any]:
        if unknown:
            return {"revisit_id": phone_made("no-such-revisit"), "channel": "phone", "outcome": "satisfied"}
        order_id = story.order(assignee=phone.username, steps=(*STARTED, "complete_not_fixed"))
        answer = expect(story.http.send("GET", "/api/v1/revisits", token=story.office.token), 200, "revisits")
        (revisit_id,) = [r["id"] for r in answer.body if r["order_id"] == order_id]
        return {"revisit_id": revisit_id, "channel": "phone", "outcome": "satisfied", "satisfaction": 5}

    return build


def _redo(*, unknown: bool = False, uploaded: bool = True) -> Build:
    def build(story: Story, phone: Phone) -> dict[str, Any]:
        if unknown:
            return {"redo_request_id": phone_made("no-such-redo-request"), "note": "已重拍"}
        story.review_always("repair")
        order_id = story.order(assignee=phone.username, steps=(*STARTED, "complete_not_fixed"))
        redo_id = story.redo_request(order_id, "after")
        name = story.name("after")
        blob = phone.upload(name) if uploaded else pending(phone, name)
        return {
            "redo_request_id": redo_id,
            "photos": [{"purpose": "after", "blob": blob}],
            "note": "已重拍阀门",
        }

    return build


def _completion(result: str, **extra: Any) -> Build:
    return _own_in(STARTED, result=result, satisfaction=5, **extra)


def _return_requested_twice(story: Story, phone: Phone) -> dict[str, Any]:
    order_id = story.order(assignee=phone.username)
    story.helper(phone.username).push_one(
        "work_order.return_request", 1, {"work_order_id": order_id, "reason": "缺零件"}
    )
    return {"work_order_id": order_id, "reason": "还是缺零件"}


ACTION_CASES: dict[tuple[str, int], ActionCase] = {
    ("work_order.accept", 1): ActionCase(
        "tech1",
        Outcome(_own(), "The technician accepts an order assigned to them: assigned → accepted."),
        Outcome(_foreign(), FOREIGN, "not_found"),
        conflict=Outcome(
            _own_in(("accept",)),
            "The order was accepted already (from another phone of the same user): an intent is checked "
            "against the order as it is now; `current` shows its state and allowed moves.",
            "illegal_transition",
        ),
    ),
    ("work_order.contact", 1): ActionCase(
        "tech1",
        Outcome(
            _own(outcome="reached", note="约好下午两点"),
            "The technician phoned the resident and reached them.",
        ),
        Outcome(_foreign(outcome="reached"), FOREIGN, "not_found"),
    ),
    ("work_order.appointment", 1): ActionCase(
        "tech1",
        Outcome(
            _own_in(("accept",), **WINDOW), "An appointment agreed with the resident: → appointment_set."
        ),
        Outcome(_foreign(**WINDOW), FOREIGN, "not_found"),
        conflict=Outcome(
            _cancelled_then_appointment,
            "The dispatcher cancelled the order while the phone was offline: the appointment no longer "
            "applies.",
            "illegal_transition",
        ),
    ),
    ("work_order.depart", 1): ActionCase(
        "tech1",
        Outcome(_own(), "The technician sets off to the household: → en_route."),
        Outcome(_foreign(), FOREIGN, "not_found"),
    ),
    ("work_order.arrive", 1): ActionCase(
        "tech1",
        Outcome(
            _own(
                lat=41.7968,
                lon=123.4245,
                accuracy_m=8,
                attempts=[{"method": "ring", "at": "2026-12-07T08:29:00+08:00"}],
                outcome="admitted",
                badge_shown=True,
            ),
            "At the door, let in: a fact, recorded with where and how the technician got in → arrived.",
        ),
        Outcome(_foreign(outcome="admitted"), FOREIGN, "not_found"),
    ),
    ("work_order.no_access", 1): ActionCase(
        "tech1",
        Outcome(
            _own(
                attempts=[
                    {"method": "knock", "at": "2026-12-07T08:20:00+08:00"},
                    {"method": "phone", "at": "2026-12-07T08:25:00+08:00"},
                ],
                note="敲门三次无人应答",
            ),
            "Nobody opened: the door attempts are kept as evidence.",
        ),
        Outcome(_foreign(note="无人"), FOREIGN, "not_found"),
    ),
    ("work_order.start", 1): ActionCase(
        "tech1",
        Outcome(_own_in(ARRIVED), "Work starts at the household: arrived → in_progress."),
        Outcome(_foreign(), FOREIGN, "not_found"),
        conflict=Outcome(
            _own_in(("accept",)),
            "The technician has not arrived yet (no arrival recorded): starting is not an allowed move.",
            "illegal_transition",
        ),
    ),
    ("work_order.note", 1): ActionCase(
        "tech1",
        Outcome(_own(text="阀门锈死，需带扳手"), "A free note on the order's timeline."),
        Outcome(_foreign(text="x"), FOREIGN, "not_found"),
    ),
    ("evidence.photo", 1): ActionCase(
        "tech1",
        Outcome(_photo(), "A photo uploaded first (PUT /api/v1/blobs/{sha256}), then attached to the order."),
        Outcome(_photo(foreign=True), FOREIGN, "not_found"),
        waiting=Outcome(
            _photo_not_uploaded,
            "The photo's file is not uploaded yet: the action waits (`missing` lists the hashes) and the "
            "counter stays below it. Upload the file, then push again from this action.",
            "blob_missing",
        ),
    ),
    ("measurement.record", 1): ActionCase(
        "inspector1",
        Outcome(
            _measurement("TH-0042"),
            "An indoor-temperature measurement; it is its own document, to be signed by the inspector "
            "and the resident.",
        ),
        Outcome(
            _measurement("TH-0007"),
            "The instrument's calibration certificate had expired on the day of the measurement.",
            "instrument_expired",
        ),
    ),
    ("document.issue", 1): ActionCase(
        "tech1",
        Outcome(_issue(), "A service receipt written on the phone, issued for signing."),
        Outcome(
            _issue(staff_number="T9999"),
            "The receipt names a staff number other than that of the order's technician: it disagrees "
            "with the server's records, and `disagreeing` names the field.",
            "content_disagrees",
        ),
    ),
    ("evidence.signature", 1): ActionCase(
        "tech1",
        Outcome(
            _signature(),
            "The resident signs the receipt on the screen (pen strokes); `content_sha256` is the hash of the "
            "receipt's canonical JSON.",
        ),
        Outcome(
            _signature(tampered=True),
            "The hash was computed over other content than the document issued.",
            "content_mismatch",
        ),
        waiting=Outcome(
            _signature(image=True),
            "A signature image that is not uploaded yet: the action waits for the file.",
            "blob_missing",
        ),
    ),
    ("meter.reading", 1): ActionCase(
        "tech1",
        Outcome(_own(meter_id="HM-2231", value=1234.5, phase="before"), "A heat meter read before the work."),
        Outcome(_foreign(meter_id="HM-2231", value=1.0), FOREIGN, "not_found"),
        waiting=Outcome(
            lambda story, phone: {
                **_own(meter_id="HM-2231", value=1240.0, phase="after")(story, phone),
                "blob": pending(phone, "meter/HM-2231/after"),
            },
            "A reading with a photo of the meter that is not uploaded yet.",
            "blob_missing",
        ),
    ),
    ("work_order.complete", 1): ActionCase(
        "tech1",
        Outcome(
            _completion("not_fixed"),
            "Version 1 of complete (still accepted; upgraded to v2 with an empty note). Not fixed: a repair "
            "goes on to a revisit.",
        ),
        Outcome(_foreign(result="fixed"), FOREIGN, "not_found"),
        conflict=Outcome(
            _completion("fixed"),
            "Fixed, but the photos the kind needs (before, after) were never attached: `photos_missing`.",
            "photos_missing",
        ),
    ),
    ("work_order.complete", 2): ActionCase(
        "tech1",
        Outcome(
            _completion("not_fixed", note="需更换暖气片，已报备", parts_used=["生料带"]),
            "The order is finished: in_progress → completed (a repair then → revisit_due).",
        ),
        Outcome(_foreign(result="fixed"), FOREIGN, "not_found"),
        conflict=Outcome(
            _completion("fixed", note="已修好"),
            "Fixed, but the photos the kind needs (before, after) were never attached: `photos_missing`.",
            "photos_missing",
        ),
    ),
    ("work_order.return_request", 1): ActionCase(
        "tech1",
        Outcome(
            _own(reason="缺零件，需退回调度"), "The technician asks the dispatcher to take the order back."
        ),
        Outcome(_foreign(reason="x"), FOREIGN, "not_found"),
        conflict=Outcome(
            _return_requested_twice,
            "A return was requested already and is waiting for the dispatcher.",
            "illegal_transition",
        ),
    ),
    ("revisit.outcome", 1): ActionCase(
        "tech1",
        Outcome(
            _revisit(),
            "The technician called the resident back after the repair: satisfied, the order closes.",
        ),
        Outcome(_revisit(unknown=True), "No such revisit for this user.", "not_found"),
    ),
    ("redo.response", 1): ActionCase(
        "tech1",
        Outcome(
            _redo(),
            "The answer to a supervisor's redo request (pulled as entity `redo_request`): the new photo, "
            "uploaded first, and a note. The order's review item is back in the supervisor's queue.",
        ),
        Outcome(
            _redo(unknown=True),
            "No such redo request for this user (another user's or company's does not exist either).",
            "unknown_redo_request",
        ),
        waiting=Outcome(
            _redo(uploaded=False),
            "The new photo's file is not uploaded yet: the action waits (`missing`), like `evidence.photo`.",
            "blob_missing",
        ),
    ),
}
