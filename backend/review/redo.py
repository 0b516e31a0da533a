"""Redo requests: asked by a supervisor, pulled by the assignee's phone, answered by ``redo.response``."""

import uuid
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlmodel import Session, col

from backend.db import buffer
from backend.errors import NotFound
from backend.evidence.models import Document, Measurement, Photo
from backend.ids import new_id
from backend.review.models import RedoRequest, ReviewItem, ReviewItemFlag
from backend.sync import changes
from backend.work_orders import locking, timeline
from backend.work_orders.views import order_ref
from mobile_contract import actions as a
from mobile_contract.views import RedoItemView, RedoRequestView

__all__ = ("answer", "evidence_of", "open_for", "touch", "view")

PHOTOS = Photo.__table__
REQUESTS = RedoRequest.__table__
ITEMS = ReviewItem.__table__
ITEM_FLAGS = ReviewItemFlag.__table__


def touch(session: Session, request: RedoRequest) -> None:
    """The assignee's phone learns of the request (or its end) on its next pull."""
    changes.touch(
        session,
        company_id=request.company_id,
        entity="redo_request",
        entity_id=request.id,
        users=[request.assignee_id],
    )


def evidence_of(session: Session, order_id: uuid.UUID) -> dict[str, Any]:
    """The order's evidence as ids: what a redo request keeps as "before"."""
    photos = session.execute(
        sa.select(Photo.id, Photo.purpose, Photo.blob_sha256)
        .where(Photo.order_id == order_id)
        .order_by(col(Photo.received_at), col(Photo.id))
    ).all()
    docs = session.execute(
        sa.select(Document.id, Document.type)
        .where(Document.order_id == order_id)
        .order_by(col(Document.received_at))
    ).all()
    measurements = session.execute(
        sa.select(Measurement.id)
        .where(Measurement.order_id == order_id)
        .order_by(col(Measurement.received_at))
    ).scalars()
    return {
        "photos": [{"id": str(i), "purpose": p, "blob": b} for i, p, b in photos],
        "documents": [{"id": str(i), "type": t} for i, t in docs],
        "measurement_ids": [str(m) for m in measurements],
    }


_OPEN_FOR = (
    sa.select(
        RedoRequest.id,
        RedoRequest.order_id,
        RedoRequest.items,
        RedoRequest.due_at,
        RedoRequest.status,
        RedoRequest.created_at,
    )
    .where(RedoRequest.assignee_id == sa.bindparam("user_id"), RedoRequest.status == "open")
    .order_by(col(RedoRequest.due_at), col(RedoRequest.id))
)


def open_for(conn: sa.Connection, user_id: uuid.UUID) -> list[RedoRequestView]:
    """The open redo requests of a user: their phone's ``redo_request`` entities."""
    return [view(row) for row in conn.execute(_OPEN_FOR, {"user_id": user_id})]


def view(row: Any) -> RedoRequestView:
    return RedoRequestView(
        id=row.id,
        order_id=row.order_id,
        order_ref=order_ref(row.order_id),
        items=[msgspec.convert(i, RedoItemView) for i in row.items],
        due_at=row.due_at,
        status=row.status,
        requested_at=row.created_at,
    )


def answer(session: Session, *, applying: Any, payload: a.RedoResponseV1) -> None:
    """Apply ``redo.response``: keep the new evidence; an open request is answered and back in the queue."""
    ap = applying
    actor = ap.actor
    unknown = NotFound("No such redo request.", code="unknown_redo_request")
    # The order first, then the request, as a supervisor's decision takes them (the order, its
    # item, then the item's requests): the request locked first, the two deadlocked.
    request = session.get(RedoRequest, payload.redo_request_id)
    if request is None or request.company_id != actor.company_id or request.assignee_id != actor.user_id:
        raise unknown
    try:
        order = ap.order(request.order_id)
    except NotFound:
        raise unknown from None
    session.refresh(request, with_for_update=True)  # as it is now that nobody else can change it
    if request.assignee_id != actor.user_id:
        raise unknown
    for document_id in payload.document_ids:
        document = session.get(Document, document_id)
        if document is None or document.company_id != actor.company_id or document.order_id != order.id:
            raise NotFound("No such document of this order: push it first.", code="unknown_document")
    for measurement_id in payload.measurement_ids:
        measurement = session.get(Measurement, measurement_id)
        if (
            measurement is None
            or measurement.company_id != actor.company_id
            or measurement.order_id != order.id
        ):
            raise NotFound("No such measurement of this order: push it first.", code="unknown_measurement")
    late = request.status != "open"
    extra = ["redo_closed"] if late else []
    photos = []
    for photo in payload.photos:
        record = ap.record()
        record["flags"] = [*record["flags"], *timeline.late_fact_flags(order, actor), *extra]
        photo_id = new_id()
        buffer.add_row(
            session,
            PHOTOS,
            {
                "id": photo_id,
                "order_id": order.id,
                "measurement_id": None,
                "blob_sha256": photo.blob,
                "purpose": photo.purpose.value,
                "taken_at": photo.taken_at,
                **record,
            },
        )
        locking.note_photo(session, order_id=order.id, purpose=photo.purpose.value)
        photos.append({"id": str(photo_id), "purpose": photo.purpose.value, "blob": photo.blob})
    response = {
        "action_id": str(ap.action_id),
        "photos": photos,
        "document_ids": [str(d) for d in payload.document_ids],
        "measurement_ids": [str(m) for m in payload.measurement_ids],
        "note": ap.text(payload.note),
        "answered_at": ap.when.corrected_at.isoformat(),
    }
    timeline.record(
        session,
        order,
        "redo_answered",
        actor=actor,
        when=ap.when,
        data={"redo_request_id": str(request.id), "late": late or None, "photos": len(photos)},
        flags=extra,
    )
    if late:
        return  # kept and flagged; the request's own answer stays the first one
    now = ap.when.received_at
    request.status = "answered"
    request.response = response
    request.answered_at = now
    request.updated_at = now
    session.add(request)
    session.execute(
        sa.update(ITEMS)
        .where(ITEMS.c.id == request.review_item_id, ITEMS.c.status == "redo_requested")
        .values(status="redo_answered", queued_at=now, version=ITEMS.c.version + 1)
    )
    session.execute(
        sa.update(ITEM_FLAGS)
        .where(
            ITEM_FLAGS.c.item_id == request.review_item_id,
            ITEM_FLAGS.c.status == "redo_requested",
        )
        .values(status="redo_answered", queued_at=now)
    )
    touch(session, request)


def due_in_past(due_at: datetime, now: datetime) -> bool:
    return due_at <= now
