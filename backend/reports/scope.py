"""What a report covers: the caller's company, a period of local days, perhaps one team.

Every report (KPIs, charts, exports) starts with :func:`resolve`, which checks the caller and the
team and turns local dates into UTC instants, so the queries compare plain timestamps.
"""

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session

from backend.auth.models import Role, User
from backend.auth.principal import Principal
from backend.errors import Forbidden, InvalidInput, NotFound
from backend.org.models import Company, Team

__all__ = ("OFFICE_ROLES", "Scope", "heating_season", "own_team_id", "quick_periods", "resolve")

OFFICE_ROLES = (Role.supervisor, Role.dispatcher, Role.admin)
MAX_DAYS = 400
# Dates a report may name: near the ends of the calendar the period's UTC edges cannot be computed.
EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)
DAILY_UP_TO_DAYS = 31


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def heating_season(today: date) -> tuple[date, date]:
    """The heating season (15 Nov – 15 Mar) running on ``today``, or the last one outside it."""
    if today >= date(today.year, 11, 15):
        return date(today.year, 11, 15), date(today.year + 1, 3, 15)
    return date(today.year - 1, 11, 15), date(today.year, 3, 15)


def quick_periods(today: date) -> dict[str, tuple[date, date]]:
    """The periods a form offers with one click: the heating season running (or the last one),
    the last 30 days up to ``today``, and this calendar month."""
    next_month = (today.replace(day=28) + timedelta(days=4)).replace(day=1)
    return {
        "season": heating_season(today),
        "last30": (today - timedelta(days=29), today),
        "month": (today.replace(day=1), next_month - timedelta(days=1)),
    }


def own_team_id(session: Session, principal: Principal) -> uuid.UUID | None:
    """The team a supervisor is restricted to (their own), else none."""
    if principal.role != Role.supervisor:
        return None
    user = session.get(User, principal.user_id)
    return user.team_id if user is not None else None


@dataclass(frozen=True, slots=True)
class Scope:
    company_id: uuid.UUID
    team_id: uuid.UUID | None
    team_name: str | None
    since: date
    until: date
    timezone: str
    now: datetime

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    def instant(self, day: date) -> datetime:
        """Local midnight starting ``day``, in UTC."""
        return datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)

    @property
    def start(self) -> datetime:
        return self.instant(self.since)

    @property
    def end(self) -> datetime:
        """Exclusive: midnight after ``until``."""
        return self.instant(self.until + timedelta(days=1))

    @property
    def bucket(self) -> str:
        return "day" if (self.until - self.since).days + 1 <= DAILY_UP_TO_DAYS else "week"

    def buckets(self) -> list[tuple[date, date]]:
        """The chart's bars: (first day, last day), days or weeks from ``since``; the last may be short."""
        step = timedelta(days=1 if self.bucket == "day" else 7)
        out, day = [], self.since
        while day <= self.until:
            last = min(day + step - timedelta(days=1), self.until)
            out.append((day, last))
            day = last + timedelta(days=1)
        return out

    def edges(self) -> list[datetime]:
        """UTC instants bounding the buckets: ``len(buckets()) + 1`` of them."""
        return [self.instant(first) for first, _ in self.buckets()] + [self.end]

    def local(self, moment: datetime | None) -> datetime | None:
        """A stored UTC instant as a naive local time, for exports."""
        if moment is None:
            return None
        return moment.astimezone(self.zone).replace(tzinfo=None)


def resolve(
    session: Session,
    *,
    principal: Principal,
    now: datetime,
    since: date | None = None,
    until: date | None = None,
    team_id: uuid.UUID | None = None,
) -> Scope:
    """Check the caller and the team, default the period; raises 403, 404 or 400."""
    if principal.role not in OFFICE_ROLES:
        raise Forbidden(
            "Your role may not do this.",
            detail={"role": principal.role.value, "allowed": sorted(r.value for r in OFFICE_ROLES)},
        )
    for name, day in (("since", since), ("until", until)):
        if day is not None and not EARLIEST <= day <= LATEST:
            raise InvalidInput(
                f"{name} must lie between {EARLIEST} and {LATEST}.",
                detail={"field": name, "earliest": str(EARLIEST), "latest": str(LATEST)},
            )
    company = session.get(Company, principal.company_id)
    assert company is not None
    zone = ZoneInfo(company.timezone)
    season = heating_season(now.astimezone(zone).date())
    since = since or (season[0] if until is None else until - timedelta(days=119))
    until = until or (season[1] if since == season[0] else since + timedelta(days=119))
    if until < since:
        raise InvalidInput("until is before since.", detail={"since": str(since), "until": str(until)})
    if (until - since).days + 1 > MAX_DAYS:
        raise InvalidInput(f"A report covers at most {MAX_DAYS} days.", detail={"max_days": MAX_DAYS})
    # A supervisor with a team sees that team's figures: by default, and only those.
    own = own_team_id(session, principal)
    if own is not None:
        if team_id is not None and team_id != own:
            raise Forbidden("Supervisors see the figures of their own team.", detail={"team_id": str(own)})
        team_id = own
    team_name = None
    if team_id is not None:
        team = session.get(Team, team_id)
        if team is None or team.company_id != principal.company_id:
            raise NotFound("No such team.")
        team_name = team.name
    return Scope(
        company_id=principal.company_id,
        team_id=team_id,
        team_name=team_name,
        since=since,
        until=until,
        timezone=company.timezone,
        now=now,
    )
