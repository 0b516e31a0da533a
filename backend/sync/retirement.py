"""Retiring an action version: announced in the answers first, then refused from its sunset.

The schedule is the contract's (``mobile_contract.actions.DEPRECATED``). A push that carries a
scheduled version is answered with the headers of RFC 9745 and RFC 8594, whether the day is still
to come or past:

- ``Deprecation: @<unix seconds>`` — when the version stopped being current;
- ``Sunset: <HTTP-date>`` — from when the server refuses it;
- ``Link: <url>; rel="deprecation"`` — where to read about it, when ``HEATCREW_DEPRECATION_DOCS_URL``
  is set.

A batch that carries several scheduled versions is announced with the one that is retired first.
From the sunset (00:00 UTC of ``sunset_on``, by the server's clock) the version is answered
``rejected`` / ``unsupported_action_version``, naming the versions still accepted.
"""

from collections.abc import Iterable
from datetime import datetime
from email.utils import format_datetime

from litestar.datastructures import ResponseHeader

from mobile_contract.actions import DEPRECATED, Retirement
from mobile_contract.sync import ActionEnvelope

__all__ = ("DOCUMENTED_HEADERS", "accepted_versions", "announcement", "is_retired")

# For the OpenAPI document: sent only when the batch carries a version being retired.
DOCUMENTED_HEADERS = [
    ResponseHeader(
        name="Deprecation",
        documentation_only=True,
        description="RFC 9745: `@<unix seconds>` when an action version in the batch stopped being current.",
    ),
    ResponseHeader(
        name="Sunset",
        documentation_only=True,
        description="RFC 8594: the HTTP-date from which that version is refused "
        "(`unsupported_action_version`).",
    ),
    ResponseHeader(
        name="Link",
        documentation_only=True,
        description='`<url>; rel="deprecation"`: where the retirement is explained, if the deployment says.',
    ),
]


def is_retired(action_type: str, version: int, now: datetime) -> bool:
    retirement = DEPRECATED.get((action_type, version))
    return retirement is not None and now >= retirement.sunset_at


def accepted_versions(known: Iterable[int], action_type: str, now: datetime) -> list[int]:
    """The versions of a type the server still takes at ``now``."""
    return [v for v in known if not is_retired(action_type, v, now)]


def announcement(actions: Iterable[ActionEnvelope], *, docs_url: str | None) -> dict[str, str]:
    """The response headers announcing the retirement of what this batch carries; none if nothing."""
    scheduled = [r for e in actions if (r := DEPRECATED.get((e.type, e.v))) is not None]
    if not scheduled:
        return {}
    first: Retirement = min(scheduled, key=lambda r: (r.sunset_on, r.deprecated_on))
    headers = {
        "Deprecation": f"@{int(first.deprecated_at.timestamp())}",
        "Sunset": format_datetime(first.sunset_at, usegmt=True),
    }
    if docs_url:
        headers["Link"] = f'<{docs_url}>; rel="deprecation"; type="text/html"'
    return headers
