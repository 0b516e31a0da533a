"""FUZZ: arbitrary pushes through the real decode path end in a typed refusal, never a crash.

A push body is decoded as ``PushRequest`` (a refusal there is a ``msgspec`` error: 400
``invalid_body`` / ``malformed_json``), then each action by ``backend.sync.push._decode`` (a
refusal there is that one action's ``rejected`` answer), then its field time is worked out. None of
these steps may raise anything else, whatever the JSON: wrong types, huge integers, naive, aware or
out-of-range datetimes, unknown types and versions, arbitrary values.

Bounded: ``HEATCREW_FUZZ_EXAMPLES`` examples per test (default 200; half for whole push bodies),
about 20 s in all.
"""

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.request_guard import MAX_JSON_DEPTH, json_too_deep
from backend.sync import push
from backend.sync.handlers import blobs_of, order_id_of
from mobile_contract.actions import ACTION_TYPES
from mobile_contract.sync import ActionResult, PushRequest, Status
from tests import fuzz_log

pytestmark = pytest.mark.fuzz


@pytest.fixture(scope="module", autouse=True)
def _budget() -> Any:
    started = time.monotonic()
    yield
    fuzz_log.report(
        f"FUZZ Hypothesis action decoder: {EXAMPLES} examples per test "
        f"({max(EXAMPLES // 2, 1)} whole push bodies), {time.monotonic() - started:.1f} s"
    )


EXAMPLES = int(os.environ.get("HEATCREW_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NOW = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)

huge_ints = st.sampled_from([2**31, 2**53, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30)])
ints = st.integers() | huge_ints
datetimes = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),  # naive
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),  # aware, years 1-9999
    st.sampled_from(
        [
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "2099-12-31T23:59:59Z",
            "2000-01-01T00:00:00Z",
            "2026-12-07T00:29:00",
            "2026-12-07T00:29:00Z",
            "2026-12-07T08:29:00+08:00",
            "2026-02-30T00:00:00Z",
            "",
        ]
    ),
)
scalars = (
    st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
json_values = st.recursive(
    scalars | datetimes,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# A payload is a dict with the catalogue's own field names (so decoding goes deep), with any values.
FIELDS = sorted({f for struct in ACTION_TYPES.values() for f in struct.__struct_fields__})
SUB_FIELDS = ["method", "at", "name", "kind", "readings_c", "reading_times", "height_m", "type", "id"]
field_values = (
    json_values
    | datetimes
    | st.uuids().map(str)
    | st.lists(st.dictionaries(st.sampled_from(SUB_FIELDS), json_values | datetimes, max_size=6), max_size=3)
    | st.lists(st.lists(st.tuples(ints, ints, ints).map(list), max_size=3), max_size=3)
)
payloads = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=10),
    json_values,
)
W = {"work_order_id": "0190a0b0-0000-7000-8000-000000000001"}
T, T2 = "2026-12-07T00:20:00Z", "2026-12-07T02:20:00+08:00"
DOC = {"type": "receipt", "id": "0190a0b0-0000-7000-8000-000000000002"}
# A valid payload of each type: the fuzzer changes one value anywhere in it, so decoding goes deep.
TEMPLATES: dict[str, dict[str, Any]] = {
    "work_order.accept": W,
    "work_order.contact": {**W, "outcome": "reached", "note": "n"},
    "work_order.appointment": {**W, "window_start": T, "window_end": T2, "reason": "r"},
    "work_order.depart": W,
    "work_order.arrive": {
        **W,
        "outcome": "admitted",
        "lat": 39.9,
        "attempts": [{"method": "knock", "at": T}],
    },
    "work_order.no_access": {**W, "attempts": [{"method": "ring", "at": T}], "note": "n"},
    "work_order.start": W,
    "work_order.note": {**W, "text": "x"},
    "evidence.photo": {**W, "blob": "a" * 64, "purpose": "before", "taken_at": T},
    "measurement.record": {
        "measurement_id": DOC["id"],
        "household_id": DOC["id"],
        "instrument_id": "TH-1",
        "rooms": [
            {"name": "r", "kind": "bedroom", "readings_c": [18.5], "height_m": 1.0, "reading_times": [T]}
        ],
        "closed_minutes": 30,
        "measured_at": T,
    },
    "document.issue": {"document": DOC, "content": {"work_order_id": W["work_order_id"]}},
    "evidence.signature": {
        "document": DOC,
        "signer_name": "s",
        "signer_role": "resident",
        "content_sha256": "c" * 64,
        "strokes": [[[1.0, 2.0, 3]]],
    },
    "meter.reading": {**W, "meter_id": "m", "value": 1.0},
    "work_order.complete": {**W, "result": "fixed", "satisfaction": 5, "note": "n", "parts_used": ["p"]},
    "work_order.return_request": {**W, "reason": "r"},
    "revisit.outcome": {
        "revisit_id": DOC["id"],
        "channel": "phone",
        "outcome": "satisfied",
        "satisfaction": 4,
    },
    "redo.response": {
        "redo_request_id": DOC["id"],
        "photos": [{"purpose": "after", "blob": "b" * 64, "taken_at": T}],
        "document_ids": [DOC["id"]],
        "measurement_ids": [DOC["id"]],
        "note": "n",
    },
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


@st.composite
def mutated_payloads(draw: st.DrawFn, kind: str) -> Any:
    template = TEMPLATES[kind]
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        paths = _paths(template)
        times = [p for p in paths if _get(template, p) in (T, T2)]
        numbers = [p for p in paths if isinstance(_get(template, p), int | float)]
        # Half the time a time or a number gets a hostile value of its kind; else anything goes anywhere.
        aimed = [(times, datetimes), (numbers, ints | st.floats())]
        choices = [(where, values) for where, values in aimed if where] + [
            (paths, datetimes | ints | field_values)
        ]
        where, values = draw(st.sampled_from(choices))
        template = _replace(template, draw(st.sampled_from(where)), draw(values))
    return template


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


types_and_versions = st.one_of(
    st.sampled_from(sorted(ACTION_TYPES)),
    st.tuples(st.sampled_from([*sorted({t for t, _ in ACTION_TYPES}), "no.such", "x"]), ints),
)


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    kind, v = draw(types_and_versions)
    envelope: dict[str, Any] = {
        "id": draw(st.uuids().map(str) | json_values),
        "seq": draw(st.integers(min_value=1, max_value=10**6) | ints | json_values),
        "type": kind,
        "v": v,
        "occurred_at": draw(datetimes | json_values),
        "payload": draw(payloads),
    }
    if draw(st.booleans()):
        del envelope[draw(st.sampled_from(sorted(envelope)))]
    return envelope


@st.composite
def push_bodies(draw: st.DrawFn) -> Any:
    body: dict[str, Any] = {
        "device_id": draw(st.sampled_from(["fuzz-phone-1"]) | st.text(max_size=70)),
        "sent_at": draw(datetimes),
        "actions": draw(st.lists(envelopes(), max_size=4)),
    }
    return draw(st.just(body) | json_values)


def _batch(request: PushRequest) -> Any:
    return push._Batch(
        device_id=request.device_id,
        actor=None,  # type: ignore[arg-type]  # not used by decoding
        claims=None,
        received_at=NOW,
        skew=NOW - request.sent_at,
        envelopes=request.actions,
    )


def _assert_times_usable(value: Any) -> None:
    """A decoded payload's times can be compared and shifted: aware, and nowhere near the limits."""
    if isinstance(value, datetime):
        assert value.tzinfo is not None
        assert datetime(1900, 1, 1, tzinfo=UTC) < value < datetime(2200, 1, 1, tzinfo=UTC)
        value - (NOW - datetime(1990, 1, 1, tzinfo=UTC))  # no overflow
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            _assert_times_usable(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            _assert_times_usable(item)


def _through_the_decoder(body: bytes) -> list[ActionResult | None]:
    """What push does with a body before anything touches the database."""
    if json_too_deep(body):
        return []
    try:
        request = msgspec.json.decode(body, type=PushRequest)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return []  # 400 invalid_body / malformed_json
    batch = _batch(request)
    answers = []
    for envelope in request.actions:
        decoded = push._decode(envelope, request.sent_at)
        if decoded.error is not None:
            assert decoded.error.status is Status.rejected
            assert decoded.error.code in {
                "invalid_payload",
                "unsupported_action_version",
                "unknown_action_type",
            }
        else:
            blobs_of(decoded.payload)
            order_id_of(decoded.payload)
            _assert_times_usable(decoded.payload)
        when = push._field_time(batch, envelope.occurred_at)
        assert when.corrected_at <= NOW
        assert isinstance(push._stored_skew(batch.skew), int)
        assert abs(push._stored_skew(batch.skew)) < 2**31
        answers.append(decoded.error)
    return answers


@settings(FUZZ, max_examples=max(EXAMPLES // 2, 1))
@given(push_bodies())
def test_fuzz_any_push_body_is_decoded_or_refused(body: Any) -> None:
    _through_the_decoder(msgspec.json.encode(body))


def test_the_templates_decode() -> None:
    for kind, v in ACTION_TYPES:
        action = {"id": str(uuid.uuid4()), "seq": 1, "type": kind, "v": v, "occurred_at": T}
        body = {
            "device_id": "fuzz-phone-1",
            "sent_at": "2026-12-07T00:30:00Z",
            "actions": [{**action, "payload": TEMPLATES[kind]}],
        }
        assert _through_the_decoder(msgspec.json.encode(body)) == [None], kind


@st.composite
def typed_payloads(draw: st.DrawFn) -> tuple[tuple[str, int], Any]:
    kind, v = draw(st.sampled_from(sorted(ACTION_TYPES)))
    return (kind, v), draw(mutated_payloads(kind))


@FUZZ
@given(typed_payloads())
def test_fuzz_each_payload_struct_decodes_or_is_invalid_payload(typed: tuple[tuple[str, int], Any]) -> None:
    (kind, v), payload = typed
    envelope = {
        "id": str(uuid.uuid4()),
        "seq": 1,
        "type": kind,
        "v": v,
        "occurred_at": "2026-12-07T00:29:00Z",
    }
    body = {
        "device_id": "fuzz-phone-1",
        "sent_at": "2026-12-07T00:30:00Z",
        "actions": [{**envelope, "payload": payload}],
    }
    [answer] = _through_the_decoder(msgspec.json.encode(body))
    if answer is not None:
        assert answer.code == "invalid_payload"


@FUZZ
@given(st.binary(max_size=200) | st.text(alphabet='[]{}"\\,: a1', max_size=400).map(str.encode))
def test_fuzz_the_depth_check_never_lets_a_deep_body_through(body: bytes) -> None:
    """A body the check passes decodes without recursing past the limit (msgspec would raise)."""
    if json_too_deep(body, limit=MAX_JSON_DEPTH):
        return
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return

    def depth(v: Any) -> int:
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        return 0

    assert depth(value) <= MAX_JSON_DEPTH


def test_fuzz_known_cases_of_the_depth_check() -> None:
    assert not json_too_deep(b"[" * 32 + b"]" * 32)
    assert json_too_deep(b"[" * 33 + b"]" * 33)
    assert json_too_deep(b"{" * 1000)
    assert not json_too_deep(b'["' + b"[" * 100 + b'"]')
    assert not json_too_deep(b'["\\\\", "\\"' + b"[" * 100 + b'"]')
    assert json_too_deep(b'["\\\\", ' + b"[" * 40 + b"]" * 40 + b"]")
    assert not json_too_deep(b"[]" * 100_000)
    assert not json_too_deep(b"]" * 100)


def test_fuzz_skew_is_stored_clamped() -> None:
    assert push._stored_skew(timedelta(days=365 * 100)) == 2**31 - 1
    assert push._stored_skew(-timedelta(days=365 * 100)) == -(2**31 - 1)
    assert push._stored_skew(timedelta(seconds=-90)) == -90


def test_a_redo_photo_taken_outside_the_years_the_server_handles_is_an_invalid_payload() -> None:
    """Found by the fuzz above: the photos inside a redo answer are range-checked like any time."""
    from mobile_contract.actions import RedoResponseV1

    photo = {"purpose": "after", "blob": "a" * 64, "taken_at": "9999-12-31T23:59:59Z"}
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"redo_request_id": str(uuid.uuid4()), "photos": [photo]}, RedoResponseV1)
    photo["taken_at"] = "2026-12-07T09:00:00+08:00"
    assert msgspec.convert({"redo_request_id": str(uuid.uuid4()), "photos": [photo]}, RedoResponseV1).photos
