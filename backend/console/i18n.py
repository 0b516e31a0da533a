"""The console's languages: gettext catalogues (``locale/<lang>/LC_MESSAGES/messages.po``) read
with Babel when the app is built (no compile step), and dates in the company's zone.

Extract and update the catalogues after changing templates or messages:
``heatcrew console messages`` (pybabel extract with ``babel.cfg``, then update of every ``.po``).
"""

import io
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from markupsafe import Markup, escape

from backend.console.messages import BY_CODE

__all__ = ("BABEL_LOCALES", "LOCALE_DIRS", "format_time", "gettext_callables", "translations")

LOCALE_DIRS: list[Path] = [Path(__file__).parent / "locale"]
"""Where catalogues are read from; a package with its own messages may append its directory
(its catalogue is merged into the console's, later directories winning)."""
BABEL_LOCALES = {"zh": "zh_Hans_CN", "en": "en"}


@cache
def translations(locale: str) -> Translations:
    merged: Translations | None = None
    for directory in LOCALE_DIRS:
        po = directory / locale / "LC_MESSAGES" / "messages.po"
        if not po.exists():
            continue
        with po.open("rb") as source:
            catalog = read_po(source, locale=BABEL_LOCALES.get(locale, locale))
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        table = Translations(buffer)
        # The first catalogue is the base: it brings the language's plural rule.
        merged = table if merged is None else merged.merge(table)
    return merged if merged is not None else Translations()


def gettext_callables(locale: str) -> dict[str, Callable[..., Any]]:
    """``gettext``/``ngettext`` for one render, new-style (``{% trans %}`` and ``_()``, with
    ``%(name)s`` placeholders filled and escaped), as jinja2's own new-style callables are."""
    table = translations(locale)

    def gettext(message: str, **variables: Any) -> str:
        return Markup(table.gettext(message)) % variables

    def ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
        variables.setdefault("num", n)
        return Markup(table.ngettext(singular, plural, n)) % variables

    def message(text: str) -> str:
        """A message known only when rendered (an error's): translated if the catalogue has it,
        always escaped and never formatted, for it may carry what a request sent."""
        return escape(table.gettext(text))

    def error_text(code: str, text: str) -> str:
        """An error's message in the reader's language: its own translation, else (not in English)
        the translation for its code, else as it came (``backend.console.messages``)."""
        translated = table.gettext(text)
        if translated == text and locale != "en" and code in BY_CODE:
            translated = table.gettext(BY_CODE[code])
        return escape(translated)

    return {"gettext": gettext, "ngettext": ngettext, "message_text": message, "error_text": error_text}


def format_time(value: datetime | None, *, timezone: str, locale: str, format: str = "short") -> str:
    """``value`` (aware UTC) in the company's zone, in the reader's language."""
    if value is None:
        return "—"
    return format_datetime(
        value,
        format=format,
        tzinfo=ZoneInfo(timezone),
        locale=Locale.parse(BABEL_LOCALES.get(locale, locale)),
    )
