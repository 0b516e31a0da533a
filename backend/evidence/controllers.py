"""HTTP layer of signed documents, measurement records and the instrument registry.

Field staff see the documents of orders they hold or held and the ones they issued; the office
sees its company's. Residents reach their own copy through the reference printed on it
(``/api/v1/public/documents/{reference}``), which carries a server-made key and no personal data
beyond the document itself.
"""

import hashlib
import hmac
import json
import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, put
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody
from sqlmodel import Session, col, select

from backend.auth.guards import require_roles
from backend.auth.limits import client_address, count_request
from backend.auth.models import Role
from backend.auth.principal import Principal
from backend.context import AppContext
from backend.contract.answers import answers
from backend.deps import Caller, Ctx
from backend.errors import Forbidden, InvalidInput, NotFound
from backend.evidence import documents, instruments, printing
from backend.evidence.documents import Verification
from backend.evidence.measurements import MeasurementResult, judge
from backend.evidence.models import Document, Measurement, Photo
from backend.evidence.pdf import render_pdf
from backend.evidence.seal import session_seal_key
from backend.org.models import Company
from backend.work_orders import service
from backend.work_orders.models import WorkOrder
from backend.work_orders.sla import load_policy
from backend.work_orders.views import is_field
from mobile_contract.errors import ErrorCode

__all__ = (
    "DocumentController",
    "InstrumentController",
    "MeasurementController",
    "PublicDocumentController",
    "pdf_response",
    "visible_document",
)

INSTRUMENT_ID = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
]


class SignatureRead(msgspec.Struct):
    id: uuid.UUID
    signer_role: str
    signer_name: str
    refused_reason: str | None
    image_sha256: str | None
    has_strokes: bool
    occurred_at: datetime
    received_at: datetime
    corrected_at: datetime
    device_id: str | None
    flags: list[str]


class DocumentRead(msgspec.Struct):
    id: uuid.UUID
    type: str
    order_id: uuid.UUID | None
    household_id: uuid.UUID | None
    content: dict[str, Any]
    content_sha256: str
    issued_by: uuid.UUID
    issued_at: datetime
    supersedes: uuid.UUID | None
    supersede_reason: str | None
    superseded_by: uuid.UUID | None
    signatures: list[SignatureRead]
    verification: Verification
    resident_reference: str
    """Printed on the resident's copy: opens it at ``/api/v1/public/documents/{reference}``."""


class MeasurementRead(msgspec.Struct):
    id: uuid.UUID
    household_id: uuid.UUID
    order_id: uuid.UUID | None
    instrument_id: str
    rooms: list[dict[str, Any]]
    outdoor_c: float | None
    closed_minutes: int | None
    measured_at: datetime | None
    note: str | None
    evaluation: MeasurementResult
    valid: bool
    """Signed by the inspector and by the resident (or the resident's refusal is recorded), intact."""
    document: Verification
    photos: list[dict[str, str]]


class PublicDocument(msgspec.Struct):
    """What anyone holding the printed reference may learn: is this paper genuine and complete."""

    type: str
    issued_at: datetime
    content_sha256: str
    status: str
    intact: bool
    signed_by: list[str]
    superseded: bool


# ------------------------------------------------------------------ access


def resident_reference(session: Session, document_id: uuid.UUID) -> str:
    key = hmac.new(session_seal_key(session), b"resident-copy:" + document_id.bytes, hashlib.sha256)
    return f"{document_id}.{key.hexdigest()[:24]}"


def _by_reference(session: Session, reference: str) -> Document:
    raw_id, _, _ = reference.partition(".")
    try:
        document_id = uuid.UUID(raw_id)
    except ValueError:
        raise NotFound("No such document.") from None
    if not hmac.compare_digest(resident_reference(session, document_id), reference):
        raise NotFound("No such document.")
    document = session.get(Document, document_id)
    if document is None:
        raise NotFound("No such document.")
    return document


def visible_document(session: Session, principal: Principal, document_id: uuid.UUID) -> Document:
    document = session.get(Document, document_id)
    if document is None or document.company_id != principal.company_id:
        raise NotFound("No such document.")
    if not is_field(principal) or document.user_id == principal.user_id:
        return document
    if document.order_id is not None:
        order = session.get(WorkOrder, document.order_id)
        assert order is not None
        try:
            service.require_field_involvement(session, order, principal)
        except Forbidden:
            raise NotFound("No such document.") from None
        return document
    raise NotFound("No such document.")


def document_read(session: Session, document: Document) -> DocumentRead:
    signatures = documents.signatures_of(session, document.id)
    return DocumentRead(
        id=document.id,
        type=document.type,
        order_id=document.order_id,
        household_id=document.household_id,
        content=json.loads(document.content),
        content_sha256=document.content_sha256,
        issued_by=document.user_id,
        issued_at=document.corrected_at,
        supersedes=document.supersedes_id,
        supersede_reason=document.supersede_reason,
        superseded_by=document.superseded_by_id,
        signatures=[
            SignatureRead(
                id=s.id,
                signer_role=s.signer_role,
                signer_name=s.signer_name,
                refused_reason=s.refused_reason,
                image_sha256=s.blob_sha256,
                has_strokes=bool(s.strokes),
                occurred_at=s.occurred_at,
                received_at=s.received_at,
                corrected_at=s.corrected_at,
                device_id=s.device_id,
                flags=s.flags,
            )
            for s in signatures
        ],
        verification=documents.verify(session, document, signatures),
        resident_reference=resident_reference(session, document.id),
    )


# ------------------------------------------------------------------ controllers


class DocumentController(Controller):
    path = "/api/v1/documents"
    tags = ["documents"]

    @get("/", sync_to_thread=True, opt={"answers": answers(ErrorCode.filter_required)})
    def list_documents(
        self,
        ctx: Ctx,
        principal: Caller,
        work_order_id: FromQuery[uuid.UUID | None] = None,
        household_id: FromQuery[uuid.UUID | None] = None,
    ) -> list[DocumentRead]:
        """Documents of an order or a household, oldest first; corrections listed beside what they replace."""
        if work_order_id is None and household_id is None:
            raise InvalidInput("Give work_order_id or household_id.", code="filter_required")
        with ctx.db.session(readonly=True) as session:
            query = select(Document).where(Document.company_id == principal.company_id)
            if work_order_id is not None:
                query = query.where(Document.order_id == work_order_id)
            if household_id is not None:
                query = query.where(Document.household_id == household_id)
            rows = session.exec(query.order_by(col(Document.received_at), col(Document.id)).limit(200))
            out = []
            for row in rows:
                try:
                    out.append(document_read(session, visible_document(session, principal, row.id)))
                except NotFound:
                    continue
            return out

    @get("/{document_id:uuid}", sync_to_thread=True)
    def get_document(self, ctx: Ctx, principal: Caller, document_id: FromPath[uuid.UUID]) -> DocumentRead:
        """A signed document: its content, signatures and their verification."""
        with ctx.db.session(readonly=True) as session:
            return document_read(session, visible_document(session, principal, document_id))

    @get(
        "/{document_id:uuid}/pdf",
        guards=[require_roles(Role.supervisor, Role.admin, Role.dispatcher)],
        sync_to_thread=True,
        media_type="application/pdf",
        opt={"answers": answers(ErrorCode.pdf_font_missing)},
    )
    def pdf(self, ctx: Ctx, principal: Caller, document_id: FromPath[uuid.UUID]) -> Response[bytes]:
        """The signed document as PDF (Chinese text, signature images, content hash on every page)."""
        with ctx.db.session(readonly=True) as session:
            document = visible_document(session, principal, document_id)
            return pdf_response(ctx, session, document)

    @get("/{document_id:uuid}/verify", sync_to_thread=True)
    def verify(self, ctx: Ctx, principal: Caller, document_id: FromPath[uuid.UUID]) -> Verification:
        """Recompute the content hash and every signature's seal: ``intact`` false means it was altered."""
        with ctx.db.session(readonly=True) as session:
            return documents.verify(session, visible_document(session, principal, document_id))


class PublicDocumentController(Controller):
    """For the resident: the reference printed on their copy, no login."""

    path = "/api/v1/public/documents"
    tags = ["documents"]
    opt = {"exclude_from_auth": True}

    @get("/{reference:str}", sync_to_thread=True, opt={"answers": answers(ErrorCode.rate_limited)})
    def check(self, request: Request, ctx: Ctx, reference: FromPath[str]) -> PublicDocument:
        """Is this paper genuine and complete. Limited per client address (`429 rate_limited`)."""
        _count_public_lookup(request, ctx)
        with ctx.db.session(readonly=True) as session:
            document = _by_reference(session, reference)
            verification = documents.verify(session, document)
            return PublicDocument(
                type=document.type,
                issued_at=document.corrected_at,
                content_sha256=document.content_sha256,
                status=verification.status,
                intact=verification.intact,
                signed_by=sorted({s.signer_role for s in verification.signatures if s.intact}),
                superseded=document.superseded_by_id is not None,
            )

    @get(
        "/{reference:str}/pdf",
        sync_to_thread=True,
        media_type="application/pdf",
        opt={"answers": answers(ErrorCode.rate_limited, ErrorCode.pdf_font_missing)},
    )
    def resident_copy(self, request: Request, ctx: Ctx, reference: FromPath[str]) -> Response[bytes]:
        """The resident's copy of what they signed. Counted with the look-ups per address."""
        _count_public_lookup(request, ctx)
        with ctx.db.session(readonly=True) as session:
            return pdf_response(ctx, session, _by_reference(session, reference))


def _count_public_lookup(request: Request, ctx: AppContext) -> None:
    # References cannot be guessed (an HMAC), but each look-up verifies seals and a PDF is
    # rendered on demand: an address may not make the server do that without end.
    count_request(
        ctx,
        scope="public_document",
        key=client_address(request, ctx),
        limit=ctx.settings.public_document_max_per_address,
        window=ctx.settings.public_document_window,
    )


def pdf_response(ctx: AppContext, session: Session, document: Document) -> Response[bytes]:
    reference = resident_reference(session, document.id)
    body = render_pdf(printing.compose(session, ctx.blobs, document, reference=reference))
    return Response(
        body,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{document.type}-{document.id}.pdf"',
            "Cache-Control": "private, no-store",
        },
    )


class MeasurementController(Controller):
    path = "/api/v1/measurements"
    tags = ["measurements"]

    @get("/{measurement_id:uuid}", sync_to_thread=True)
    def get_measurement(
        self, ctx: Ctx, principal: Caller, measurement_id: FromPath[uuid.UUID]
    ) -> MeasurementRead:
        """The record, the server's result against the standard, and whether it is validly signed."""
        with ctx.db.session(readonly=True) as session:
            document = visible_document(session, principal, measurement_id)
            row = session.get(Measurement, measurement_id)
            if row is None:
                raise NotFound("No such measurement.")
            company = session.get(Company, row.company_id)
            assert company is not None
            evaluation = judge(
                row, timezone=company.timezone, design_outdoor_min_c=load_policy(company).design_outdoor_min_c
            )
            verification = documents.verify(session, document)
            photos = session.exec(
                select(Photo).where(Photo.measurement_id == row.id).order_by(col(Photo.received_at))
            )
            return MeasurementRead(
                id=row.id,
                household_id=row.household_id,
                order_id=row.order_id,
                instrument_id=row.instrument_id,
                rooms=row.rooms,
                outdoor_c=row.outdoor_c,
                closed_minutes=row.closed_minutes,
                measured_at=row.measured_at,
                note=row.note,
                evaluation=evaluation,
                valid=verification.status == "valid",
                document=verification,
                photos=[{"purpose": p.purpose, "sha256": p.blob_sha256} for p in photos],
            )


class InstrumentController(Controller):
    path = "/api/v1/instruments"
    tags = ["instruments"]

    @get("/", sync_to_thread=True)
    def list_all(self, ctx: Ctx, principal: Caller) -> list[instruments.InstrumentView]:
        """The company's thermometers and their calibration certificates."""
        with ctx.db.session(readonly=True) as session:
            return [instruments.view(r) for r in instruments.list_instruments(session, principal.company_id)]

    @put(
        "/{instrument_id:str}",
        guards=[require_roles(Role.admin)],
        sync_to_thread=True,
        opt={"answers": answers(ErrorCode.invalid_instrument_id)},
        responses={
            201: ResponseSpec(instruments.InstrumentView, description="A new instrument was registered.")
        },
    )
    def put_instrument(
        self,
        ctx: Ctx,
        principal: Caller,
        instrument_id: FromPath[str],
        data: JSONBody[instruments.InstrumentIn],
    ) -> Response[instruments.InstrumentView]:
        """Register a thermometer or renew its certificate; phones get it with their next pull."""
        try:
            msgspec.convert(instrument_id, INSTRUMENT_ID)
        except msgspec.ValidationError:
            raise InvalidInput(
                "An instrument id is 1-64 letters, digits and . _ / -", code="invalid_instrument_id"
            ) from None
        with ctx.db.session() as session:
            row, created = instruments.upsert(
                session,
                company_id=principal.company_id,
                instrument_id=instrument_id,
                data=data,
                now=ctx.clock.now(),
            )
            return Response(instruments.view(row), status_code=201 if created else 200)
