"""HTTP layer of work orders, households, revisits and the SLA board: thin, role-guarded."""

import uuid
from datetime import timedelta
from typing import Annotated

import msgspec
from litestar import Controller, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlmodel import Session, col, select

from backend import audit
from backend.auth.guards import require_roles
from backend.auth.models import Role
from backend.contract.answers import answers
from backend.deps import Caller, Ctx
from backend.errors import InvalidInput, NotFound
from backend.org.models import Company, Household, Station, Team
from backend.sync import changes
from backend.work_orders import service, views
from backend.work_orders.models import Revisit
from backend.work_orders.schemas import (
    AssignOrder,
    BoardEntry,
    CancelOrder,
    HouseholdRead,
    ReturnDecision,
    RevisitOutcome,
    RevisitRead,
    WorkOrderCreate,
    WorkOrderDetail,
    WorkOrderRead,
)
from backend.work_orders.sla import load_policy
from backend.work_orders.states import State
from mobile_contract.errors import ErrorCode
from mobile_contract.reference import SlaPolicy, WorkOrderKind

__all__ = (
    "HouseholdController",
    "ReferenceController",
    "RevisitController",
    "SlaController",
    "WorkOrderController",
)

DISPATCH = require_roles(Role.dispatcher, Role.admin)
OFFICE = require_roles(Role.dispatcher, Role.supervisor, Role.admin)
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
# Bounded to what the databases' OFFSET holds (a 64-bit value was a 500); nobody pages that far.
MAX_OFFSET = 1_000_000
Offset = Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET)]

_E = ErrorCode
CREATE_ANSWERS = {
    "answers": answers(
        _E.received_in_future,
        _E.received_too_old,
        _E.unknown_household,
        _E.unknown_team,
        _E.unknown_user,
        _E.not_assignable,
    )
}
MOVE_ANSWERS = {"answers": answers(_E.illegal_transition, _E.photos_missing)}
ASSIGN_ANSWERS = {"answers": answers(_E.illegal_transition, _E.not_assignable, _E.unknown_user)}
REVISIT_ANSWERS = {"answers": answers(_E.illegal_transition, _E.not_assignable, _E.unknown_user)}


class WorkOrderController(Controller):
    path = "/api/v1/work-orders"
    tags = ["work orders"]

    @post("/", guards=[DISPATCH], status_code=HTTP_201_CREATED, sync_to_thread=True, opt=CREATE_ANSWERS)
    def create(self, ctx: Ctx, principal: Caller, data: JSONBody[WorkOrderCreate]) -> WorkOrderDetail:
        """A dispatcher creates an order from a call; its SLA clocks start at `received_at`."""
        now = ctx.clock.now()
        with ctx.db.session() as session:
            order = service.create_order(
                session,
                actor=principal,
                now=now,
                kind=data.kind.value,
                household_id=data.household_id,
                source=data.source.value,
                description=data.description,
                received_at=data.received_at,
                forwarded=data.forwarded,
                urgent=data.urgent,
                team_id=_team_in_company(session, data.team_id, principal.company_id),
                assignee_id=data.assignee_id,
            )
            session.flush()
            return views.order_detail(session, principal=principal, order=order, now=now)

    @get("/", sync_to_thread=True)
    def list_orders(
        self,
        ctx: Ctx,
        principal: Caller,
        states: Annotated[list[State] | None, QueryParameter(name="state")] = None,
        team_id: FromQuery[uuid.UUID | None] = None,
        kind: FromQuery[WorkOrderKind | None] = None,
        assignee_id: FromQuery[uuid.UUID | None] = None,
        overdue: FromQuery[bool | None] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> list[WorkOrderRead]:
        """Orders, newest call first. A technician or inspector sees only their own."""
        with ctx.db.session(readonly=True) as session:
            return views.list_orders(
                session,
                principal=principal,
                now=ctx.clock.now(),
                states=states,
                team_id=team_id,
                kind=kind.value if kind else None,
                assignee_id=assignee_id,
                overdue=overdue,
                limit=limit,
                offset=offset,
            )

    @get("/{order_id:uuid}", sync_to_thread=True)
    def detail(self, ctx: Ctx, principal: Caller, order_id: FromPath[uuid.UUID]) -> WorkOrderDetail:
        """The order with its timeline (events, appointments, check-ins, revisit) and SLA clocks."""
        with ctx.db.session(readonly=True) as session:
            order = views.get_visible_order(session, principal=principal, order_id=order_id)
            return views.order_detail(session, principal=principal, order=order, now=ctx.clock.now())

    @post(
        "/{order_id:uuid}/assign",
        guards=[DISPATCH],
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        opt=ASSIGN_ANSWERS,
    )
    def assign(
        self, ctx: Ctx, principal: Caller, order_id: FromPath[uuid.UUID], data: JSONBody[AssignOrder]
    ) -> WorkOrderRead:
        """Assign or reassign; the previous assignee's phone loses the order on its next pull."""
        return self._change(
            ctx,
            principal,
            order_id,
            lambda session, order, now: service.assign(
                session, actor=principal, order=order, assignee_id=data.user_id, now=now, reason=data.reason
            ),
        )

    @post(
        "/{order_id:uuid}/cancel",
        guards=[DISPATCH],
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        opt=MOVE_ANSWERS,
    )
    def cancel(
        self, ctx: Ctx, principal: Caller, order_id: FromPath[uuid.UUID], data: JSONBody[CancelOrder]
    ) -> WorkOrderRead:
        """Cancel an order with a reason; it leaves the technician's phone on the next pull."""
        return self._change(
            ctx,
            principal,
            order_id,
            lambda session, order, now: service.cancel(
                session, actor=principal, order=order, reason=data.reason, now=now
            ),
        )

    @post(
        "/{order_id:uuid}/return/approve",
        guards=[DISPATCH],
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        opt=MOVE_ANSWERS,
    )
    def approve_return(
        self,
        ctx: Ctx,
        principal: Caller,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[ReturnDecision | None] = None,
    ) -> WorkOrderRead:
        """Accept a technician's return (退单): the order goes back to dispatch, unassigned."""
        reason = data.reason if data else None
        return self._change(
            ctx,
            principal,
            order_id,
            lambda session, order, now: service.approve_return(
                session, actor=principal, order=order, now=now, reason=reason
            ),
        )

    @post(
        "/{order_id:uuid}/return/refuse",
        guards=[DISPATCH],
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        opt=MOVE_ANSWERS,
    )
    def refuse_return(
        self,
        ctx: Ctx,
        principal: Caller,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[ReturnDecision | None] = None,
    ) -> WorkOrderRead:
        """Refuse a return: the order goes back to the technician where they left it."""
        reason = data.reason if data else None
        return self._change(
            ctx,
            principal,
            order_id,
            lambda session, order, now: service.refuse_return(
                session, actor=principal, order=order, now=now, reason=reason
            ),
        )

    @post(
        "/{order_id:uuid}/close",
        guards=[require_roles(Role.supervisor, Role.admin)],
        opt=MOVE_ANSWERS,
        status_code=HTTP_200_OK,
        sync_to_thread=True,
    )
    def close(
        self,
        ctx: Ctx,
        principal: Caller,
        order_id: FromPath[uuid.UUID],
        data: JSONBody[ReturnDecision | None] = None,
    ) -> WorkOrderRead:
        """A supervisor closes a completed order (with or without its revisit)."""
        reason = data.reason if data else None
        return self._change(
            ctx,
            principal,
            order_id,
            lambda session, order, now: service.close(
                session, actor=principal, order=order, now=now, reason=reason
            ),
        )

    @staticmethod
    def _change(ctx: Ctx, principal: Caller, order_id: uuid.UUID, change) -> WorkOrderRead:
        now = ctx.clock.now()
        with ctx.db.session() as session:
            order = service.get_order_for_update(session, order_id=order_id, company_id=principal.company_id)
            change(session, order, now)
            session.flush()
            return views.order_detail(session, principal=principal, order=order, now=now).order


class HouseholdController(Controller):
    path = "/api/v1/households"
    tags = ["households"]

    @get("/{household_id:uuid}", sync_to_thread=True)
    def detail(self, ctx: Ctx, principal: Caller, household_id: FromPath[uuid.UUID]) -> HouseholdRead:
        """A technician sees only the households of their own orders, phone masked unless active."""
        with ctx.db.session(readonly=True) as session:
            return views.get_household(session, principal=principal, household_id=household_id)

    @get("/", guards=[OFFICE], sync_to_thread=True)
    def search(
        self,
        ctx: Ctx,
        principal: Caller,
        account_number: FromQuery[str | None] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> list[HouseholdRead]:
        """Households of the company by account number, with unmasked contact details (office roles)."""
        with ctx.db.session(readonly=True) as session:
            query = select(Household).where(Household.company_id == principal.company_id)
            if account_number:
                query = query.where(Household.account_number == account_number)
            rows = session.exec(query.order_by(col(Household.account_number)).limit(limit).offset(offset))
            return [views.household_read(session, h, unmask=True) for h in rows]


class RevisitController(Controller):
    path = "/api/v1/revisits"
    tags = ["revisits"]
    guards = [OFFICE]

    @get("/", sync_to_thread=True)
    def list_revisits(
        self,
        ctx: Ctx,
        principal: Caller,
        revisit_state: Annotated[str, QueryParameter(name="state", pattern="^(due|done)$")] = "due",
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> list[RevisitRead]:
        """Revisits to make, soonest due first."""
        with ctx.db.session(readonly=True) as session:
            rows = session.exec(
                select(Revisit)
                .where(Revisit.company_id == principal.company_id, Revisit.state == revisit_state)
                .order_by(col(Revisit.due_at))
                .limit(limit)
                .offset(offset)
            )
            return [views.revisit_read(r) for r in rows]

    @post("/{revisit_id:uuid}/assign", status_code=HTTP_200_OK, sync_to_thread=True, opt=REVISIT_ANSWERS)
    def assign(
        self, ctx: Ctx, principal: Caller, revisit_id: FromPath[uuid.UUID], data: JSONBody[AssignOrder]
    ) -> RevisitRead:
        """Give a revisit to a technician for a visit; it reaches their phone on the next pull."""
        with ctx.db.session() as session:
            revisit = session.get(Revisit, revisit_id, with_for_update=True)
            if revisit is None or revisit.company_id != principal.company_id:
                raise NotFound("No such revisit.")
            service.assign_revisit(session, actor=principal, revisit=revisit, assignee_id=data.user_id)
            return views.revisit_read(revisit)

    @post("/{revisit_id:uuid}/outcome", status_code=HTTP_200_OK, sync_to_thread=True, opt=REVISIT_ANSWERS)
    def outcome(
        self, ctx: Ctx, principal: Caller, revisit_id: FromPath[uuid.UUID], data: JSONBody[RevisitOutcome]
    ) -> RevisitRead:
        """The call centre records the revisit call; a satisfied or unsatisfied answer closes the order."""
        now = ctx.clock.now()
        with ctx.db.session() as session:
            revisit = session.get(Revisit, revisit_id, with_for_update=True)
            if revisit is None or revisit.company_id != principal.company_id:
                raise NotFound("No such revisit.")
            service.record_revisit_outcome(
                session,
                actor=principal,
                revisit=revisit,
                when=service.online(now),
                channel=data.channel,
                outcome=data.outcome,
                satisfaction=data.satisfaction,
                note=data.note,
            )
            return views.revisit_read(revisit)


class SlaController(Controller):
    path = "/api/v1/sla"
    tags = ["sla"]

    @get("/board", guards=[OFFICE], sync_to_thread=True)
    def board(
        self,
        ctx: Ctx,
        principal: Caller,
        team_id: FromQuery[uuid.UUID | None] = None,
        soon_minutes: Annotated[int, QueryParameter(ge=0, le=24 * 60)] = 60,
    ) -> list[BoardEntry]:
        """Every running clock that is overdue or due within `soon_minutes`, most urgent first."""
        with ctx.db.session(readonly=True) as session:
            return views.board(
                session,
                principal=principal,
                now=ctx.clock.now(),
                soon=timedelta(minutes=soon_minutes),
                team_id=team_id,
            )

    @get("/repeat-faults", guards=[OFFICE], sync_to_thread=True)
    def repeat_faults(
        self, ctx: Ctx, principal: Caller, days: Annotated[int, QueryParameter(ge=1, le=366)] = 30
    ) -> list[dict[str, object]]:
        """Repeat faults per team: a new repair at a household within the window of an earlier one,
        counted against the team that did the earlier repair."""
        with ctx.db.session(readonly=True) as session:
            return views.repeat_faults(
                session, principal=principal, since=ctx.clock.now() - timedelta(days=days)
            )

    @get("/policy", sync_to_thread=True)
    def get_policy(self, ctx: Ctx, principal: Caller) -> SlaPolicy:
        """The company's service-level rules: the clocks of each kind of order and the revisit rules."""
        with ctx.db.session(readonly=True) as session:
            company = session.get(Company, principal.company_id)
            assert company is not None
            return load_policy(company)

    @put("/policy", guards=[require_roles(Role.admin)], sync_to_thread=True)
    def put_policy(self, ctx: Ctx, principal: Caller, data: JSONBody[SlaPolicy]) -> SlaPolicy:
        """Replace the company's SLA policy; it applies to orders received from now on."""
        with ctx.db.session() as session:
            company = session.get(Company, principal.company_id)
            assert company is not None
            before = msgspec.to_builtins(load_policy(company))
            company.sla_policy = msgspec.to_builtins(data)
            session.add(company)
            audit.record(
                session,
                company_id=company.id,
                event=audit.Event.sla_policy_changed,
                actor_user_id=principal.user_id,
                actor_device_id=principal.device_id,
                target_type="sla_policy",
                target_id=company.id,
                detail={"changed": audit.changed_settings(before, company.sla_policy)},
            )
            changes.touch(
                session, company_id=company.id, entity="reference", entity_id="sla_policy", users=[None]
            )
        return data


class ReferenceController(Controller):
    path = "/api/v1/reference"
    tags = ["reference"]

    @get("/teams", sync_to_thread=True)
    def teams(self, ctx: Ctx, principal: Caller) -> list[dict[str, str | None]]:
        """The company's teams."""
        with ctx.db.session(readonly=True) as session:
            rows = session.exec(
                select(Team).where(Team.company_id == principal.company_id).order_by(col(Team.code))
            )
            return [
                {
                    "id": str(t.id),
                    "code": t.code,
                    "name": t.name,
                    "station_id": str(t.station_id) if t.station_id else None,
                }
                for t in rows
            ]

    @get("/stations", sync_to_thread=True)
    def stations(self, ctx: Ctx, principal: Caller) -> list[dict[str, str]]:
        """The company's heat-exchange stations."""
        with ctx.db.session(readonly=True) as session:
            rows = session.exec(
                select(Station).where(Station.company_id == principal.company_id).order_by(col(Station.code))
            )
            return [{"id": str(s.id), "code": s.code, "name": s.name} for s in rows]


def _team_in_company(session: Session, team_id: uuid.UUID | None, company_id: uuid.UUID) -> uuid.UUID | None:
    if team_id is None:
        return None
    team = session.get(Team, team_id)
    if team is None or team.company_id != company_id:
        raise InvalidInput("No such team.", code="unknown_team", detail={"team_id": str(team_id)})
    return team_id
