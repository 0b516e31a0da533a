"""Admin endpoints of the organisation area: a resident's personal-data request (PIPL). Thin:
the logic is in ``backend.org.pipl``."""

import uuid

from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from backend.auth.guards import require_roles
from backend.auth.models import Role
from backend.contract.answers import answers
from backend.deps import Caller, Ctx
from backend.org import pipl
from backend.org.schemas import Erased, EraseRequest, PersonalData
from mobile_contract.errors import ErrorCode

__all__ = ("AdminHouseholdController",)


class AdminHouseholdController(Controller):
    path = "/api/v1/admin/households"
    tags = ["admin"]
    guards = [require_roles(Role.admin)]

    @get("/{household_id:uuid}/personal-data", sync_to_thread=True)
    def personal_data(self, ctx: Ctx, principal: Caller, household_id: FromPath[uuid.UUID]) -> PersonalData:
        """Everything held about one household as one document (a resident's access request, PIPL):
        the household, its orders with their timelines, appointments, measurements, signed documents
        with their content, signatures' metadata, photos' metadata and hashes, revisits. Admins only."""
        with ctx.db.session(readonly=True) as session:
            return pipl.export(ctx, session, company_id=principal.company_id, household_id=household_id)

    @post(
        "/{household_id:uuid}/erase",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        opt={"answers": answers(ErrorCode.invalid_input)},
    )
    def erase(
        self, ctx: Ctx, principal: Caller, household_id: FromPath[uuid.UUID], data: JSONBody[EraseRequest]
    ) -> Erased:
        """Erase the resident's personal data from the live tables (PIPL): name, phone, the free text
        about the visits; photo originals go, their copies stay. Signed documents are kept unchanged
        as legal records and still verify by their hash. Phones get the blanked household. Idempotent:
        a second call changes nothing (`already_erased`). Admins only; `reason` is required."""
        return pipl.erase(
            ctx,
            principal=principal,
            company_id=principal.company_id,
            household_id=household_id,
            reason=data.reason,
        )
