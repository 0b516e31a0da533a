"""HTTP layer of the audit log: read (supervisors, admins) and verify (admins). Nothing edits it."""

import uuid
from datetime import UTC, datetime
from typing import Annotated

import msgspec
import sqlalchemy as sa
from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter

from backend.audit.models import AuditEvent
from backend.audit.schemas import AuditBreak, AuditEventRead, AuditPage, AuditVerification
from backend.audit.verify import verify_chain
from backend.auth.guards import require_roles
from backend.auth.models import Role
from backend.contract.answers import answers
from backend.deps import Caller, Ctx
from backend.errors import InvalidInput
from mobile_contract.errors import ErrorCode

__all__ = ("AuditController",)

MAX_SEQ = 2**53 - 1
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
Limit = Annotated[int, QueryParameter(ge=1, le=500)]
Cursor = Annotated[int | None, QueryParameter(ge=1, le=MAX_SEQ)]
Short = Annotated[str | None, QueryParameter(min_length=1, max_length=64)]


class AuditController(Controller):
    path = "/api/v1/audit"
    tags = ["audit"]

    @get(
        "/events",
        guards=[require_roles(Role.admin, Role.supervisor)],
        sync_to_thread=True,
        opt={"answers": answers(ErrorCode.invalid_input)},
    )
    def events(
        self,
        ctx: Ctx,
        principal: Caller,
        event: Short = None,
        actor: FromQuery[uuid.UUID | None] = None,
        target_type: Short = None,
        target_id: Short = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        limit: Limit = 100,
        cursor: Cursor = None,
    ) -> AuditPage:
        """The company's security events, newest first: logins and failures, revocations, denials,
        views of original photos, exports, policy changes, corrections, review decisions.
        Supervisors and admins see the whole company's log. `since` (inclusive) and `until`
        (exclusive) must carry a zone. Page with `cursor` (the `next_cursor` of the page before)."""
        table = AuditEvent.__table__
        where = [table.c.company_id == principal.company_id]
        if event is not None:
            where.append(table.c.event == event)
        if actor is not None:
            where.append(table.c.actor_user_id == actor)
        if target_type is not None:
            where.append(table.c.target_type == target_type)
        if target_id is not None:
            where.append(table.c.target_id == target_id)
        if since is not None:
            where.append(table.c.at >= _aware(since, "since"))
        if until is not None:
            where.append(table.c.at < _aware(until, "until"))
        if cursor is not None:
            where.append(table.c.seq < cursor)
        with ctx.db.session(readonly=True) as session:
            rows = session.execute(
                sa.select(table).where(*where).order_by(table.c.seq.desc()).limit(limit + 1)
            ).all()
        page = [msgspec.convert(row._asdict(), AuditEventRead) for row in rows[:limit]]
        return AuditPage(events=page, next_cursor=page[-1].seq if len(rows) > limit else None)

    @get("/verify", guards=[require_roles(Role.admin)], sync_to_thread=True)
    def verify(self, ctx: Ctx, principal: Caller) -> AuditVerification:
        """Walk the company's chain from its anchor: `ok`, or the first broken link (a row edited,
        deleted or moved). Also `heatcrew audit verify`."""
        with ctx.db.session(readonly=True) as session:
            report = verify_chain(session, company_id=principal.company_id)
        broken = report.broken
        return AuditVerification(
            company_id=report.company_id,
            ok=report.ok,
            events=report.events,
            anchor_seq=report.anchor_seq,
            head_seq=report.head_seq,
            head_hash=report.head_hash,
            broken=AuditBreak(seq=broken.seq, kind=broken.kind, message=broken.message) if broken else None,
        )


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInput(f"{name} must carry a zone (e.g. 2026-12-07T08:30:00+08:00).")
    # Compared before converting: near the calendar's ends the conversion itself overflows.
    if not EARLIEST <= moment < LATEST:
        raise InvalidInput(f"{name} must lie between 2000 and 2100.")
    return moment.astimezone(UTC)
