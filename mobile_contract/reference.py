"""Reference data the phone keeps offline: kinds of work, sources, the SLA policy."""

from enum import StrEnum
from typing import Annotated

import msgspec

from mobile_contract.actions import PhotoPurpose

__all__ = ("ClockName", "ClockTarget", "SlaPolicy", "Source", "WorkOrderKind", "default_sla_policy")


class WorkOrderKind(StrEnum):
    leak = "leak"  # 跑冒滴漏
    repair = "repair"  # 报修
    routine_maintenance = "routine_maintenance"  # 日常维修
    pipe_burst = "pipe_burst"  # 爆管
    temperature_complaint = "temperature_complaint"  # 室温投诉
    meter_service = "meter_service"  # 换表/校表
    heating_stop_resume = "heating_stop_resume"  # 报停/复热
    complaint = "complaint"  # 投诉
    report = "report"  # 举报


class Source(StrEnum):
    hotline = "hotline"
    complaint = "complaint"
    mayor_hotline = "mayor_hotline"  # 12345
    media = "media"
    inspection = "inspection"
    internal = "internal"


class ClockName(StrEnum):
    accept = "accept"  # the responsible team accepts (forwarded orders)
    contact = "contact"  # the resident is reached and a time agreed
    arrive = "arrive"  # someone is at the door / on site
    resolve = "resolve"  # the work is completed
    answer = "answer"  # the resident is given an answer (complaints, reports)
    revisit = "revisit"  # the follow-up after a repair


Minutes = Annotated[int, msgspec.Meta(ge=1, le=60 * 24 * 60)]
WorkingDays = Annotated[int, msgspec.Meta(ge=1, le=60)]


class ClockTarget(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Either elapsed minutes or working days on the Chinese calendar."""

    minutes: Minutes | None = None
    working_days: WorkingDays | None = None

    def __post_init__(self) -> None:
        if (self.minutes is None) == (self.working_days is None):
            raise ValueError("give exactly one of minutes or working_days")


def _t(minutes: int | None = None, working_days: int | None = None) -> ClockTarget:
    return ClockTarget(minutes=minutes, working_days=working_days)


def _default_photos() -> dict[WorkOrderKind, list[PhotoPurpose]]:
    p = PhotoPurpose
    return {
        WorkOrderKind.leak: [p.before, p.after],
        WorkOrderKind.repair: [p.before, p.after],
        WorkOrderKind.routine_maintenance: [p.after],
        WorkOrderKind.pipe_burst: [p.before, p.after, p.site_cleared],
        WorkOrderKind.meter_service: [p.meter],
        WorkOrderKind.heating_stop_resume: [p.seal],
    }


def _default_kinds() -> dict[str, dict[str, ClockTarget]]:
    hour, day = 60, 24 * 60
    return {
        "leak": {"arrive": _t(30), "resolve": _t(day)},
        "repair": {"contact": _t(30), "arrive": _t(2 * hour), "resolve": _t(day)},
        "routine_maintenance": {"arrive": _t(60), "resolve": _t(day)},
        "pipe_burst": {"arrive": _t(40), "resolve": _t(day)},
        "temperature_complaint": {"arrive": _t(day), "answer": _t(3 * day)},
        "meter_service": {"contact": _t(30), "resolve": _t(day)},
        "heating_stop_resume": {"contact": _t(30), "resolve": _t(day)},
        "complaint": {"answer": _t(working_days=3)},
        "report": {"answer": _t(working_days=7)},
    }


class SlaPolicy(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A company's service-level rules; the defaults are the heating-service codes' numbers."""

    kinds: dict[WorkOrderKind, dict[ClockName, ClockTarget]] = msgspec.field(default_factory=_default_kinds)
    """Clocks per kind of order, started when the centre received the order."""
    forwarded_accept_minutes: Minutes = 30
    """Forwarded orders (转办): the responsible team accepts within this."""
    urgent_resolve_minutes: Minutes = 12 * 60
    """Major events (government, media, 12345, safety) are handled within this."""
    revisit_kinds: list[WorkOrderKind] = msgspec.field(
        default_factory=lambda: [
            WorkOrderKind.leak,
            WorkOrderKind.repair,
            WorkOrderKind.routine_maintenance,
            WorkOrderKind.pipe_burst,
            WorkOrderKind.meter_service,
        ]
    )
    """Kinds whose completion creates a revisit."""
    revisit_minutes: Minutes = 48 * 60
    key_customer_revisit_minutes: Minutes = 7 * 24 * 60
    repeat_fault_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 30
    """A new order at the same household within this many days of a completed one is a repeat."""
    arrival_radius_m: Annotated[int, msgspec.Meta(ge=10, le=5000)] = 200
    """A door check-in further than this (beyond its GPS accuracy) is not verified."""
    design_outdoor_min_c: Annotated[float, msgspec.Meta(ge=-60, le=10)] = -20.0
    """The heating system's design outdoor minimum: colder than this, the indoor standard does not apply."""
    required_photos: dict[WorkOrderKind, list[PhotoPurpose]] = msgspec.field(default_factory=_default_photos)
    """Photos an order of each kind needs before it can be completed as fixed or temporarily fixed."""
    on_time_target: float = 0.99
    temperature_pass_target: float = 0.97


def default_sla_policy() -> SlaPolicy:
    return SlaPolicy()
