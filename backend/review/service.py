"""The supervisor's review: policy, the queue and its counts, an item's evidence, the decisions.

Plain functions taking a session and keyword arguments; the controllers and the console call
them. Every object is looked up in the caller's company first (404 otherwise).
"""

import base64
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlmodel import Session, col

from backend import audit
from backend.auth.models import Role, User
from backend.auth.principal import Principal
from backend.errors import Conflict, Forbidden, InvalidInput, NotFound
from backend.evidence import documents
from backend.evidence.measurements import judge
from backend.evidence.models import Blob, Document, Measurement, Photo
from backend.ids import new_id
from backend.org.models import Company, Team
from backend.review import redo as redo_module
from backend.review.entry import DECIDED, policy_of, sync_flags
from backend.review.models import OPEN, RedoRequest, ReviewItem, ReviewItemFlag
from backend.review.rules import ReviewFlag, ReviewPolicy
from backend.review.schemas import (
    ArrivalProof,
    DocumentEvidence,
    MeasurementEvidence,
    OrderSummary,
    PhotoEvidence,
    RedoItem,
    RedoRead,
    ReviewCounts,
    ReviewItemDetail,
    ReviewItemRead,
    ReviewQueue,
    SignatureEvidence,
    TimelineEntry,
)
from backend.work_orders import locking, timeline
from backend.work_orders.field import haversine_m
from backend.work_orders.models import Arrival, WorkOrder, WorkOrderEvent
from backend.work_orders.views import order_ref
from mobile_contract.reference import WorkOrderKind

__all__ = (
    "COUNT_CAP",
    "OPEN_STATUSES",
    "QueueFilter",
    "approve",
    "counts",
    "get_policy",
    "item_detail",
    "list_items",
    "reject",
    "request_redo",
    "set_policy",
)

OPEN_STATUSES = ("pending", "redo_answered")
"""The queue a supervisor works: new items and answered redo requests."""
ALL_STATUSES = ("pending", "approved", "rejected", "redo_requested", "redo_answered")
SUPERVISING = (Role.supervisor, Role.admin)


# ---------------------------------------------------------------- policy


def get_policy(session: Session, *, actor: Principal) -> ReviewPolicy:
    return policy_of(session, actor.company_id)


def set_policy(session: Session, *, actor: Principal, policy: ReviewPolicy) -> ReviewPolicy:
    company = session.get(Company, actor.company_id)
    assert company is not None
    company.review_policy = msgspec.to_builtins(policy)
    session.add(company)
    session.info.pop("heatcrew.review_policies", None)
    return policy


# ---------------------------------------------------------------- the queue


def _read(item: Any) -> ReviewItemRead:
    return ReviewItemRead(
        id=item.id,
        order_id=item.order_id,
        order_ref=order_ref(item.order_id),
        team_id=item.team_id,
        kind=item.kind,
        status=item.status,
        reasons=list(item.reasons),
        flags=list(item.flags),
        entered_at=item.entered_at,
        queued_at=item.queued_at,
        decided_at=item.decided_at,
        decided_by=item.decided_by,
        decision_reason=item.decision_reason,
        version=item.version,
    )


def _encode_after(item: ReviewItem) -> str:
    text = f"{item.queued_at.isoformat()}|{item.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_after(after: str) -> tuple[datetime, uuid.UUID]:
    try:
        text = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode()
        at, item_id = text.split("|")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment, uuid.UUID(item_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("This `after` is not one the queue handed out.", code="invalid_input") from exc


class QueueFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which items the queue lists and its counts count; a field left ``None`` does not filter."""

    statuses: tuple[str, ...] | None = None
    """``None`` (or empty): the open queue, :data:`OPEN_STATUSES`."""
    team_id: uuid.UUID | None = None
    kind: str | None = None
    flag: str | None = None
    since: datetime | None = None
    """Queued at or after."""
    until: datetime | None = None
    """Queued before."""


def _filtered(query: Any, *, company_id: uuid.UUID, where: QueueFilter) -> Any:
    statuses = where.statuses or OPEN_STATUSES
    query = query.where(ReviewItem.company_id == company_id)
    if sorted(statuses) == sorted(OPEN_STATUSES):
        query = query.where(OPEN)  # as the partial indexes say it: the planner then picks them
    else:
        query = query.where(col(ReviewItem.status).in_(statuses))
    if where.team_id is not None:
        query = query.where(ReviewItem.team_id == where.team_id)
    if where.kind is not None:
        query = query.where(ReviewItem.kind == where.kind)
    if where.flag is not None:
        query = query.where(
            sa.exists().where(
                ReviewItemFlag.company_id == company_id,
                ReviewItemFlag.flag == where.flag,
                ReviewItemFlag.item_id == ReviewItem.id,
            )
        )
    if where.since is not None:
        query = query.where(col(ReviewItem.queued_at) >= where.since)
    if where.until is not None:
        query = query.where(col(ReviewItem.queued_at) < where.until)
    return query


def list_items(
    session: Session,
    *,
    actor: Principal,
    where: QueueFilter = QueueFilter(),
    after: str | None = None,
    limit: int = 50,
) -> ReviewQueue:
    """The queue, oldest in the queue first; keyset pages on ``(queued_at, id)``."""
    query = _filtered(sa.select(ReviewItem), company_id=actor.company_id, where=where)
    if after:
        at, item_id = _decode_after(after)
        query = query.where(
            sa.tuple_(ReviewItem.queued_at, ReviewItem.id) > sa.tuple_(sa.literal(at), sa.literal(item_id))
        )
    rows = list(
        session.execute(
            query.order_by(col(ReviewItem.queued_at), col(ReviewItem.id)).limit(limit + 1)
        ).scalars()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return ReviewQueue(items=[_read(r) for r in rows], next_after=_encode_after(rows[-1]) if more else None)


def _flag_rows(*, company_id: uuid.UUID, where: QueueFilter) -> Any:
    """The items with ``where.flag`` under the other filters, read from the flag rows' copies alone."""
    query = sa.select(sa.literal(1)).where(
        ReviewItemFlag.company_id == company_id,
        ReviewItemFlag.flag == where.flag,
        col(ReviewItemFlag.status).in_(where.statuses or OPEN_STATUSES),
    )
    if where.team_id is not None:
        query = query.where(ReviewItemFlag.team_id == where.team_id)
    if where.kind is not None:
        query = query.where(ReviewItemFlag.kind == where.kind)
    if where.since is not None:
        query = query.where(col(ReviewItemFlag.queued_at) >= where.since)
    if where.until is not None:
        query = query.where(col(ReviewItemFlag.queued_at) < where.until)
    return query


COUNT_CAP = 1000
"""Counts stop here: each is a ``LIMIT`` over an index range, so none reads more than this many items."""


def counts(session: Session, *, actor: Principal, where: QueueFilter = QueueFilter()) -> ReviewCounts:
    """Items per status, kind, team and flag, each dimension counted under the other filters.

    Every count stops at :data:`COUNT_CAP` (``cap`` on the answer: a count equal to it means "that
    many or more"), one ``LIMIT`` subquery per option, so the cost is bounded however many items
    there are; options with no item are left out.
    """
    company_id = actor.company_id

    def capped(*, null_team: bool = False, **changes: Any) -> Any:
        option = msgspec.structs.replace(where, **changes)
        if option.flag is not None:
            # Under a flag the flag rows hold copies of everything filtered on: one index range.
            query = _flag_rows(company_id=company_id, where=option)
            table: Any = ReviewItemFlag
        else:
            query = _filtered(sa.select(sa.literal(1)), company_id=company_id, where=option)
            table = ReviewItem
        if null_team:
            query = query.where(col(table.team_id).is_(None))
        sub = query.limit(COUNT_CAP).subquery()
        return sa.select(sa.func.count()).select_from(sub).scalar_subquery()

    def dimension(options: dict[str, dict[str, Any]]) -> dict[str, int]:
        if not options:
            return {}
        keys = list(options)
        row = session.execute(
            sa.select(*[capped(**options[k]).label(f"c{i}") for i, k in enumerate(keys)])
        ).one()
        return {k: n for k, n in zip(keys, row, strict=True) if n}

    team_ids = session.execute(sa.select(Team.id).where(Team.company_id == company_id)).scalars()
    teams: dict[str, dict[str, Any]] = {str(t): {"team_id": t} for t in team_ids}
    teams["none"] = {"team_id": None, "null_team": True}
    by_status = dimension({s: {"statuses": (s,)} for s in ALL_STATUSES})
    by_kind = dimension({k.value: {"kind": k.value} for k in WorkOrderKind})
    by_team = dimension(teams)
    by_flag = dimension({f.value: {"flag": f.value} for f in ReviewFlag})
    (total,) = session.execute(sa.select(capped())).one()
    return ReviewCounts(
        total=total, by_status=by_status, by_kind=by_kind, by_team=by_team, by_flag=by_flag, cap=COUNT_CAP
    )


# ---------------------------------------------------------------- one item


def _item(session: Session, actor: Principal, item_id: uuid.UUID, *, for_update: bool = False) -> ReviewItem:
    item = session.get(ReviewItem, item_id, with_for_update=for_update)
    if item is None or item.company_id != actor.company_id:
        raise NotFound("No such review item.")
    return item


def item_detail(session: Session, *, actor: Principal, item_id: uuid.UUID) -> ReviewItemDetail:
    """The item with the order's timeline, arrival proof, photos, documents, measurements and redos."""
    item = _item(session, actor, item_id)
    order = session.get(WorkOrder, item.order_id)
    assert order is not None
    place = locking.place(session, order.household_id)
    home = (place.lat, place.lon) if place.lat is not None else (place.building_lat, place.building_lon)
    supervising = actor.role in SUPERVISING
    events = session.execute(
        sa.select(WorkOrderEvent)
        .where(WorkOrderEvent.order_id == order.id)
        .order_by(col(WorkOrderEvent.received_at), col(WorkOrderEvent.corrected_at), col(WorkOrderEvent.id))
    ).scalars()
    arrivals = session.execute(
        sa.select(Arrival).where(Arrival.order_id == order.id).order_by(col(Arrival.received_at))
    ).scalars()
    photos = list(
        session.execute(
            sa.select(Photo).where(Photo.order_id == order.id).order_by(col(Photo.received_at), col(Photo.id))
        ).scalars()
    )
    blobs = {
        b.sha256: b
        for b in session.execute(
            sa.select(Blob).where(
                Blob.company_id == order.company_id,
                col(Blob.sha256).in_(sorted({p.blob_sha256 for p in photos})),
            )
        ).scalars()
    }
    by_purpose: dict[str, list[PhotoEvidence]] = defaultdict(list)
    for photo in photos:
        blob = blobs.get(photo.blob_sha256)
        claims = (blob.claims or {}) if blob is not None else {}
        evidence = PhotoEvidence(
            id=photo.id,
            purpose=photo.purpose,
            blob_sha256=photo.blob_sha256,
            variants=dict(blob.variants) if blob is not None else {},
            received_at=photo.received_at,
            corrected_at=photo.corrected_at,
            flags=list(photo.flags),
        )
        if supervising and claims.get("gps_lat") is not None and claims.get("gps_lon") is not None:
            evidence.exif_lat, evidence.exif_lon = claims["gps_lat"], claims["gps_lon"]
            if home[0] is not None and home[1] is not None:
                evidence.exif_distance_m = round(haversine_m(claims["gps_lat"], claims["gps_lon"], *home), 1)
        by_purpose[photo.purpose].append(evidence)
    docs = session.execute(
        sa.select(Document)
        .where(Document.order_id == order.id, Document.type != "measurement")
        .order_by(col(Document.received_at))
    ).scalars()
    company = session.get(Company, order.company_id)
    assert company is not None
    design = locking.policy(session, order.company_id).design_outdoor_min_c
    measurements = []
    for m in session.execute(
        sa.select(Measurement).where(Measurement.order_id == order.id).order_by(col(Measurement.received_at))
    ).scalars():
        judged = judge(m, timezone=company.timezone, design_outdoor_min_c=design)
        doc = session.get(Document, m.id)
        measurements.append(
            MeasurementEvidence(
                id=m.id,
                measured_at=m.measured_at,
                result=judged.result,
                threshold_c=judged.threshold_c,
                period=judged.period,
                rooms=[
                    {**msgspec.to_builtins(r), "readings_c": room.get("readings_c", [])}
                    for r, room in zip(judged.rooms, m.rooms, strict=False)
                ],
                problems=judged.problems,
                outdoor_c=m.outdoor_c,
                document_status=documents.verify(session, doc).status if doc is not None else None,
            )
        )
    redos = session.execute(
        sa.select(RedoRequest)
        .where(RedoRequest.review_item_id == item.id)
        .order_by(col(RedoRequest.created_at))
    ).scalars()
    return ReviewItemDetail(
        item=_read(item),
        order=OrderSummary(
            id=order.id,
            ref=order_ref(order.id),
            kind=order.kind,
            state=order.state,
            household_id=order.household_id,
            team_id=order.team_id,
            assignee_id=order.assignee_id,
            completed_at=order.completed_at,
            result=order.result,
            result_note=order.result_note,
            satisfaction=order.satisfaction,
        ),
        timeline=[
            TimelineEntry(
                id=e.id,
                type=e.type,
                from_state=e.from_state,
                to_state=e.to_state,
                actor_id=e.actor_id,
                device_id=e.device_id,
                occurred_at=e.occurred_at,
                corrected_at=e.corrected_at,
                received_at=e.received_at,
                reason=e.reason,
                flags=list(e.flags),
                data=dict(e.data),
            )
            for e in events
        ],
        arrivals=[
            ArrivalProof(
                id=a.id,
                user_id=a.user_id,
                outcome=a.outcome,
                occurred_at=a.occurred_at,
                corrected_at=a.corrected_at,
                received_at=a.received_at,
                lat=a.lat,
                lon=a.lon,
                accuracy_m=a.accuracy_m,
                distance_m=a.distance_m,
                validation="not_validated"
                if a.location_verified is None
                else ("verified" if a.location_verified else "not_verified"),
                attempts=list(a.attempts),
                badge_shown=a.badge_shown,
            )
            for a in arrivals
        ],
        photos=dict(by_purpose),
        documents=[_document_evidence(session, d) for d in docs],
        measurements=measurements,
        redo=[
            RedoRead(
                id=r.id,
                status=r.status,
                items=list(r.items),
                due_at=r.due_at,
                requested_by=r.requested_by,
                assignee_id=r.assignee_id,
                created_at=r.created_at,
                answered_at=r.answered_at,
                before=dict(r.before),
                after=dict(r.response) if r.response is not None else None,
            )
            for r in redos
        ],
    )


def _document_evidence(session: Session, document: Document) -> DocumentEvidence:
    check = documents.verify(session, document)
    return DocumentEvidence(
        id=document.id,
        type=document.type,
        status=check.status,
        intact=check.intact,
        missing=list(check.missing),
        signatures=[
            SignatureEvidence(
                id=s.id,
                signer_role=s.signer_role,
                signer_name=s.signer_name,
                signed_at=s.signed_at,
                refused_reason=s.refused_reason,
                intact=s.intact,
            )
            for s in check.signatures
        ],
        pdf_url=f"/api/v1/documents/{document.id}/pdf",
    )


# ---------------------------------------------------------------- decisions


def _may_decide(session: Session, actor: Principal, item: ReviewItem) -> None:
    if actor.role != Role.supervisor or not policy_of(session, actor.company_id).own_team_only:
        return
    team = session.execute(sa.select(User.team_id).where(User.id == actor.user_id)).scalar_one_or_none()
    if team is None or team != item.team_id:
        raise Forbidden("Only the order's own team's supervisor decides on it.", code="not_your_team")


def _deciding(session: Session, actor: Principal, item_id: uuid.UUID) -> tuple[ReviewItem, WorkOrder]:
    """The item and its order, both locked, in the order a push takes them: the order first (a
    batch locks its orders when it starts), then the item (a batch updates it at its commit).
    Taken the other way round, a decision and a push on the same order could deadlock."""
    item = _item(session, actor, item_id)
    order = locking.get_order_for_update(session, order_id=item.order_id, company_id=actor.company_id)
    session.refresh(item, with_for_update=True)  # as it is now that nobody else can change it
    _may_decide(session, actor, item)
    if item.status in DECIDED:
        raise Conflict(
            f"This item was {item.status} already.", code="review_decided", detail={"status": item.status}
        )
    return item, order


def _decided(
    session: Session,
    item: ReviewItem,
    order: WorkOrder,
    *,
    actor: Principal,
    now: datetime,
    status: str,
    reason: str | None,
) -> ReviewItemRead:
    if item.status == "redo_requested":
        # Decided without waiting for the answer: the phone drops the request.
        for request in session.execute(
            sa.select(RedoRequest).where(RedoRequest.review_item_id == item.id, RedoRequest.status == "open")
        ).scalars():
            request.status = "cancelled"
            request.updated_at = now
            session.add(request)
            redo_module.touch(session, request)
    item.status = status
    sync_flags(session, item.id, status=status)
    item.decided_at = now
    item.decided_by = actor.user_id
    item.decision_reason = reason
    item.version += 1
    session.add(item)
    timeline.record(
        session,
        order,
        f"review_{status}",
        actor=actor,
        when=timeline.online(now),
        reason=reason,
        data={"review_item_id": str(item.id)},
    )
    _audit_decision(session, actor, item, status)
    return _read(item)


def _audit_decision(session: Session, actor: Principal, item: ReviewItem, decision: str) -> None:
    audit.record(
        session,
        company_id=actor.company_id,
        event=audit.Event.review_decided,
        actor_user_id=actor.user_id,
        actor_device_id=actor.device_id,
        target_type="review_item",
        target_id=item.id,
        detail={"decision": decision, "order_id": str(item.order_id)},
    )


def approve(
    session: Session, *, actor: Principal, item_id: uuid.UUID, now: datetime, note: str | None = None
) -> ReviewItemRead:
    item, order = _deciding(session, actor, item_id)
    return _decided(session, item, order, actor=actor, now=now, status="approved", reason=note)


def reject(
    session: Session, *, actor: Principal, item_id: uuid.UUID, now: datetime, reason: str
) -> ReviewItemRead:
    item, order = _deciding(session, actor, item_id)
    return _decided(session, item, order, actor=actor, now=now, status="rejected", reason=reason)


def request_redo(
    session: Session,
    *,
    actor: Principal,
    item_id: uuid.UUID,
    now: datetime,
    items: list[RedoItem],
    due_at: datetime,
    reason: str | None = None,
) -> RedoRead:
    """Ask the order's assignee to redo part of it; their phone pulls it as a ``redo_request``."""
    item, order = _deciding(session, actor, item_id)
    if item.status == "redo_requested":
        raise Conflict("A redo request of this item is still open.", code="redo_open")
    if order.state == "cancelled":
        raise Conflict("The order was cancelled: nothing about it can be redone.", code="order_cancelled")
    if order.assignee_id is None:
        raise Conflict("The order has nobody to redo the work.", code="no_assignee")
    if due_at <= now:
        raise InvalidInput("A redo request is due in the future.", code="invalid_due")
    request = RedoRequest(
        id=new_id(),
        company_id=actor.company_id,
        order_id=order.id,
        review_item_id=item.id,
        requested_by=actor.user_id,
        assignee_id=order.assignee_id,
        items=[msgspec.to_builtins(i) for i in items],
        due_at=due_at,
        status="open",
        before=redo_module.evidence_of(session, order.id),
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    item.status = "redo_requested"
    sync_flags(session, item.id, status="redo_requested")
    item.decided_at = now
    item.decided_by = actor.user_id
    item.decision_reason = reason
    item.version += 1
    session.add(item)
    timeline.record(
        session,
        order,
        "redo_requested",
        actor=actor,
        when=timeline.online(now),
        reason=reason,
        data={
            "review_item_id": str(item.id),
            "redo_request_id": str(request.id),
            "due_at": due_at.isoformat(),
        },
    )
    redo_module.touch(session, request)
    _audit_decision(session, actor, item, "redo_requested")
    session.flush()
    return RedoRead(
        id=request.id,
        status=request.status,
        items=list(request.items),
        due_at=request.due_at,
        requested_by=request.requested_by,
        assignee_id=request.assignee_id,
        created_at=request.created_at,
        answered_at=None,
        before=dict(request.before),
        after=None,
    )
