"""Evidence from the field: photos, measurements, signatures, meter readings, and uploaded blobs.

No ``from __future__ import annotations`` here (SQLModel).
"""

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from backend.db.types import UTCDateTime

__all__ = (
    "Blob",
    "BlobUploader",
    "Document",
    "Instrument",
    "Measurement",
    "MeterReading",
    "Photo",
    "Signature",
)


class Blob(SQLModel, table=True):
    """An upload, known by its SHA-256; the bytes live in the blob store.

    Keyed per company, so that one company cannot learn whether another holds a given file.
    """

    __tablename__ = "blob"

    company_id: uuid.UUID = Field(foreign_key="company.id", primary_key=True)
    sha256: str = Field(primary_key=True, max_length=64)
    size: int = Field(sa_type=sa.BigInteger)
    content_type: str | None = Field(default=None, max_length=64)
    uploaded_by: uuid.UUID = Field(foreign_key="app_user.id", index=True)
    uploaded_at: datetime = Field(sa_type=UTCDateTime)
    media: str | None = Field(default=None, max_length=8, description="Format found in the bytes: JPEG, PNG…")
    claims: dict[str, Any] | None = Field(
        default=None,
        sa_type=sa.JSON,
        description="What the file says of itself (EXIF time, GPS): claims, not facts.",
    )
    variants: dict[str, str] = Field(
        default_factory=dict, sa_type=sa.JSON, description="Derived copies without metadata: name -> SHA-256."
    )
    refused: str | None = Field(
        default=None,
        max_length=64,
        description="Why the upload was refused (no bytes kept); actions using it fail.",
    )


class BlobUploader(SQLModel, table=True):
    """Everyone who sent a file's bytes (verified against its hash), or was refused sending them.

    Only they may attach the file to an action and see it (besides the office): a hash alone is no
    proof of having the photo, the bytes are. A second user uploading the same bytes is recorded too.
    """

    __tablename__ = "blob_uploader"
    # Each upload counts the user's uploads of the last 24 hours (the quota).
    __table_args__ = (sa.Index("ix_blob_uploader_user_time", "user_id", "uploaded_at"),)

    company_id: uuid.UUID = Field(foreign_key="company.id", primary_key=True)
    sha256: str = Field(primary_key=True, max_length=64)
    user_id: uuid.UUID = Field(foreign_key="app_user.id", primary_key=True)
    uploaded_at: datetime = Field(sa_type=UTCDateTime)
    refused: str | None = Field(
        default=None,
        max_length=64,
        description="Why this user's upload was refused (a bad image, over the size limit): their "
        "actions using the file are refused too.",
    )


class FieldRecord(SQLModel):
    """Who recorded it, from which phone, and the three clocks."""

    user_id: uuid.UUID = Field(foreign_key="app_user.id")
    device_id: str | None = Field(default=None, max_length=64)
    action_id: uuid.UUID | None = Field(default=None, description="The sync action that brought it.")
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    received_at: datetime = Field(sa_type=UTCDateTime)
    corrected_at: datetime = Field(sa_type=UTCDateTime)
    flags: list[str] = Field(default_factory=list, sa_type=sa.JSON)


class Photo(FieldRecord, table=True):
    __tablename__ = "photo"

    id: uuid.UUID = Field(primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id")
    order_id: uuid.UUID | None = Field(default=None, foreign_key="work_order.id", index=True)
    measurement_id: uuid.UUID | None = Field(default=None, index=True)
    blob_sha256: str = Field(max_length=64)
    purpose: str = Field(max_length=16)
    taken_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    original_removed_at: datetime | None = Field(
        default=None,
        sa_type=UTCDateTime,
        description="When retention (or an erasure) removed the original from the blob store; "
        "the metadata-free copies and the hash stay.",
    )


class Measurement(FieldRecord, table=True):
    """An indoor-temperature record (测温); the id is made on the phone."""

    __tablename__ = "measurement"
    __table_args__ = (
        sa.Index(
            "ix_measurement_company_measured", "company_id", "measured_at", postgresql_include=["result"]
        ),
    )

    id: uuid.UUID = Field(primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id")
    household_id: uuid.UUID = Field(foreign_key="household.id", index=True)
    order_id: uuid.UUID | None = Field(default=None, foreign_key="work_order.id", index=True)
    instrument_id: str = Field(max_length=64)
    rooms: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    outdoor_c: float | None = None
    closed_minutes: int | None = None
    measured_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    note: str | None = Field(default=None, max_length=2000)
    result: str | None = Field(default=None, max_length=16)


class Signature(FieldRecord, table=True):
    __tablename__ = "signature"
    __table_args__ = (sa.Index("ix_signature_document", "document_type", "document_id"),)

    id: uuid.UUID = Field(primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id")
    document_type: str = Field(max_length=16)
    document_id: uuid.UUID
    signer_name: str = Field(max_length=100)
    signer_role: str = Field(max_length=16)
    content_sha256: str = Field(max_length=64)
    blob_sha256: str | None = Field(default=None, max_length=64)
    strokes: list[Any] | None = Field(default=None, sa_type=sa.JSON)
    refused_reason: str | None = Field(default=None, max_length=500)
    lat: float | None = None
    lon: float | None = None
    seal: str = Field(
        default="",
        max_length=64,
        description="Server HMAC over the signature and the content hash it covers: a row edited "
        "in the database no longer matches it.",
    )


class Document(FieldRecord, table=True):
    """A document people sign, frozen from the moment it is issued (receipt, measurement record…).

    ``content`` holds the exact canonical bytes (``mobile_contract.documents.canonical``) the
    signatures cover. A correction is a new document that supersedes this one; both stay visible.
    """

    __tablename__ = "document"

    id: uuid.UUID = Field(primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id", index=True)
    type: str = Field(max_length=16)
    order_id: uuid.UUID | None = Field(default=None, foreign_key="work_order.id", index=True)
    household_id: uuid.UUID | None = Field(default=None, foreign_key="household.id", index=True)
    content: str = Field(sa_type=sa.Text)
    content_sha256: str = Field(max_length=64)
    supersedes_id: uuid.UUID | None = Field(default=None, index=True)
    supersede_reason: str | None = Field(default=None, max_length=500)
    superseded_by_id: uuid.UUID | None = None


class Instrument(SQLModel, table=True):
    """A calibrated thermometer (measurement records name it; an expired one is refused)."""

    __tablename__ = "instrument"

    company_id: uuid.UUID = Field(foreign_key="company.id", primary_key=True)
    id: str = Field(primary_key=True, max_length=64, description="Serial number as printed on it.")
    model: str | None = Field(default=None, max_length=100)
    certificate_no: str = Field(max_length=64)
    calibration_expires: date = Field(sa_type=sa.Date)
    accuracy_c: float = 0.3
    retired: bool = False
    updated_at: datetime = Field(sa_type=UTCDateTime)


class MeterReading(FieldRecord, table=True):
    __tablename__ = "meter_reading"

    id: uuid.UUID = Field(primary_key=True)
    company_id: uuid.UUID = Field(foreign_key="company.id")
    order_id: uuid.UUID = Field(foreign_key="work_order.id", index=True)
    meter_id: str = Field(max_length=64)
    value: float
    phase: str = Field(max_length=8)
    blob_sha256: str | None = Field(default=None, max_length=64)
