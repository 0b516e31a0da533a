"""The instrument registry: thermometers with their calibration certificates.

A measurement names its instrument; one that is unknown, retired, or whose certificate had expired
on the day of the measurement (in the company's zone) is refused: the reading proves nothing.
"""

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec
from sqlmodel import Session, select

from backend.errors import InvalidInput
from backend.evidence.models import Instrument
from backend.sync import changes
from mobile_contract.types import BoundedDate, TimeChecked
from mobile_contract.views import InstrumentView

__all__ = ("InstrumentIn", "InstrumentView", "list_instruments", "require_usable", "upsert")


class InstrumentIn(TimeChecked, forbid_unknown_fields=True, kw_only=True):
    model: str | None = msgspec.field(default=None)
    certificate_no: str
    calibration_expires: BoundedDate
    accuracy_c: float = 0.3
    retired: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.accuracy_c <= 0.5:
            raise ValueError("accuracy_c must be in (0, 0.5] °C; the procedure needs ±0.3 °C or better")
        if not self.certificate_no.strip() or len(self.certificate_no) > 64:
            raise ValueError("certificate_no must be 1-64 characters")
        if self.model is not None and len(self.model) > 100:
            raise ValueError("model must be at most 100 characters")


def view(row: Instrument) -> InstrumentView:
    return InstrumentView(
        id=row.id,
        model=row.model,
        certificate_no=row.certificate_no,
        calibration_expires=row.calibration_expires,
        accuracy_c=row.accuracy_c,
        retired=row.retired,
    )


def require_usable(
    session: Session, *, company_id: uuid.UUID, instrument_id: str, on: datetime, zone: ZoneInfo
) -> Instrument:
    row = session.get(Instrument, (company_id, instrument_id))
    if row is None:
        raise InvalidInput(
            f"Instrument {instrument_id} is not in the registry.",
            code="unknown_instrument",
            detail={"instrument_id": instrument_id},
        )
    day = on.astimezone(zone).date()
    if row.retired:
        raise InvalidInput(
            f"Instrument {instrument_id} is retired.",
            code="instrument_retired",
            detail={"instrument_id": row.id},
        )
    if row.calibration_expires < day:
        raise InvalidInput(
            f"Instrument {instrument_id}'s calibration expired on {row.calibration_expires}.",
            code="instrument_expired",
            detail={
                "instrument_id": row.id,
                "expired_on": row.calibration_expires.isoformat(),
                "used_on": str(day),
            },
        )
    return row


def upsert(
    session: Session, *, company_id: uuid.UUID, instrument_id: str, data: InstrumentIn, now: datetime
) -> tuple[Instrument, bool]:
    row = session.get(Instrument, (company_id, instrument_id), with_for_update=True)
    created = row is None
    fields = msgspec.structs.asdict(data)
    if row is None:
        row = Instrument(company_id=company_id, id=instrument_id, updated_at=now, **fields)
    else:
        for name, value in fields.items():
            setattr(row, name, value)
        row.updated_at = now
    session.add(row)
    # Reference data travels to every phone of the company.
    changes.touch(session, company_id=company_id, entity="reference", entity_id="instruments", users=[None])
    return row, created


def list_instruments(session: Session, company_id: uuid.UUID) -> list[Instrument]:
    return list(
        session.exec(select(Instrument).where(Instrument.company_id == company_id).order_by(Instrument.id))  # type: ignore[arg-type]
    )
