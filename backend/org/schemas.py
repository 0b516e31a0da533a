"""Admin wire types of the organisation area: a resident's personal-data request (PIPL)."""

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

__all__ = (
    "AppointmentRecord",
    "DocumentRecord",
    "EraseRequest",
    "Erased",
    "EventRecord",
    "HouseholdRecord",
    "MeasurementRecord",
    "OrderRecord",
    "PersonalData",
    "PhotoRecord",
    "RevisitRecord",
    "SignatureRecord",
)


class HouseholdRecord(msgspec.Struct):
    id: uuid.UUID
    account_number: str
    address: str
    unit: str
    heated_area_m2: float
    resident_name: str
    resident_phone: str | None
    is_key_customer: bool
    lat: float | None
    lon: float | None
    created_at: datetime
    erased_at: datetime | None
    erase_reason: str | None


class EventRecord(msgspec.Struct):
    id: uuid.UUID
    type: str
    from_state: str | None
    to_state: str | None
    occurred_at: datetime
    received_at: datetime
    corrected_at: datetime
    lat: float | None
    lon: float | None
    reason: str | None
    data: dict[str, Any]
    flags: list[str]


class AppointmentRecord(msgspec.Struct):
    id: uuid.UUID
    order_id: uuid.UUID
    window_start: datetime
    window_end: datetime
    reason: str | None
    requested_by: str
    created_at: datetime
    replaced_at: datetime | None


class OrderRecord(msgspec.Struct):
    id: uuid.UUID
    kind: str
    source: str
    state: str
    description: str
    received_at: datetime
    completed_at: datetime | None
    closed_at: datetime | None
    result: str | None
    result_note: str | None
    satisfaction: int | None
    return_reason: str | None
    cancel_reason: str | None
    timeline: list[EventRecord]


class MeasurementRecord(msgspec.Struct):
    id: uuid.UUID
    order_id: uuid.UUID | None
    instrument_id: str
    rooms: list[dict[str, Any]]
    outdoor_c: float | None
    closed_minutes: int | None
    measured_at: datetime | None
    note: str | None
    result: str | None
    received_at: datetime


class DocumentRecord(msgspec.Struct):
    id: uuid.UUID
    type: str
    order_id: uuid.UUID | None
    content: dict[str, Any]
    """The signed content, as signed."""
    content_sha256: str
    issued_at: datetime
    supersedes_id: uuid.UUID | None
    superseded_by_id: uuid.UUID | None


class SignatureRecord(msgspec.Struct):
    """Who signed what and when; the stroke data and image stay out (the image is by its hash)."""

    id: uuid.UUID
    document_id: uuid.UUID
    signer_name: str
    signer_role: str
    content_sha256: str
    blob_sha256: str | None
    refused_reason: str | None
    signed_at: datetime
    lat: float | None
    lon: float | None


class PhotoRecord(msgspec.Struct):
    id: uuid.UUID
    order_id: uuid.UUID | None
    measurement_id: uuid.UUID | None
    purpose: str
    blob_sha256: str
    copies: dict[str, str]
    """Metadata-free copies by name (``thumb``, ``display``) and their SHA-256."""
    claims: dict[str, Any] | None
    """What the file said of itself (EXIF time, GPS)."""
    taken_at: datetime | None
    received_at: datetime
    original_removed_at: datetime | None


class RevisitRecord(msgspec.Struct):
    id: uuid.UUID
    order_id: uuid.UUID
    state: str
    due_at: datetime
    channel: str | None
    outcome: str | None
    satisfaction: int | None
    note: str | None
    done_at: datetime | None


class PersonalData(msgspec.Struct):
    """Everything held about one household, as one document (a resident's access request)."""

    exported_at: datetime
    household: HouseholdRecord
    orders: list[OrderRecord]
    appointments: list[AppointmentRecord]
    measurements: list[MeasurementRecord]
    documents: list[DocumentRecord]
    signatures: list[SignatureRecord]
    photos: list[PhotoRecord]
    revisits: list[RevisitRecord]


class EraseRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    """Why: the resident's request and its reference, for the record."""


class Erased(msgspec.Struct):
    household_id: uuid.UUID
    erased_at: datetime
    already_erased: bool
    """The household was erased before: nothing changed now."""
    fields_blanked: int
    """Personal fields (and stored action payloads) blanked in the live tables by this call."""
    photo_originals_removed: int
    kept_signed_documents: int
    """Signed documents kept unchanged as legal records (their hash and seals still verify)."""
