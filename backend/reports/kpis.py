"""The office's KPIs for a period, each computed by one aggregate query in the database.

Every query is SQLAlchemy Core with GROUP BY in the database: rows never come to Python, only one
small row per (bucket, group). The bucket of a row is found in SQL: ``width_bucket`` over the
bucket edges on PostgreSQL, a CASE over the same edges on SQLite. The definitions are written out
in docs/ARCHITECTURE.md ("Reports") and in each KPI's ``definition``.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from backend.console import N_
from backend.evidence.models import Document, Measurement
from backend.org.models import Company
from backend.reports import rollup
from backend.reports.schemas import Kpi, KpiReport, SeriesPoint
from backend.reports.scope import Scope
from backend.work_orders.models import Revisit, SlaClock, WorkOrder
from backend.work_orders.sla import load_policy
from backend.work_orders.states import State
from mobile_contract.reference import ClockName, Source, WorkOrderKind

__all__ = ("KPI_NAMES", "TITLES", "compute", "translated")

O = WorkOrder.__table__  # noqa: E741
C = SlaClock.__table__
R = Revisit.__table__
M = Measurement.__table__
D = Document.__table__
U = sa.table("app_user", sa.column("id"), sa.column("team_id"))

CLOCK_KPIS = tuple(f"on_time_{c.value}" for c in ClockName)
KPI_NAMES = (
    *CLOCK_KPIS,
    "complaints_answered",
    "temperature_pass",
    "revisit_completion",
    "revisit_satisfaction",
    "repeat_repairs",
    "hotline_feedback",
    "hotline_closure",
    "hotline_satisfaction",
)
SATISFIED = 4
# Targets the SLA policy does not carry.
COMPLAINTS_TARGET = 1.0
REVISIT_COMPLETION_TARGET = 1.0
SATISFACTION_TARGET = 4.5
REPEAT_TARGET = 0.05
HOTLINE_TARGETS = {"hotline_feedback": 1.0, "hotline_closure": 0.95, "hotline_satisfaction": 0.9}

_CLOCK_TITLES = {
    "accept": N_("Accepted on time"),
    "contact": N_("Resident contacted on time"),
    "arrive": N_("Arrived on time"),
    "resolve": N_("Resolved on time"),
    "answer": N_("Answered on time"),
    "revisit": N_("Revisited on time"),
}
_CLOCK_WORDS = {  # the clock's name inside its definition, translated with it
    "accept": N_("accept"),
    "contact": N_("contact"),
    "arrive": N_("arrive"),
    "resolve": N_("resolve"),
    "answer": N_("answer"),
    "revisit": N_("revisit"),
}
_CLOCK_DEFINITION = N_(
    "SLA clocks '%(clock)s' due in the period that have run out or been met: met at or before their "
    "due time, of all of them (late or still unmet past due). Clocks of orders cancelled before the "
    "clock ran out do not count."
)
# Each definition as (msgid, its variables): English in the API, the reader's language in the console.
_DEFINITIONS: dict[str, tuple[str, dict[str, str]]] = {
    **{f"on_time_{name}": (_CLOCK_DEFINITION, {"clock": _CLOCK_WORDS[name]}) for name in _CLOCK_TITLES},
    "complaints_answered": (
        N_(
            "Complaint orders whose 'answer' clock falls due in the period: answered at or before "
            "the due time, of all that have run out or been answered."
        ),
        {},
    ),
    "temperature_pass": (
        N_(
            "Measurements taken in the period (measured_at) judged 'pass' by the indoor standard, of "
            "those judged 'pass' or 'fail' (not applicable and incomplete ones, and records superseded "
            "by a correction, do not count)."
        ),
        {},
    ),
    "revisit_completion": (
        N_("Revisits due in the period that are done, of those done or already due."),
        {},
    ),
    "revisit_satisfaction": (
        N_("Mean satisfaction (1-5) of the revisits counted above that are done and have a score."),
        {},
    ),
    "repeat_repairs": (
        N_(
            "Repairs (kinds that get a revisit) completed in the period after which a new repair was "
            "reported at the same household within the repeat window (30 days): counted against the "
            "team of the first repair. Lower is better."
        ),
        {},
    ),
    "hotline_feedback": (
        N_(
            "12345 referrals (source mayor_hotline) received in the period, not cancelled, whose "
            "resident was answered: a contact, answer or arrive clock met, or the order completed."
        ),
        {},
    ),
    "hotline_closure": (N_("The same referrals that are closed."), {}),
    "hotline_satisfaction": (
        N_(
            "Of the same referrals with a satisfaction score (the revisit's, else the receipt's), the "
            "share scoring 4 or 5."
        ),
        {},
    ),
}
DEFINITIONS = {name: msgid % variables for name, (msgid, variables) in _DEFINITIONS.items()}
TITLES = {
    **{f"on_time_{k}": v for k, v in _CLOCK_TITLES.items()},
    "complaints_answered": N_("Complaints answered in time"),
    "temperature_pass": N_("Indoor temperature pass rate"),
    "revisit_completion": N_("Revisits done"),
    "revisit_satisfaction": N_("Revisit satisfaction"),
    "repeat_repairs": N_("Repeat repairs within 30 days"),
    "hotline_feedback": N_("12345 feedback rate"),
    "hotline_closure": N_("12345 closure rate"),
    "hotline_satisfaction": N_("12345 satisfaction"),
}
"""English msgids: the API answers with them, the console translates them (:func:`translated`)."""


def translated(kpi: Kpi, gettext: Callable[..., str]) -> Kpi:
    """The KPI with its title and definition in the language of ``gettext`` (new-style: it fills
    ``%(name)s`` from keyword arguments), e.g. the console reader's."""
    msgid, variables = _DEFINITIONS[kpi.name]
    # The console's gettext answers Markup (variables escaped): kept, so a template does not escape twice.
    words = {key: gettext(value) for key, value in variables.items()}
    return msgspec.structs.replace(kpi, title=gettext(TITLES[kpi.name]), definition=gettext(msgid, **words))


def _n(expr: Any) -> Any:
    """sum(CASE WHEN expr THEN 1 ELSE 0 END): portable, FILTER-free."""
    return sa.func.coalesce(sa.func.sum(sa.case((expr, 1), else_=0)), 0)


def _bucket(column: Any, scope: Scope, dialect: str) -> Any:
    """1-based bucket index of a UTC column already restricted to [start, end)."""
    inner = scope.edges()[1:-1]
    if not inner:
        return sa.cast(sa.literal_column("1"), sa.Integer)
    if dialect == "postgresql":
        array = postgresql.array([sa.literal(e, postgresql.TIMESTAMP(timezone=True)) for e in inner])
        return sa.func.width_bucket(column, array) + 1
    whens = [(column < sa.literal(e, C.c.due_at.type), i) for i, e in enumerate(inner, 1)]
    return sa.case(*whens, else_=len(inner) + 1)


# Grouped by the output column's name: the bucket's parameters are bound once, in the select list.
BY_BUCKET = sa.literal_column("b")


@dataclass
class _Tally:
    numerator: int = 0
    denominator: int = 0


class _Series:
    """Numerators and denominators per bucket, summed to the period's figure."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.buckets = scope.buckets()
        self.tallies = [_Tally() for _ in self.buckets]

    def merge(self, other: "_Series") -> None:
        for mine, theirs in zip(self.tallies, other.tallies, strict=True):
            mine.numerator += theirs.numerator
            mine.denominator += theirs.denominator

    def add(self, bucket: int, numerator: int, denominator: int) -> None:
        tally = self.tallies[min(max(int(bucket), 1), len(self.tallies)) - 1]
        tally.numerator += int(numerator)
        tally.denominator += int(denominator)

    def kpi(
        self,
        name: str,
        *,
        target: float,
        unit: Literal["ratio", "score"] = "ratio",
        better: Literal["higher", "lower"] = "higher",
    ) -> Kpi:
        numerator = sum(t.numerator for t in self.tallies)
        denominator = sum(t.denominator for t in self.tallies)
        value = _ratio(numerator, denominator)
        meets = None
        if value is not None:
            meets = value >= target if better == "higher" else value <= target
        return Kpi(
            name=name,
            title=TITLES[name],
            unit=unit,
            value=value,
            numerator=numerator,
            denominator=denominator,
            target=target,
            better=better,
            meets_target=meets,
            definition=DEFINITIONS[name],
            series=[
                SeriesPoint(
                    start=first,
                    end=last,
                    value=_ratio(t.numerator, t.denominator),
                    numerator=t.numerator,
                    denominator=t.denominator,
                )
                for (first, last), t in zip(self.buckets, self.tallies, strict=True)
            ],
        )


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


# ---------------------------------------------------------------- the queries


_Window = tuple[datetime, datetime]
"""The UTC instants [from, to) a raw query counts: the period, or the days the rollup leaves."""


def _team(scope: Scope, column: Any) -> list[Any]:
    return [column == scope.team_id] if scope.team_id is not None else []


def _clock_kpis(
    session: Session, scope: Scope, dialect: str, window: _Window, policy: Any
) -> dict[str, _Series]:
    """One statement: the clocks counted from ``sla_clock`` alone (its copy of the order's company
    and kind; on PostgreSQL an index-only scan), less the unmet ones of orders cancelled before
    they ran out (few: found from the cancelled orders)."""
    bucket = _bucket(C.c.due_at, scope, dialect).label("b")
    complaint = (C.c.order_kind == WorkOrderKind.complaint.value).label("complaint")
    in_period = [C.c.company_id == scope.company_id, C.c.due_at >= window[0], C.c.due_at < window[1]]
    counted = (
        sa.select(
            C.c.clock,
            complaint,
            bucket,
            sa.func.count().filter(C.c.met_at <= C.c.due_at).label("on_time"),
            sa.func.count().label("counted"),
        )
        .where(*in_period, sa.or_(C.c.met_at.is_not(None), C.c.due_at < scope.now))
        .group_by(C.c.clock, sa.literal_column("complaint"), BY_BUCKET)
    )
    stopped = (
        sa.select(
            C.c.clock,
            complaint,
            _bucket(C.c.due_at, scope, dialect).label("b"),
            sa.literal(0).label("on_time"),
            (-sa.func.count()).label("counted"),
        )
        .select_from(C.join(O, O.c.id == C.c.order_id))
        .where(
            *in_period,
            O.c.company_id == scope.company_id,
            O.c.state == State.cancelled.value,
            O.c.closed_at <= C.c.due_at,
            C.c.met_at.is_(None),
            C.c.due_at < scope.now,
            *_team(scope, O.c.team_id),
        )
        .group_by(C.c.clock, sa.literal_column("complaint"), BY_BUCKET)
    )
    if scope.team_id is not None:  # a team's clocks: by their order's team, so through the order
        counted = counted.select_from(C.join(O, O.c.id == C.c.order_id)).where(O.c.team_id == scope.team_id)
    series = {name: _Series(scope) for name in (*CLOCK_KPIS, "complaints_answered")}
    for clock, is_complaint, b, on_time, n in session.execute(sa.union_all(counted, stopped)):
        if f"on_time_{clock}" in series:
            series[f"on_time_{clock}"].add(b, on_time, n)
        if is_complaint and clock == ClockName.answer.value:
            series["complaints_answered"].add(b, on_time, n)
    return series


def _temperature(
    session: Session, scope: Scope, dialect: str, window: _Window, policy: Any
) -> dict[str, _Series]:
    bucket = _bucket(M.c.measured_at, scope, dialect).label("b")
    source = M.join(D, D.c.id == M.c.id, isouter=True)
    team = []
    if scope.team_id is not None:
        # The order's team; a round without an order counts for the inspector's team.
        source = source.join(O, O.c.id == M.c.order_id, isouter=True).join(
            U, U.c.id == M.c.user_id, isouter=True
        )
        team = [sa.func.coalesce(O.c.team_id, U.c.team_id) == scope.team_id]
    query = (
        sa.select(bucket, _n(M.c.result == "pass"), sa.func.count())
        .select_from(source)
        .where(
            M.c.company_id == scope.company_id,
            M.c.measured_at >= window[0],
            M.c.measured_at < window[1],
            M.c.result.in_(("pass", "fail")),
            D.c.superseded_by_id.is_(None),
            *team,
        )
        .group_by(BY_BUCKET)
    )
    series = _Series(scope)
    for b, passed, counted in session.execute(query):
        series.add(b, passed, counted)
    return {"temperature_pass": series}


def _revisits(
    session: Session, scope: Scope, dialect: str, window: _Window, policy: Any
) -> dict[str, _Series]:
    bucket = _bucket(R.c.due_at, scope, dialect).label("b")
    done = R.c.state == "done"
    source: Any = R
    if scope.team_id is not None:
        source = R.join(O, O.c.id == R.c.order_id)
    scored = sa.and_(done, R.c.satisfaction.is_not(None))
    query = (
        sa.select(
            bucket,
            _n(done),
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.case((scored, R.c.satisfaction), else_=0)), 0),
            _n(scored),
        )
        .select_from(source)
        .where(
            R.c.company_id == scope.company_id,
            R.c.due_at >= window[0],
            R.c.due_at < window[1],
            sa.or_(done, R.c.due_at < scope.now),
            *_team(scope, O.c.team_id),
        )
        .group_by(BY_BUCKET)
    )
    completion, satisfaction = _Series(scope), _Series(scope)
    for b, n_done, counted, score_sum, n_scored in session.execute(query):
        completion.add(b, n_done, counted)
        satisfaction.add(b, score_sum, n_scored)
    return {"revisit_completion": completion, "revisit_satisfaction": satisfaction}


def _repeats(
    session: Session, scope: Scope, dialect: str, window: _Window, policy: Any
) -> dict[str, _Series]:
    later = O.alias("later")
    repeated = (
        sa.select(later.c.repeat_of_id.label("first_id"))
        .where(later.c.company_id == scope.company_id, later.c.repeat_of_id.is_not(None))
        .group_by(later.c.repeat_of_id)
        .subquery("repeated")
    )
    bucket = _bucket(O.c.completed_at, scope, dialect).label("b")
    query = (
        sa.select(bucket, _n(repeated.c.first_id.is_not(None)), sa.func.count())
        .select_from(O.join(repeated, repeated.c.first_id == O.c.id, isouter=True))
        .where(
            O.c.company_id == scope.company_id,
            O.c.completed_at >= window[0],
            O.c.completed_at < window[1],
            O.c.kind.in_([k.value for k in policy.revisit_kinds]),
            *_team(scope, O.c.team_id),
        )
        .group_by(BY_BUCKET)
    )
    series = _Series(scope)
    for b, repeats, counted in session.execute(query):
        series.add(b, repeats, counted)
    return {"repeat_repairs": series}


def _hotline(
    session: Session, scope: Scope, dialect: str, window: _Window, policy: Any
) -> dict[str, _Series]:
    answered = (
        sa.select(sa.literal(1))
        .select_from(C)
        .where(
            C.c.order_id == O.c.id,
            C.c.clock.in_((ClockName.contact.value, ClockName.answer.value, ClockName.arrive.value)),
            C.c.met_at.is_not(None),
        )
        .exists()
    )
    fed_back = sa.or_(O.c.completed_at.is_not(None), answered)
    score = sa.func.coalesce(R.c.satisfaction, O.c.satisfaction)
    bucket = _bucket(O.c.received_at, scope, dialect).label("b")
    query = (
        sa.select(
            bucket,
            sa.func.count(),
            _n(fed_back),
            _n(O.c.state == State.closed.value),
            sa.func.count(score),
            _n(score >= SATISFIED),
        )
        .select_from(O.join(R, R.c.order_id == O.c.id, isouter=True))
        .where(
            O.c.company_id == scope.company_id,
            O.c.source == Source.mayor_hotline.value,
            O.c.received_at >= window[0],
            O.c.received_at < window[1],
            O.c.state != State.cancelled.value,
            *_team(scope, O.c.team_id),
        )
        .group_by(BY_BUCKET)
    )
    feedback, closure, satisfied = _Series(scope), _Series(scope), _Series(scope)
    for b, counted, n_fed, n_closed, n_scored, n_satisfied in session.execute(query):
        feedback.add(b, n_fed, counted)
        closure.add(b, n_closed, counted)
        satisfied.add(b, n_satisfied, n_scored)
    return {"hotline_feedback": feedback, "hotline_closure": closure, "hotline_satisfaction": satisfied}


_Query = Callable[[Session, Scope, str, _Window, Any], dict[str, _Series]]
_GROUPS: tuple[tuple[tuple[str, ...], _Query], ...] = (
    ((*CLOCK_KPIS, "complaints_answered"), _clock_kpis),
    (("temperature_pass",), _temperature),
    (("revisit_completion", "revisit_satisfaction"), _revisits),
    (("repeat_repairs",), _repeats),
    (("hotline_feedback", "hotline_closure", "hotline_satisfaction"), _hotline),
)


def _kpi(name: str, series: _Series, policy: Any) -> Kpi:
    """The KPI of its summed series, with its target and sense."""
    if name in CLOCK_KPIS:
        return series.kpi(name, target=policy.on_time_target)
    if name == "complaints_answered":
        return series.kpi(name, target=COMPLAINTS_TARGET)
    if name == "temperature_pass":
        return series.kpi(name, target=policy.temperature_pass_target)
    if name == "revisit_completion":
        return series.kpi(name, target=REVISIT_COMPLETION_TARGET)
    if name == "revisit_satisfaction":
        return series.kpi(name, target=SATISFACTION_TARGET, unit="score")
    if name == "repeat_repairs":
        return series.kpi(name, target=REPEAT_TARGET, better="lower")
    return series.kpi(name, target=HOTLINE_TARGETS[name])


def rollup_days(scope: Scope) -> tuple[date, date] | None:
    """The period's days the rollup answers: whole local days that have ended by ``scope.now``
    (every clock and revisit due in them has run out), or None. The scope's filters (company, a
    team, local days) are all carried by the rollup; a filter it did not carry would return None
    here, and the raw queries would answer for the whole period."""
    today = scope.now.astimezone(scope.zone).date()
    last = today - timedelta(days=1)
    while scope.instant(last + timedelta(days=1)) > scope.now:  # zones whose midnight is odd
        last -= timedelta(days=1)
    last = min(last, scope.until)
    return (scope.since, last) if last >= scope.since else None


def _from_rollup(
    session: Session, scope: Scope, days: tuple[date, date], policy: Any, wanted: set[str]
) -> dict[str, _Series]:
    """The series of the rollup's days: one grouped read of ``kpi_delta`` for every KPI."""
    series = {name: _Series(scope) for name in wanted}
    step = 1 if scope.bucket == "day" else 7
    repeat_kinds = {rollup.REPEAT_PREFIX + k.value for k in policy.revisit_kinds}
    for ingredient, day, numerator, denominator in rollup.read(
        session, company_id=scope.company_id, team_id=scope.team_id, first=days[0], last=days[1]
    ):
        name = "repeat_repairs" if ingredient in repeat_kinds else ingredient
        if name in series:
            series[name].add((day - scope.since).days // step + 1, numerator, denominator)
    return series


def compute(
    session: Session, *, scope: Scope, names: Iterable[str] | None = None, use_rollup: bool = True
) -> KpiReport:
    """Every KPI (or only ``names``: just the queries they need) for the scope's period and team.

    Whole past days come from the rollup (``reports.rollup``), today and later days from the raw
    rows (the queries below, restricted to those days); ``use_rollup=False`` reads every day raw.
    """
    wanted = set(KPI_NAMES if names is None else names)
    company = session.get(Company, scope.company_id)
    assert company is not None
    policy = load_policy(company)
    dialect = session.get_bind().dialect.name
    days = rollup_days(scope) if use_rollup else None
    window = (scope.start, scope.end)
    found: dict[str, _Series] = {}
    if days is not None:
        found = _from_rollup(session, scope, days, policy, wanted)
        window = (scope.instant(days[1] + timedelta(days=1)), scope.end)
    if window[0] < window[1]:
        if dialect == "postgresql":
            # These aggregates read up to millions of rows at a cost far above jit_above_cost: JIT
            # compilation (inlining, optimisation) took longer than the scans it was meant to speed up.
            session.execute(sa.text("SET LOCAL jit = off"))
        for group, query in _GROUPS:
            if wanted & set(group):
                for name, raw in query(session, scope, dialect, window, policy).items():
                    if name in found:
                        found[name].merge(raw)
                    else:
                        found[name] = raw
    return KpiReport(
        company_id=scope.company_id,
        team_id=scope.team_id,
        since=scope.since,
        until=scope.until,
        timezone=scope.timezone,
        bucket="day" if scope.bucket == "day" else "week",
        generated_at=scope.now,
        kpis=[_kpi(name, found[name], policy) for name in KPI_NAMES if name in wanted],
    )
