"""CSV import of households and staff: every row checked first, then all written or none.

Companies export these from their billing and HR systems, often from Excel: UTF-8 with or
without BOM, or GB18030. Errors name the row (as a spreadsheet numbers it, header = 1) and field.
"""

import csv
import io
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from backend.auth import service as auth_service
from backend.auth.models import Role, User
from backend.context import AppContext
from backend.errors import HeatCrewError
from backend.ids import new_id
from backend.org.models import Building, Household, Station, Team
from backend.work_orders import timeline

__all__ = ("ImportReport", "RowError", "import_households", "import_staff", "read_csv")

HOUSEHOLD_COLUMNS = (
    "account_number",
    "station_code",
    "station_name",
    "address",
    "unit",
    "heated_area_m2",
    "resident_name",
    "resident_phone",
    "is_key_customer",
    "lat",
    "lon",
)
HOUSEHOLD_REQUIRED = ("account_number", "station_code", "address", "unit", "heated_area_m2", "resident_name")
STAFF_COLUMNS = (
    "username",
    "full_name",
    "role",
    "staff_number",
    "phone",
    "team_code",
    "team_name",
    "initial_password",
)
STAFF_REQUIRED = ("username", "full_name", "role", "initial_password")
PHONE = re.compile(r"^[0-9+ -]{5,20}$")
TRUE_WORDS = {"1", "true", "yes", "y", "是"}
FALSE_WORDS = {"", "0", "false", "no", "n", "否"}


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.message}"


@dataclass(slots=True)
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class ImportRejected(HeatCrewError):
    status = 422
    code = "import_rejected"
    default_message = "The file has errors; nothing was imported."


def read_csv(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise ImportRejected("The file is neither UTF-8 nor GB18030 text.")
    reader = csv.DictReader(io.StringIO(text))
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]


def _check_columns(rows: list[dict[str, str]], known: tuple[str, ...], required: tuple[str, ...]) -> None:
    if not rows:
        raise ImportRejected("The file has no data rows.")
    columns = set(rows[0])
    missing = [c for c in required if c not in columns]
    unknown = sorted(columns - set(known))
    if missing or unknown:
        raise ImportRejected(
            "The header does not match.",
            detail={"missing": missing, "unknown": unknown, "expected": list(known)},
        )


def _number(
    errors: list[RowError], row: int, name: str, text: str, *, low: float, high: float, required: bool
) -> float | None:
    if not text:
        if required:
            errors.append(RowError(row, name, "required"))
        return None
    try:
        value = float(text)
    except ValueError:
        errors.append(RowError(row, name, f"not a number: {text!r}"))
        return None
    if not low <= value <= high:
        errors.append(RowError(row, name, f"must be between {low:g} and {high:g}"))
        return None
    return value


def _flag(errors: list[RowError], row: int, name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered not in FALSE_WORDS:
        errors.append(RowError(row, name, f"not yes/no: {text!r}"))
    return False


def _required(errors: list[RowError], number: int, data: dict[str, str], names: tuple[str, ...]) -> None:
    for name in names:
        if not data.get(name):
            errors.append(RowError(number, name, "required"))


def import_households(
    ctx: AppContext, session: Session, *, company_id: uuid.UUID, path: Path
) -> ImportReport:
    """Create or update households (matched by account number), with their buildings and stations."""
    rows = read_csv(path)
    _check_columns(rows, HOUSEHOLD_COLUMNS, HOUSEHOLD_REQUIRED)
    report = ImportReport()
    seen: dict[str, int] = {}
    parsed: list[tuple[int, dict[str, Any]]] = []
    for index, data in enumerate(rows, start=2):
        errors: list[RowError] = []
        _required(errors, index, data, HOUSEHOLD_REQUIRED)
        account = data.get("account_number", "")
        if account in seen:
            errors.append(RowError(index, "account_number", f"repeats row {seen[account]}"))
        elif account:
            seen[account] = index
        if len(account) > 32:
            errors.append(RowError(index, "account_number", "longer than 32 characters"))
        phone = data.get("resident_phone", "")
        if phone and not PHONE.match(phone):
            errors.append(RowError(index, "resident_phone", f"not a phone number: {phone!r}"))
        values = {
            "area": _number(
                errors,
                index,
                "heated_area_m2",
                data.get("heated_area_m2", ""),
                low=1,
                high=10_000,
                required=True,
            ),
            "lat": _number(errors, index, "lat", data.get("lat", ""), low=-90, high=90, required=False),
            "lon": _number(errors, index, "lon", data.get("lon", ""), low=-180, high=180, required=False),
            "key": _flag(errors, index, "is_key_customer", data.get("is_key_customer", "")),
        }
        report.errors.extend(errors)
        parsed.append((index, {**data, **values}))
    if report.errors:
        return report

    stations = {s.code: s for s in session.exec(select(Station).where(Station.company_id == company_id))}
    buildings = {
        b.address: b for b in session.exec(select(Building).where(Building.company_id == company_id))
    }
    households = {
        h.account_number: h for h in session.exec(select(Household).where(Household.company_id == company_id))
    }
    known = {h.id for h in households.values()}
    updated: list[uuid.UUID] = []
    for _, data in parsed:
        station = stations.get(data["station_code"])
        if station is None:
            station = Station(
                id=new_id(),
                company_id=company_id,
                code=data["station_code"],
                name=data.get("station_name") or data["station_code"],
            )
            stations[station.code] = station
            session.add(station)
            session.flush()
        building = buildings.get(data["address"])
        if building is None:
            building = Building(
                id=new_id(), company_id=company_id, station_id=station.id, address=data["address"]
            )
            buildings[building.address] = building
            session.add(building)
            session.flush()
        household = households.get(data["account_number"])
        if household is None:
            household = Household(
                id=new_id(),
                company_id=company_id,
                account_number=data["account_number"],
                building_id=building.id,
                unit=data["unit"],
                heated_area_m2=data["area"],
                resident_name=data["resident_name"],
                created_at=ctx.clock.now(),
            )
            report.created += 1
        else:
            report.updated += 1
        household.building_id = building.id
        household.unit = data["unit"]
        household.heated_area_m2 = data["area"]
        household.resident_name = data["resident_name"]
        household.resident_phone = data.get("resident_phone") or None
        household.is_key_customer = data["key"]
        household.lat = data["lat"]
        household.lon = data["lon"]
        session.add(household)
        if household.id in known:
            updated.append(household.id)
    session.flush()
    # The phones holding an updated household get it again on their next pull.
    timeline.touch_households(session, company_id=company_id, household_ids=updated)
    return report


def import_staff(ctx: AppContext, session: Session, *, company_id: uuid.UUID, path: Path) -> ImportReport:
    """Create staff accounts with their teams; an existing username is an error, never overwritten."""
    rows = read_csv(path)
    _check_columns(rows, STAFF_COLUMNS, STAFF_REQUIRED)
    report = ImportReport()
    taken = set(session.exec(select(User.username)))
    seen: dict[str, int] = {}
    for index, data in enumerate(rows, start=2):
        _required(report.errors, index, data, STAFF_REQUIRED)
        username = data.get("username", "").lower()
        if username in seen:
            report.errors.append(RowError(index, "username", f"repeats row {seen[username]}"))
        elif username in taken:
            report.errors.append(RowError(index, "username", "already exists"))
        elif username:
            seen[username] = index
        if data.get("role") and data["role"] not in Role.__members__:
            report.errors.append(RowError(index, "role", f"not one of {', '.join(Role.__members__)}"))
        if data.get("initial_password") and len(data["initial_password"]) < auth_service.MIN_PASSWORD_LENGTH:
            report.errors.append(
                RowError(
                    index, "initial_password", f"shorter than {auth_service.MIN_PASSWORD_LENGTH} characters"
                )
            )
        if data.get("phone") and not PHONE.match(data["phone"]):
            report.errors.append(RowError(index, "phone", f"not a phone number: {data['phone']!r}"))
    if report.errors:
        return report
    teams = {t.code: t for t in session.exec(select(Team).where(Team.company_id == company_id))}
    for data in rows:
        team = _team(session, teams, company_id, data.get("team_code", ""), data.get("team_name", ""))
        user = auth_service.create_user(
            ctx,
            session,
            company_id=company_id,
            username=data["username"],
            full_name=data["full_name"],
            role=Role(data["role"]),
            password=data["initial_password"],
            staff_number=data.get("staff_number") or None,
            phone=data.get("phone") or None,
        )
        user.team_id = team.id if team else None
        session.add(user)
        report.created += 1
    session.flush()
    return report


def _team(
    session: Session, teams: dict[str, Team], company_id: uuid.UUID, code: str, name: str
) -> Team | None:
    if not code:
        return None
    if code not in teams:
        teams[code] = Team(id=new_id(), company_id=company_id, code=code, name=name or code)
        session.add(teams[code])
        session.flush()
    return teams[code]
