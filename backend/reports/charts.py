"""A KPI as a small SVG chart (about 320×120), drawn on the server from its numbers.

The geometry is worked out here; ``templates/reports/kpi.svg.j2`` writes the markup with Jinja's
autoescaping, so any text (a team name, a title) is escaped. :func:`render` returns ``Markup``:
safe to put straight into a console page's template. The words (value in words, target label)
are English msgids; pass the reader's new-style ``gettext`` (and a :func:`kpis.translated` KPI)
to have them in the console's language.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from backend.console import N_
from backend.reports.schemas import Kpi

__all__ = ("HEIGHT", "WIDTH", "describe", "format_value", "render")

WIDTH, HEIGHT = 320, 120
_LEFT, _RIGHT, _TOP, _BOTTOM = 34, 314, 8, 104

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True, enabled_extensions=("j2", "svg")),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class _Bar:
    x: float
    y: float
    w: float
    h: float
    fill: str
    label: str


Gettext = Callable[..., Any]


def _english(message: str, **variables: Any) -> str:
    return message % variables if variables else message


def format_value(kpi: Kpi, value: float | None, gettext: Gettext = _english) -> str:
    """A KPI's figure as shown: a percentage with one decimal, a score with two."""
    if value is None:
        return gettext(N_("no data"))  # Markup from the console's gettext: not escaped twice
    if kpi.unit == "score":
        return f"{value:.2f}"
    return f"{value * 100:.1f}%"


def _range(kpi: Kpi) -> tuple[float, float]:
    """The y axis: a score from 1 to 5; a rate from a little below the lowest bar or the target to 100 %
    (to 0 and a little above for lower-is-better rates)."""
    if kpi.unit == "score":
        return 1.0, 5.0
    values = [p.value for p in kpi.series if p.value is not None] + [kpi.target]
    if kpi.better == "lower":
        top = max(values) * 1.25
        return 0.0, min(1.0, max(top, 0.01))
    low = min(values)
    bottom = max(0.0, (int(low * 20) / 20) - 0.05)  # 5-point steps below the lowest
    return bottom, 1.0


def describe(kpi: Kpi, gettext: Gettext = _english) -> str:
    """The chart in words, for its title and aria-label."""
    value = format_value(kpi, kpi.target, gettext)
    if kpi.better == "higher":
        target = gettext(N_("target at least %(value)s"), value=value)
    else:
        target = gettext(N_("target at most %(value)s"), value=value)
    if kpi.value is None:
        return gettext(N_("%(title)s: no data for the period (%(target)s)."), title=kpi.title, target=target)
    if kpi.unit == "score":
        of = gettext(N_("mean of %(count)s scores"), count=kpi.denominator)
    else:
        of = gettext(
            N_("%(numerator)s of %(denominator)s"), numerator=kpi.numerator, denominator=kpi.denominator
        )
    if kpi.meets_target:
        verdict = gettext(N_("meets the %(target)s"), target=target)
    else:
        verdict = gettext(N_("misses the %(target)s"), target=target)
    return gettext(
        N_("%(title)s: %(value)s (%(of)s), %(verdict)s."),
        title=kpi.title,
        value=format_value(kpi, kpi.value, gettext),
        of=of,
        verdict=verdict,
    )


def render(kpi: Kpi, gettext: Gettext = _english) -> Markup:
    """The KPI's chart as an ``<svg>`` element: bars per day or week, the target as a dashed line."""
    low, high = _range(kpi)
    span = (high - low) or 1.0

    def y_of(value: float) -> float:
        clamped = min(max(value, low), high)
        return round(_BOTTOM - (clamped - low) / span * (_BOTTOM - _TOP), 1)

    n = max(len(kpi.series), 1)
    slot = (_RIGHT - _LEFT - 2) / n
    width = max(round(slot * 0.8, 1), 1.0)
    bars = []
    for i, point in enumerate(kpi.series):
        if point.value is None:
            continue
        top = y_of(point.value)
        good = point.value >= kpi.target if kpi.better == "higher" else point.value <= kpi.target
        bars.append(
            _Bar(
                x=round(_LEFT + 1 + i * slot + (slot - width) / 2, 1),
                y=top,
                w=width,
                h=round(_BOTTOM - top, 1),
                fill="#2e86c1" if good else "#e67e22",
                label=f"{point.start.isoformat()}–{point.end.isoformat()}: {format_value(kpi, point.value)} "
                f"({point.numerator}/{point.denominator})",
            )
        )
    first = kpi.series[0].start.strftime("%m-%d") if kpi.series else ""
    last = kpi.series[-1].end.strftime("%m-%d") if kpi.series else ""
    chart = {
        "name": kpi.name,
        "width": WIDTH,
        "height": HEIGHT,
        "left": _LEFT,
        "right": _RIGHT,
        "top": _TOP,
        "bottom": _BOTTOM,
        "summary": describe(kpi, gettext),
        "bars": bars,
        "target_y": y_of(kpi.target),
        "target_label": gettext(N_("target %(value)s"), value=format_value(kpi, kpi.target, gettext)),
        "y_min_label": format_value(kpi, low) if kpi.unit == "score" else f"{low * 100:.0f}%",
        "y_max_label": format_value(kpi, high) if kpi.unit == "score" else f"{high * 100:.0f}%",
        "x_first_label": first,
        "x_last_label": last,
    }
    return Markup(_env.get_template("reports/kpi.svg.j2").render(c=chart).strip())
