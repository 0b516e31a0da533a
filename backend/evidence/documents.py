"""Signed documents: issue (frozen from then on), sign (bound to the content hash), verify.

A document's ``content`` column holds the canonical bytes its signatures cover. Nothing about an
issued document may change except the pointer to the document that supersedes it; measurement
rows and signatures never change at all. A session that tries is refused before it writes.
Verification recomputes every hash and every server seal, so an edit made straight in the database
shows up as ``tampered``.
"""

import hashlib
import json
import uuid
from typing import Any, Literal

import msgspec
import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from backend import audit
from backend.auth.models import Role
from backend.auth.principal import Principal
from backend.clock import ensure_utc
from backend.errors import Forbidden, HeatCrewError, InvalidInput, NotFound
from backend.evidence.models import Document, Measurement, Signature
from backend.evidence.seal import make_seal, session_seal_key
from backend.ids import new_id
from mobile_contract import actions as a
from mobile_contract.documents import DOCUMENT_CONTENT, canonical

__all__ = (
    "DocumentFrozen",
    "SignatureCheck",
    "Verification",
    "issue",
    "refuse_edits",
    "required_signatures",
    "sign",
    "verify",
)

Status = Literal["valid", "awaiting_signatures", "superseded", "tampered"]
# Besides a record's own issuer, who may correct (and so void) it.
CORRECTORS = frozenset({Role.supervisor})


class DocumentFrozen(HeatCrewError):
    status = 409
    code = "document_frozen"
    default_message = (
        "An issued document is never changed: a correction is a new document that supersedes it."
    )


def required_signatures(doc_type: str) -> list[str]:
    """Who must sign (a resident may instead refuse, with a reason)."""
    return ["inspector", "resident"] if doc_type == "measurement" else ["resident"]


# ------------------------------------------------------------------ issue


def issue(
    session: Session,
    *,
    actor: Principal,
    record: dict[str, Any],
    doc_type: str,
    doc_id: uuid.UUID,
    content: Any,
    order_id: uuid.UUID | None,
    household_id: uuid.UUID | None,
    supersedes: uuid.UUID | None = None,
    reason: str | None = None,
) -> Document:
    """Record a document as issued; the same document again is a no-op, a different one is refused."""
    body = canonical(content)
    sha = hashlib.sha256(body).hexdigest()
    existing = session.get(Document, doc_id)
    if existing is not None:
        if (
            existing.company_id == actor.company_id
            and existing.type == doc_type
            and existing.content_sha256 == sha
        ):
            return existing
        raise DocumentFrozen(
            "A document with this id was issued with other content; a correction is a new document "
            "that supersedes it.",
            detail={"document_id": str(doc_id)},
        )
    if supersedes is not None:
        old = session.get(Document, supersedes, with_for_update=True)
        if old is None or old.company_id != actor.company_id:
            raise NotFound("The document to supersede does not exist.", code="unknown_document")
        if old.user_id != actor.user_id and actor.role not in CORRECTORS:
            # Only whoever issued a record, or a supervisor, may void it with a correction.
            raise NotFound("The document to supersede does not exist.", code="unknown_document")
        if old.type != doc_type or old.order_id != order_id or old.household_id != household_id:
            raise InvalidInput(
                "A correction replaces a document of the same type for the same order and household.",
                code="supersede_mismatch",
            )
        if old.superseded_by_id is not None:
            raise DocumentFrozen(
                "That document was already superseded; correct the newest version.",
                code="already_superseded",
                detail={"superseded_by": str(old.superseded_by_id)},
            )
        old.superseded_by_id = doc_id
        # Noted now, written at the push's commit (or gone with the action's scope if it is undone).
        audit.record(
            session,
            company_id=actor.company_id,
            event=audit.Event.document_superseded,
            actor_user_id=actor.user_id,
            actor_device_id=actor.device_id,
            target_type="document",
            target_id=old.id,
            detail={"type": doc_type, "superseded_by": str(doc_id)},
        )
    document = Document(
        id=doc_id,
        type=doc_type,
        order_id=order_id,
        household_id=household_id,
        content=body.decode(),
        content_sha256=sha,
        supersedes_id=supersedes,
        supersede_reason=reason,
        **record,
    )
    session.add(document)
    return document


def check_content(doc_type: str, content: dict[str, Any]) -> Any:
    """The typed content of a phone-written document, or ``invalid_document`` saying what is wrong."""
    struct = DOCUMENT_CONTENT.get(doc_type)
    if struct is None:
        raise InvalidInput(f"{doc_type} documents are not issued this way.", code="invalid_document")
    try:
        return msgspec.convert(content, struct)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"The {doc_type} is not valid: {exc}", code="invalid_document") from None


# ------------------------------------------------------------------ sign


def sign(
    session: Session,
    *,
    actor: Principal,
    record: dict[str, Any],
    document: Document,
    payload: a.SignatureV1,
) -> Signature:
    if payload.content_sha256 != document.content_sha256:
        raise InvalidInput(
            "The signature covers other content than this document holds; show the issued document "
            "and sign again.",
            code="content_mismatch",
            detail={"expected": document.content_sha256, "got": payload.content_sha256},
        )
    if payload.signer_role != "resident" and payload.signer_role != actor.role.value:
        raise Forbidden(
            f"Only the {payload.signer_role} signs as {payload.signer_role}; you are a {actor.role.value}.",
            code="signer_role_mismatch",
        )
    if payload.refused_reason is not None and payload.signer_role != "resident":
        raise InvalidInput("Only a resident may refuse to sign.", code="invalid_refusal")
    flags = list(record.pop("flags"))
    if document.superseded_by_id is not None:
        flags.append("document_superseded")
    signature = Signature(
        id=new_id(),
        document_type=document.type,
        document_id=document.id,
        signer_name=payload.signer_name,
        signer_role=payload.signer_role,
        content_sha256=payload.content_sha256,
        blob_sha256=payload.blob,
        strokes=[list(map(list, stroke)) for stroke in payload.strokes] if payload.strokes else None,
        refused_reason=payload.refused_reason,
        lat=payload.lat,
        lon=payload.lon,
        flags=flags,
        **record,
    )
    signature.seal = make_seal(session_seal_key(session), _sealed(signature))
    session.add(signature)
    return signature


def _sealed(s: Signature) -> dict[str, Any]:
    """Everything a seal covers: who signed what, how, when and from where."""
    return {
        "id": str(s.id),
        "company_id": str(s.company_id),
        "document": [s.document_type, str(s.document_id)],
        "content_sha256": s.content_sha256,
        "signer": [s.signer_name, s.signer_role],
        "image": s.blob_sha256,
        "strokes": hashlib.sha256(canonical(s.strokes)).hexdigest() if s.strokes else None,
        "refused_reason": s.refused_reason,
        "user": [str(s.user_id), s.device_id],
        # In UTC: the phone's own offset (+08:00) is not what the database gives back.
        "at": [ensure_utc(s.occurred_at).isoformat(), ensure_utc(s.received_at).isoformat()],
        "gps": [s.lat, s.lon],
    }


# ------------------------------------------------------------------ verify


class SignatureCheck(msgspec.Struct):
    id: uuid.UUID
    signer_role: str
    signer_name: str
    signed_at: str
    """When the person signed: the phone's clock corrected for its skew against the server's."""
    phone_signed_at: str
    """The phone's own clock when the person signed, as it reported it."""
    received_at: str
    """When the server received the signature."""
    refused_reason: str | None
    intact: bool


class Verification(msgspec.Struct):
    document_id: uuid.UUID
    type: str
    status: Status
    intact: bool
    """The content and every signature are as they were signed."""
    content_sha256: str
    """What the document says it holds, as issued."""
    computed_sha256: str
    """Recomputed now from the stored content."""
    signatures: list[SignatureCheck]
    missing: list[str]
    """Who still has to sign (or, for a resident, refuse)."""
    problems: list[str]
    superseded_by: uuid.UUID | None
    supersedes: uuid.UUID | None


def signatures_of(session: Session, document_id: uuid.UUID) -> list[Signature]:
    return list(
        session.exec(
            select(Signature)
            .where(Signature.document_id == document_id)
            .order_by(Signature.occurred_at, Signature.id)  # type: ignore[arg-type]
        )
    )


def verify(session: Session, document: Document, signatures: list[Signature] | None = None) -> Verification:
    if signatures is None:
        signatures = signatures_of(session, document.id)
    key = session_seal_key(session)
    computed = hashlib.sha256(document.content.encode()).hexdigest()
    problems: list[str] = []
    if computed != document.content_sha256:
        problems.append("the stored content no longer hashes to the issued hash")
    if document.type == "measurement":
        problems += _measurement_problems(session, document)
    checks = []
    for s in signatures:
        intact = s.content_sha256 == computed and s.seal == make_seal(key, _sealed(s))
        if not intact:
            problems.append(f"the {s.signer_role} signature {s.id} does not match the content or its seal")
        checks.append(
            SignatureCheck(
                id=s.id,
                signer_role=s.signer_role,
                signer_name=s.signer_name,
                signed_at=s.corrected_at.isoformat(),
                phone_signed_at=s.occurred_at.isoformat(),
                received_at=s.received_at.isoformat(),
                refused_reason=s.refused_reason,
                intact=intact,
            )
        )
    signed_roles = {c.signer_role for c in checks if c.intact}
    missing = [role for role in required_signatures(document.type) if role not in signed_roles]
    status: Status
    if problems:
        status = "tampered"
    elif document.superseded_by_id is not None:
        status = "superseded"
    elif missing:
        status = "awaiting_signatures"
    else:
        status = "valid"
    return Verification(
        document_id=document.id,
        type=document.type,
        status=status,
        intact=not problems,
        content_sha256=document.content_sha256,
        computed_sha256=computed,
        signatures=checks,
        missing=missing,
        problems=problems,
        superseded_by=document.superseded_by_id,
        supersedes=document.supersedes_id,
    )


def _measurement_problems(session: Session, document: Document) -> list[str]:
    """The measurement row must still say what the signed record says."""
    row = session.get(Measurement, document.id)
    if row is None:
        return ["the measurement record is missing"]
    try:
        signed = msgspec.convert(json.loads(document.content), a.MeasurementV1)
    except (ValueError, msgspec.ValidationError):
        return ["the signed content is not a measurement record"]
    stored = {
        "household_id": row.household_id,
        "work_order_id": row.order_id,
        "instrument_id": row.instrument_id,
        "rooms": row.rooms,
        "outdoor_c": row.outdoor_c,
        "closed_minutes": row.closed_minutes,
        "note": row.note,
    }
    expected = {
        "household_id": signed.household_id,
        "work_order_id": signed.work_order_id,
        "instrument_id": signed.instrument_id,
        "rooms": [msgspec.to_builtins(room) for room in signed.rooms],
        "outdoor_c": signed.outdoor_c,
        "closed_minutes": signed.closed_minutes,
        "note": signed.note,
    }
    return [
        f"the measurement's {name} differs from the signed record"
        for name in stored
        if canonical(stored[name]) != canonical(expected[name])
    ]


# ------------------------------------------------------------------ frozen rows

_MUTABLE = {Document: {"superseded_by_id"}, Measurement: set(), Signature: set()}


def refuse_edits(session: OrmSession) -> None:
    """Issued documents, measurement records and signatures are never edited, by any code path."""
    for obj in session.dirty:
        allowed = _MUTABLE.get(type(obj))  # type: ignore[call-overload]
        if allowed is None:
            continue
        state = sa.inspect(obj)
        changed = {attr.key for attr in state.attrs if attr.history.has_changes()} - allowed
        if changed:
            raise DocumentFrozen(detail={"fields": sorted(changed)})
    for obj in session.deleted:
        if type(obj) in _MUTABLE:
            raise DocumentFrozen("Signed records are never deleted.")
