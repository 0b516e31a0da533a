"""One handler per action type and version, each declaring itself a fact or an intent.

A handler refuses by raising a :class:`~backend.errors.HeatCrewError`. It need not take care to
check before it writes: the push path undoes whatever a refused action changed (``sync.push``),
so a refusal leaves only its answer behind.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import msgspec
from sqlmodel import Session

from backend.auth.principal import Principal
from backend.db import buffer
from backend.errors import Forbidden, InvalidInput, NotFound
from backend.evidence import agreement, documents, instruments
from backend.evidence.measurements import judge
from backend.evidence.models import Document, Measurement, MeterReading, Photo
from backend.ids import new_id
from backend.org.models import Company, Household
from backend.org.pipl import ERASED
from backend.review import entry as review_entry
from backend.review import redo
from backend.work_orders import locking, service
from backend.work_orders.models import Revisit, WorkOrder
from backend.work_orders.service import FieldTime
from backend.work_orders.sla import load_policy
from backend.work_orders.views import order_ref
from mobile_contract import actions as a
from mobile_contract.documents import ReceiptV1

__all__ = ("CATALOGUE", "Applying", "Handler")

Kind = Literal["fact", "intent"]
_Text = TypeVar("_Text", str, None)
PHOTOS = Photo.__table__


@dataclass(slots=True)
class Applying:
    """What a handler gets besides its payload."""

    session: Session
    actor: Principal
    when: FieldTime
    action_id: uuid.UUID
    raw: Any = None
    """The payload exactly as the phone sent it (a measurement record is signed as sent)."""
    receipt_tolerance: timedelta = timedelta(minutes=10)
    """How far a receipt's times may be from the order's records (``HEATCREW_RECEIPT_TIME_TOLERANCE``)."""
    before_erasure: bool = False
    """The action names an order whose resident's data was erased after the action took place: it
    was queued offline across the erasure. Its free text is blanked as the erasure would have
    blanked it, and so is its payload in the action log (``sync.push``)."""

    def order(self, order_id: uuid.UUID) -> WorkOrder:
        """The order, if this user holds or once held it; otherwise it does not exist for them."""
        order = service.get_order_for_update(
            self.session, order_id=order_id, company_id=self.actor.company_id
        )
        try:
            service.require_field_involvement(self.session, order, self.actor)
        except Forbidden:
            raise NotFound("No such work order.") from None
        self.took_place_before(locking.place(self.session, order.household_id).erased_at)
        return order

    def took_place_before(self, erased_at: datetime | None) -> None:
        """Note a household the action is about (by its ``erased_at``): see ``before_erasure``."""
        if erased_at is not None and self.when.corrected_at <= erased_at:
            self.before_erasure = True

    def text(self, value: _Text) -> _Text:
        """Free text the phone wrote about the visit (notes, reasons), as it is to be kept: blanked
        for an action from before the resident's erasure (call :meth:`order` first). An action
        taken after it is a new visit's record and is kept as written."""
        return ERASED if value and self.before_erasure else value  # type: ignore[return-value]

    def record(self) -> dict[str, Any]:
        """The common columns of every evidence row."""
        return {
            "company_id": self.actor.company_id,
            "user_id": self.actor.user_id,
            "device_id": self.actor.device_id,
            "action_id": self.action_id,
            "occurred_at": self.when.occurred_at,
            "received_at": self.when.received_at,
            "corrected_at": self.when.corrected_at,
            "flags": ["clock_skew"] if self.when.skew_flagged else [],
        }


@dataclass(frozen=True, slots=True)
class Handler:
    type: str
    version: int
    kind: Kind
    payload: type[a.Payload]
    apply: Callable[[Applying, Any], None]

    def decode(self, payload: Any) -> Any:
        """The payload struct for this version; raises ``msgspec.ValidationError`` when it does not fit."""
        if not isinstance(payload, dict):
            raise msgspec.ValidationError("payload must be a JSON object")
        return msgspec.convert(payload, self.payload)


def blobs_of(payload: Any) -> list[str]:
    """The uploads an action refers to: it waits until they are all there."""
    found = [getattr(payload, "blob", None), *(p.blob for p in getattr(payload, "photos", ()))]
    return list(dict.fromkeys(b for b in found if b))


def order_id_of(payload: Any) -> uuid.UUID | None:
    return getattr(payload, "work_order_id", None)


# ------------------------------------------------------------------ work orders


def _accept(ap: Applying, p: a.AcceptV1) -> None:
    service.accept(ap.session, actor=ap.actor, order=ap.order(p.work_order_id), when=ap.when)


def _contact(ap: Applying, p: a.ContactV1) -> None:
    order = ap.order(p.work_order_id)
    service.record_contact(
        ap.session, actor=ap.actor, order=order, when=ap.when, outcome=p.outcome, note=ap.text(p.note)
    )


def _appointment(ap: Applying, p: a.AppointmentV1) -> None:
    order = ap.order(p.work_order_id)
    service.set_appointment(
        ap.session,
        actor=ap.actor,
        order=order,
        when=ap.when,
        window_start=p.window_start,
        window_end=p.window_end,
        reason=ap.text(p.reason),
        requested_by=p.requested_by,
    )


def _depart(ap: Applying, p: a.DepartV1) -> None:
    service.depart(ap.session, actor=ap.actor, order=ap.order(p.work_order_id), when=ap.when)


def _attempts(attempts: list[a.DoorAttempt]) -> list[dict[str, Any]]:
    return [{"method": x.method, "at": x.at.isoformat()} for x in attempts]


def _arrive(ap: Applying, p: a.ArriveV1) -> None:
    service.record_arrival(
        ap.session,
        actor=ap.actor,
        order=ap.order(p.work_order_id),
        when=ap.when,
        lat=p.lat,
        lon=p.lon,
        accuracy_m=p.accuracy_m,
        attempts=_attempts(p.attempts),
        outcome=p.outcome,
        badge_shown=p.badge_shown,
    )


def _no_access(ap: Applying, p: a.NoAccessV1) -> None:
    order = ap.order(p.work_order_id)
    service.record_no_access(
        ap.session,
        actor=ap.actor,
        order=order,
        when=ap.when,
        attempts=_attempts(p.attempts),
        note=ap.text(p.note),
    )


def _start(ap: Applying, p: a.StartV1) -> None:
    service.start_work(ap.session, actor=ap.actor, order=ap.order(p.work_order_id), when=ap.when)


def _note(ap: Applying, p: a.NoteV1) -> None:
    order = ap.order(p.work_order_id)
    service.note(ap.session, actor=ap.actor, order=order, when=ap.when, text=ap.text(p.text))


def _complete(ap: Applying, p: a.CompleteV1) -> None:
    # v1 has no note: it is upgraded to v2 with an empty one.
    order = ap.order(p.work_order_id)
    service.complete(
        ap.session,
        actor=ap.actor,
        order=order,
        when=ap.when,
        result=p.result,
        satisfaction=p.satisfaction,
        note=ap.text(getattr(p, "note", None)),
    )


def _return_request(ap: Applying, p: a.ReturnRequestV1) -> None:
    order = ap.order(p.work_order_id)
    service.request_return(
        ap.session, actor=ap.actor, order=order, when=ap.when, reason=ap.text(p.reason) or ""
    )


def _revisit_outcome(ap: Applying, p: a.RevisitOutcomeV1) -> None:
    revisit = ap.session.get(Revisit, p.revisit_id, with_for_update=True)
    # One answer for a revisit that does not exist and one that is not the caller's.
    unknown = NotFound("No such revisit.")
    if revisit is None or revisit.company_id != ap.actor.company_id:
        raise unknown
    try:
        order = ap.order(revisit.order_id)
    except NotFound:
        raise unknown from None
    if ap.actor.user_id not in (revisit.assignee_id, order.assignee_id):
        raise unknown
    service.record_revisit_outcome(
        ap.session,
        actor=ap.actor,
        revisit=revisit,
        when=ap.when,
        channel=p.channel,
        outcome=p.outcome,
        satisfaction=p.satisfaction,
        note=ap.text(p.note),
    )


# ------------------------------------------------------------------ evidence (facts)


def _involved_order(ap: Applying, order_id: uuid.UUID) -> WorkOrder:
    order = ap.order(order_id)
    service.require_field_involvement(ap.session, order, ap.actor)
    return order


def _photo(ap: Applying, p: a.PhotoV1) -> None:
    if p.work_order_id is not None:
        order = _involved_order(ap, p.work_order_id)
        flags = service.late_fact_flags(order, ap.actor)
    else:
        measurement = ap.session.get(Measurement, p.measurement_id)
        if measurement is None or measurement.company_id != ap.actor.company_id:
            raise NotFound("No such measurement: record it before its photos.", code="unknown_measurement")
        if measurement.user_id != ap.actor.user_id and not (
            measurement.order_id is not None
            and service.get_order_for_update(
                ap.session, order_id=measurement.order_id, company_id=ap.actor.company_id
            ).assignee_id
            == ap.actor.user_id
        ):
            # Only its inspector, or whoever holds its order now, adds photos to a measurement.
            raise NotFound("No such measurement: record it before its photos.", code="unknown_measurement")
        ap.took_place_before(_erased_at(ap, measurement.household_id))
        flags = []
    record = ap.record()
    record["flags"] = [*record["flags"], *flags]
    # A plain row written in bulk with the batch (db.buffer): no ORM object per photo.
    buffer.add_row(
        ap.session,
        PHOTOS,
        {
            "id": new_id(),
            "order_id": p.work_order_id,
            "measurement_id": p.measurement_id,
            "blob_sha256": p.blob,
            "purpose": p.purpose.value,
            "taken_at": p.taken_at,
            **record,
        },
    )
    if p.work_order_id is not None:
        service.note_photo(ap.session, order_id=p.work_order_id, purpose=p.purpose.value)
        review_entry.after_fact(ap.session, order=order, at=ap.when.received_at)


def _measurement(ap: Applying, p: a.MeasurementV1) -> None:
    household = ap.session.get(Household, p.household_id)
    if household is None or household.company_id != ap.actor.company_id:
        raise NotFound("No such household.", code="unknown_household")
    ap.took_place_before(household.erased_at)
    if p.work_order_id is not None:
        order = _involved_order(ap, p.work_order_id)
        if order.household_id != p.household_id:
            raise InvalidInput("The order is for another household.", code="household_mismatch")
    elif not service.has_order_at(ap.session, actor=ap.actor, household_id=p.household_id):
        # As if it did not exist: an id must not confirm a household to someone with no order there.
        raise NotFound("No such household.", code="unknown_household")
    rooms = [msgspec.to_builtins(room) for room in p.rooms]
    company = ap.session.get(Company, ap.actor.company_id)
    assert company is not None
    zone = ZoneInfo(company.timezone)
    measured_at = p.measured_at or ap.when.corrected_at
    existing = ap.session.get(Measurement, p.measurement_id)
    if existing is None:
        # Checked only for a new record: a resend of a recorded one is answered the same way.
        instruments.require_usable(
            ap.session,
            company_id=ap.actor.company_id,
            instrument_id=p.instrument_id,
            on=measured_at,
            zone=zone,
        )
    # The signed document first: a different record under an existing id is refused right here.
    documents.issue(
        ap.session,
        actor=ap.actor,
        record=ap.record(),
        doc_type="measurement",
        doc_id=p.measurement_id,
        content=ap.raw if isinstance(ap.raw, dict) else msgspec.to_builtins(p),
        order_id=p.work_order_id,
        household_id=p.household_id,
        supersedes=p.supersedes,
        reason=p.supersede_reason,
    )
    if existing is not None:
        return  # the same record from a second device: one record, not two
    record = Measurement(
        id=p.measurement_id,
        household_id=p.household_id,
        order_id=p.work_order_id,
        instrument_id=p.instrument_id,
        rooms=rooms,
        outdoor_c=p.outdoor_c,
        closed_minutes=p.closed_minutes,
        measured_at=measured_at,
        note=p.note,
        **ap.record(),
    )
    record.result = judge(
        record, timezone=company.timezone, design_outdoor_min_c=load_policy(company).design_outdoor_min_c
    ).result
    ap.session.add(record)
    if p.work_order_id is not None:
        review_entry.after_fact(ap.session, order=order, at=ap.when.received_at)


def _document_issue(ap: Applying, p: a.DocumentIssueV1) -> None:
    content = documents.check_content(p.document.type, p.content)
    order = _involved_order(ap, content.work_order_id)
    if isinstance(content, ReceiptV1):
        # The paper names the order: a receipt for another one is the wrong form altogether.
        if content.order_ref != order_ref(order.id):
            raise InvalidInput(
                "The receipt names another order than the one it is issued for.",
                code="invalid_document",
                detail={"order_ref": order_ref(order.id)},
            )
        # What the resident signs must agree with what the server recorded: who, and when.
        agreement.check_receipt(
            ap.session, receipt=content, order=order, when=ap.when, tolerance=ap.receipt_tolerance
        )
    documents.issue(
        ap.session,
        actor=ap.actor,
        record=ap.record(),
        doc_type=p.document.type,
        doc_id=p.document.id,
        content=p.content,
        order_id=order.id,
        household_id=order.household_id,
        supersedes=p.supersedes,
        reason=p.supersede_reason,
    )


def _signature(ap: Applying, p: a.SignatureV1) -> None:
    document = ap.session.get(Document, p.document.id)
    if document is None or document.company_id != ap.actor.company_id or document.type != p.document.type:
        raise NotFound("No such document: issue it before it is signed.", code="unknown_document")
    if document.order_id is not None:
        _involved_order(ap, document.order_id)
    elif document.user_id != ap.actor.user_id and not (
        document.household_id is not None
        and service.has_order_at(ap.session, actor=ap.actor, household_id=document.household_id)
    ):
        raise NotFound("No such document: issue it before it is signed.", code="unknown_document")
    ap.took_place_before(_erased_at(ap, document.household_id))
    documents.sign(ap.session, actor=ap.actor, record=ap.record(), document=document, payload=p)
    if document.order_id is not None:
        order = ap.order(document.order_id)
        review_entry.after_fact(ap.session, order=order, at=ap.when.received_at)


def _erased_at(ap: Applying, household_id: uuid.UUID | None) -> datetime | None:
    household = ap.session.get(Household, household_id) if household_id is not None else None
    return household.erased_at if household is not None else None


def _meter_reading(ap: Applying, p: a.MeterReadingV1) -> None:
    order = _involved_order(ap, p.work_order_id)
    record = ap.record()
    record["flags"] = [*record["flags"], *service.late_fact_flags(order, ap.actor)]
    ap.session.add(
        MeterReading(
            id=new_id(),
            order_id=p.work_order_id,
            meter_id=p.meter_id,
            value=p.value,
            phase=p.phase,
            blob_sha256=p.blob,
            **record,
        )
    )
    review_entry.after_fact(ap.session, order=order, at=ap.when.received_at)


def _redo_response(ap: Applying, p: a.RedoResponseV1) -> None:
    redo.answer(ap.session, applying=ap, payload=p)


_APPLY: dict[tuple[str, int], tuple[Kind, Callable[[Applying, Any], None]]] = {
    ("work_order.accept", 1): ("intent", _accept),
    ("work_order.contact", 1): ("fact", _contact),
    ("work_order.appointment", 1): ("intent", _appointment),
    ("work_order.depart", 1): ("fact", _depart),
    ("work_order.arrive", 1): ("fact", _arrive),
    ("work_order.no_access", 1): ("fact", _no_access),
    ("work_order.start", 1): ("intent", _start),
    ("work_order.note", 1): ("fact", _note),
    ("evidence.photo", 1): ("fact", _photo),
    ("measurement.record", 1): ("fact", _measurement),
    ("document.issue", 1): ("fact", _document_issue),
    ("evidence.signature", 1): ("fact", _signature),
    ("meter.reading", 1): ("fact", _meter_reading),
    ("work_order.complete", 1): ("intent", _complete),
    ("work_order.complete", 2): ("intent", _complete),
    ("work_order.return_request", 1): ("intent", _return_request),
    ("revisit.outcome", 1): ("fact", _revisit_outcome),
    ("redo.response", 1): ("fact", _redo_response),
}

CATALOGUE: dict[tuple[str, int], Handler] = {
    key: Handler(
        type=key[0],
        version=key[1],
        kind=kind,
        payload=a.ACTION_TYPES[key],
        apply=apply,
    )
    for key, (kind, apply) in _APPLY.items()
}
assert set(CATALOGUE) == set(a.ACTION_TYPES), "every contract action has exactly one handler"
# An old phone's facts are always taken (upgraded here if need be): only an intent version is retired.
assert all(CATALOGUE[key].kind == "intent" for key in a.DEPRECATED), "only intent versions are retired"


def known_versions(action_type: str) -> list[int]:
    return sorted(v for t, v in CATALOGUE if t == action_type)
