"""A KPI as a small SVG chart (about 320×120), drawn on the server from its numbers.

The geometry is worked out here; ``templates/reports/kpi.svg.j2`` writes the markup with Jinja's
autoescaping, so any text (a team name, a title) is escaped. :func:`render` returns ``Markup``:
safe to put straight into a console page's template.
"""

from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from backend.reports.schemas import Kpi

__all__ = ("HEIGHT", "WIDTH", "describe", "render")

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


def _format(kpi: Kpi, value: float | None) -> str:
    if value is None:
        return "no data"
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


def describe(kpi: Kpi) -> str:
    """The chart in words, for its title and aria-label."""
    target = f"target {'at least' if kpi.better == 'higher' else 'at most'} {_format(kpi, kpi.target)}"
    if kpi.value is None:
        return f"{kpi.title}: no data for the period ({target})."
    verdict = "meets" if kpi.meets_target else "misses"
    if kpi.unit == "score":
        of = f"mean of {kpi.denominator} scores"
    else:
        of = f"{kpi.numerator} of {kpi.denominator}"
    return f"{kpi.title}: {_format(kpi, kpi.value)} ({of}), {verdict} the {target}."


def render(kpi: Kpi) -> Markup:
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
                label=f"{point.start.isoformat()}–{point.end.isoformat()}: {_format(kpi, point.value)} "
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
        "summary": describe(kpi),
        "bars": bars,
        "target_y": y_of(kpi.target),
        "target_label": f"target {_format(kpi, kpi.target)}",
        "y_min_label": _format(kpi, low) if kpi.unit == "score" else f"{low * 100:.0f}%",
        "y_max_label": _format(kpi, high) if kpi.unit == "score" else f"{high * 100:.0f}%",
        "x_first_label": first,
        "x_last_label": last,
    }
    return Markup(_env.get_template("reports/kpi.svg.j2").render(c=chart).strip())
