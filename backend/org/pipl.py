"""A resident's personal-data request (PIPL): export everything held, or erase it.

*Export* gathers one household's data as one typed document (``PersonalData``).

*Erase* blanks the resident's personal fields in the live tables: the household's name and phone,
and the free text written about the visit (the order's description and result note, timeline
reasons and notes, appointment reasons, revisit notes) and the raw payloads of the actions about
the household in the action log, removes the photo originals (GPS, EXIF)
while their metadata-free copies stay, and tells every phone holding the household or its orders
(``changes.touch``), so offline copies get the blanked upsert.

Signed documents, measurement records and signatures are **kept unchanged**. They are the
company's evidence of the service it gave (receipts, damage slips, indoor-temperature records
in fee and complaint disputes), and PIPL art. 47 lets a handler keep what another law requires
it to keep, storing it and otherwise not processing it. Their bytes are what the signatures
cover: blanking the resident's name in them would break every hash and seal, and a redacted copy
could no longer be shown to be what was signed. So they still verify (``valid``), and they leave
live processing: they are no longer sent to phones (pulls carry no documents; the household's
orders are blanked), and the export lists them, so the resident sees what is kept and why.

Erasure is idempotent (a second call changes nothing and says so) and recorded on the household
(``erased_at``, ``erased_by``, ``erase_reason``) and in the audit log (``household.erased``).
"""

import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import msgspec
import sqlalchemy as sa
from sqlmodel import Session, col, select

from backend import audit
from backend.auth.principal import Principal
from backend.context import AppContext
from backend.db.failures import RETRYABLE_SQLSTATES
from backend.errors import InvalidInput, NotFound
from backend.evidence.models import Blob, Document, Measurement, Photo, Signature
from backend.org.models import Building, Household
from backend.org.schemas import (
    AppointmentRecord,
    DocumentRecord,
    Erased,
    EventRecord,
    HouseholdRecord,
    MeasurementRecord,
    OrderRecord,
    PersonalData,
    PhotoRecord,
    RevisitRecord,
    SignatureRecord,
)
from backend.review.models import RedoRequest, ReviewItem
from backend.sync import changes
from backend.sync.models import SyncAction
from backend.work_orders.models import Appointment, Revisit, WorkOrder, WorkOrderEvent

__all__ = ("ERASED", "audit_erasure", "erase", "export", "get_household")

_Record = TypeVar("_Record", bound=msgspec.Struct)
_Result = TypeVar("_Result")

log = logging.getLogger("heatcrew.pipl")

_TRIES = 3

ERASED = "[erased]"
"""What a blanked free-text field says, so that a reader sees why it is empty."""

ERASED_PAYLOAD = '{"erased":"personal data erased on the resident\'s request"}'
"""What an action's stored payload becomes (``sync_action.payload``); still JSON, so a resend is
answered as before: by its seq from the counter (never applied again), or, under a new seq, as a
duplicate when its type, version and time match its first delivery's."""

# Ids per statement when looking for the household's actions in the action log.
_IDS_PER_STATEMENT = 50

# Free text in a timeline event's data that people write about the visit.
_EVENT_TEXT_KEYS = ("text", "note")


def get_household(session: Session, *, company_id: uuid.UUID, household_id: uuid.UUID) -> Household:
    household = session.get(Household, household_id)
    if household is None or household.company_id != company_id:
        raise NotFound("No such household.")
    return household


def export(
    ctx: AppContext, session: Session, *, company_id: uuid.UUID, household_id: uuid.UUID
) -> PersonalData:
    household = get_household(session, company_id=company_id, household_id=household_id)
    building = session.get(Building, household.building_id)
    orders = list(
        session.exec(
            select(WorkOrder)
            .where(WorkOrder.household_id == household.id)
            .order_by(col(WorkOrder.received_at), col(WorkOrder.id))
        )
    )
    order_ids = [o.id for o in orders]
    events: dict[uuid.UUID, list[EventRecord]] = {o.id: [] for o in orders}
    appointments: list[AppointmentRecord] = []
    if order_ids:
        for e in session.exec(
            select(WorkOrderEvent)
            .where(col(WorkOrderEvent.order_id).in_(order_ids))
            .order_by(col(WorkOrderEvent.received_at), col(WorkOrderEvent.id))
        ):
            events[e.order_id].append(
                EventRecord(
                    id=e.id,
                    type=e.type,
                    from_state=e.from_state,
                    to_state=e.to_state,
                    occurred_at=e.occurred_at,
                    received_at=e.received_at,
                    corrected_at=e.corrected_at,
                    lat=e.lat,
                    lon=e.lon,
                    reason=e.reason,
                    data=e.data,
                    flags=e.flags,
                )
            )
        appointments = [
            AppointmentRecord(
                id=a.id,
                order_id=a.order_id,
                window_start=a.window_start,
                window_end=a.window_end,
                reason=a.reason,
                requested_by=a.requested_by,
                created_at=a.created_at,
                replaced_at=a.replaced_at,
            )
            for a in session.exec(
                select(Appointment)
                .where(col(Appointment.order_id).in_(order_ids))
                .order_by(col(Appointment.created_at), col(Appointment.id))
            )
        ]
    documents = _documents(session, household.id, order_ids)
    signatures = (
        list(
            session.exec(
                select(Signature)
                .where(col(Signature.document_id).in_([d.id for d in documents]))
                .order_by(col(Signature.received_at), col(Signature.id))
            )
        )
        if documents
        else []
    )
    measurements = list(
        session.exec(
            select(Measurement)
            .where(Measurement.household_id == household.id)
            .order_by(col(Measurement.received_at), col(Measurement.id))
        )
    )
    photos = _photos(session, order_ids, [m.id for m in measurements])
    blobs = {
        b.sha256: b
        for b in session.exec(
            select(Blob).where(
                Blob.company_id == company_id, col(Blob.sha256).in_({p.blob_sha256 for p in photos})
            )
        )
    }
    revisits = list(
        session.exec(
            select(Revisit).where(Revisit.household_id == household.id).order_by(col(Revisit.due_at))
        )
    )
    return PersonalData(
        exported_at=ctx.clock.now(),
        household=HouseholdRecord(
            id=household.id,
            account_number=household.account_number,
            address=building.address if building else "",
            unit=household.unit,
            heated_area_m2=household.heated_area_m2,
            resident_name=household.resident_name,
            resident_phone=household.resident_phone,
            is_key_customer=household.is_key_customer,
            lat=household.lat,
            lon=household.lon,
            created_at=household.created_at,
            erased_at=household.erased_at,
            erase_reason=household.erase_reason,
        ),
        orders=[
            OrderRecord(
                id=o.id,
                kind=o.kind,
                source=o.source,
                state=o.state,
                description=o.description,
                received_at=o.received_at,
                completed_at=o.completed_at,
                closed_at=o.closed_at,
                result=o.result,
                result_note=o.result_note,
                satisfaction=o.satisfaction,
                return_reason=o.return_reason,
                cancel_reason=o.cancel_reason,
                timeline=events[o.id],
            )
            for o in orders
        ],
        appointments=appointments,
        measurements=[_record(MeasurementRecord, m) for m in measurements],
        documents=[
            DocumentRecord(
                id=d.id,
                type=d.type,
                order_id=d.order_id,
                content=json.loads(d.content),
                content_sha256=d.content_sha256,
                issued_at=d.received_at,
                supersedes_id=d.supersedes_id,
                superseded_by_id=d.superseded_by_id,
            )
            for d in documents
        ],
        signatures=[_record(SignatureRecord, s, signed_at=s.corrected_at) for s in signatures],
        photos=[
            PhotoRecord(
                id=p.id,
                order_id=p.order_id,
                measurement_id=p.measurement_id,
                purpose=p.purpose,
                blob_sha256=p.blob_sha256,
                copies=dict(blobs[p.blob_sha256].variants) if p.blob_sha256 in blobs else {},
                claims=blobs[p.blob_sha256].claims if p.blob_sha256 in blobs else None,
                taken_at=p.taken_at,
                received_at=p.received_at,
                original_removed_at=p.original_removed_at,
            )
            for p in photos
        ],
        revisits=[
            RevisitRecord(
                id=r.id,
                order_id=r.order_id,
                state=r.state,
                due_at=r.due_at,
                channel=r.channel,
                outcome=r.outcome,
                satisfaction=r.satisfaction,
                note=r.note,
                done_at=r.done_at,
            )
            for r in revisits
        ],
    )


def _record(record: type[_Record], row: object, **named_otherwise: Any) -> _Record:
    """``row`` as its export record, each field copied from the row's attribute of the same name;
    ``named_otherwise`` gives the fields the table calls differently. The values pass as they are,
    as the record's constructor takes them (``msgspec.convert`` would check them again, and
    cannot rename)."""
    fields = {f: getattr(row, f) for f in record.__struct_fields__ if f not in named_otherwise}
    return record(**fields, **named_otherwise)


def _documents(session: Session, household_id: uuid.UUID, order_ids: list[uuid.UUID]) -> list[Document]:
    where = col(Document.household_id) == household_id
    if order_ids:
        where = sa.or_(where, col(Document.order_id).in_(order_ids))
    return list(
        session.exec(select(Document).where(where).order_by(col(Document.received_at), col(Document.id)))
    )


def _photos(session: Session, order_ids: list[uuid.UUID], measurement_ids: list[uuid.UUID]) -> list[Photo]:
    conditions = []
    if order_ids:
        conditions.append(col(Photo.order_id).in_(order_ids))
    if measurement_ids:
        conditions.append(col(Photo.measurement_id).in_(measurement_ids))
    if not conditions:
        return []
    return list(
        session.exec(select(Photo).where(sa.or_(*conditions)).order_by(col(Photo.received_at), col(Photo.id)))
    )


def erase(
    ctx: AppContext,
    *,
    principal: Principal | None,
    company_id: uuid.UUID,
    household_id: uuid.UUID,
    reason: str,
) -> Erased:
    """Blank the household's personal fields in the live tables (see the module's docstring).

    ``principal`` is the admin (None from the command line)."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Give the reason for the erasure (the resident's request).", code="invalid_input")
    now = ctx.clock.now()

    def first_pass() -> tuple[bool, int, list[uuid.UUID], int, datetime]:
        with ctx.db.session() as session:
            household = get_household(session, company_id=company_id, household_id=household_id)
            already = household.erased_at is not None
            if not already:
                household.erased_at = now
                household.erased_by = principal.user_id if principal else None
                household.erase_reason = reason[:500]
            blanked, photo_ids, kept = _erase_in(session, household, newly=not already)
            audit_erasure(
                session,
                principal=principal,
                company_id=company_id,
                household_id=household.id,
                repeated=already,
            )
            return already, blanked, photo_ids, kept, household.erased_at or now

    def second_pass() -> int:
        # A push that read the household before the first pass committed and locked its orders
        # after it (it waited for them) applied its actions with the household as it was. Taking
        # the orders' locks again waits for such a push to commit; what it wrote is blanked now.
        # Any later push reads ``erased_at`` and blanks what was queued before it
        # (``sync.handlers.Applying.text``).
        with ctx.db.session() as session:
            household = get_household(session, company_id=company_id, household_id=household_id)
            return _erase_in(session, household, newly=False)[0]

    already, blanked, photo_ids, kept, erased_at = _retrying(first_pass)
    blanked += _retrying(second_pass)
    # Outside the transactions: the blob store is no database (see remove_photo_originals).
    from backend.maintenance import remove_photo_originals

    originals, _ = remove_photo_originals(ctx, company_id=company_id, photo_ids=photo_ids)
    return Erased(
        household_id=household_id,
        erased_at=erased_at,
        already_erased=already and not blanked and not originals,
        fields_blanked=blanked,
        photo_originals_removed=originals,
        kept_signed_documents=kept,
    )


def _retrying(transaction: Callable[[], _Result]) -> _Result:
    """Run ``transaction`` again when the database ends it to break a deadlock or a serialisation
    conflict: a push may lock one of the household's orders late in its batch (a signature, a
    revisit), after another. The erasure is idempotent, so running it again is safe."""
    for attempt in range(1, _TRIES + 1):
        try:
            return transaction()
        except sa.exc.DBAPIError as exc:
            if attempt == _TRIES or getattr(exc.orig, "sqlstate", None) not in RETRYABLE_SQLSTATES:
                raise
            log.warning("erasure retried after %s", getattr(exc.orig, "sqlstate", None))
    raise AssertionError("unreachable")


def _erase_in(session: Session, household: Household, *, newly: bool) -> tuple[int, list[uuid.UUID], int]:
    """One pass of the erasure in ``session``: blank what is there and tell the phones holding it
    (always when ``newly`` erased). Returns the fields blanked, the household's photos and its
    signed documents."""
    company_id = household.company_id
    # Locked in id order, as a push batch locks its orders: the two take turns, never deadlock.
    orders = list(
        session.exec(
            select(WorkOrder)
            .where(WorkOrder.household_id == household.id)
            .order_by(col(WorkOrder.id))
            .with_for_update()
        )
    )
    blanked = _blank(session, household, orders)
    session.add(household)
    order_ids = [o.id for o in orders]
    measurement_ids = list(
        session.exec(select(Measurement.id).where(Measurement.household_id == household.id))
    )
    photo_ids = [p.id for p in _photos(session, order_ids, measurement_ids)]
    documents = _documents(session, household.id, order_ids)
    named = [household.id, *order_ids, *measurement_ids, *(d.id for d in documents)]
    blanked += _blank_payloads(session, [str(i) for i in named])
    if blanked or newly:
        # Every phone that may hold the household or its orders gets them again, blanked.
        users = {o.assignee_id for o in orders if o.assignee_id is not None}
        users |= set(
            session.exec(
                select(Revisit.assignee_id).where(
                    Revisit.household_id == household.id, col(Revisit.assignee_id).is_not(None)
                )
            )
        )
        audience = sorted(users, key=str) or [None]
        changes.touch(
            session, company_id=company_id, entity="household", entity_id=household.id, users=audience
        )
        for order in orders:
            recipients = [order.assignee_id] if order.assignee_id else [None]
            changes.touch(
                session, company_id=company_id, entity="work_order", entity_id=order.id, users=recipients
            )
    return blanked, photo_ids, len(documents)


def _blank(session: Session, household: Household, orders: list[WorkOrder]) -> int:
    """Blank what is personal; counts the fields that held something. Running it again counts 0."""
    blanked = 0
    if household.resident_name:
        household.resident_name = ""
        blanked += 1
    if household.resident_phone is not None:
        household.resident_phone = None
        blanked += 1
    for order in orders:
        for name in ("description", "result_note", "return_reason", "cancel_reason"):
            value = getattr(order, name)
            if value and value != ERASED:
                setattr(order, name, ERASED)
                blanked += 1
        session.add(order)
    order_ids = [o.id for o in orders]
    if order_ids:
        for event in session.exec(select(WorkOrderEvent).where(col(WorkOrderEvent.order_id).in_(order_ids))):
            changed = False
            if event.reason and event.reason != ERASED:
                event.reason = ERASED
                changed = True
            data = dict(event.data)
            for key in _EVENT_TEXT_KEYS:
                if data.get(key) and data[key] != ERASED:
                    data[key] = ERASED
                    changed = True
            if changed:
                event.data = data
                session.add(event)
                blanked += 1
        for appointment in session.exec(select(Appointment).where(col(Appointment.order_id).in_(order_ids))):
            if appointment.reason and appointment.reason != ERASED:
                appointment.reason = ERASED
                session.add(appointment)
                blanked += 1
        blanked += _blank_review(session, order_ids)
    for revisit in session.exec(select(Revisit).where(Revisit.household_id == household.id)):
        if revisit.note and revisit.note != ERASED:
            revisit.note = ERASED
            session.add(revisit)
            blanked += 1
    return blanked


def _blank_review(session: Session, order_ids: list[uuid.UUID]) -> int:
    """The supervisor's decision reasons, the texts of what they asked to be done again, and the
    notes the phone answered with."""
    blanked = 0
    for item in session.exec(select(ReviewItem).where(col(ReviewItem.order_id).in_(order_ids))):
        if item.decision_reason and item.decision_reason != ERASED:
            item.decision_reason = ERASED
            session.add(item)
            blanked += 1
    for request in session.exec(select(RedoRequest).where(col(RedoRequest.order_id).in_(order_ids))):
        items = [{**i, "text": ERASED} if i.get("text") and i["text"] != ERASED else i for i in request.items]
        response = request.response
        if response and response.get("note") and response["note"] != ERASED:
            response = {**response, "note": ERASED}
        if items != request.items or response != request.response:
            request.items, request.response = items, response
            session.add(request)
            blanked += 1
    return blanked


def _blank_payloads(session: Session, ids: list[str]) -> int:
    """The raw payloads of the actions about the household (they name its orders, measurements or
    documents): notes, appointment reasons, signer names. Their answers, seqs and ids stay."""
    table = SyncAction.__table__
    blanked = 0
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        chunk = ids[start : start + _IDS_PER_STATEMENT]
        result = session.execute(
            sa.update(table)
            .where(sa.or_(*(table.c.payload.contains(i, autoescape=True) for i in chunk)))
            .where(table.c.payload != ERASED_PAYLOAD)
            .values(payload=ERASED_PAYLOAD)
        )
        blanked += result.rowcount or 0
    return blanked


def audit_erasure(
    session: Session,
    *,
    principal: Principal | None,
    company_id: uuid.UUID,
    household_id: uuid.UUID,
    repeated: bool,
) -> None:
    """An erasure is an audited act, recorded in the erasure's transaction. The reason stays on the
    household row (``erase_reason``): free text may name the resident, the log never does."""
    audit.record(
        session,
        company_id=company_id,
        event=audit.Event.household_erased,
        actor_user_id=principal.user_id if principal else None,
        actor_device_id=principal.device_id if principal else None,
        target_type="household",
        target_id=household_id,
        detail={"repeated": repeated},
    )
