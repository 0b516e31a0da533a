"""The console's catalogues hold every message the templates and code mark, and the Chinese one
translates each (``heatcrew console messages`` then translating keeps this green)."""

from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from backend.console.i18n import gettext_callables

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "backend" / "console" / "locale"


def _marked() -> set[str]:
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT / "backend"), method_map, options_map, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def _catalogue(lang: str) -> dict[str, object]:
    with (LOCALE / lang / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source)
    return {(m.id if isinstance(m.id, str) else m.id[0]): m.string for m in catalog if m.id}


def test_every_marked_message_is_in_both_catalogues_and_translated_in_chinese() -> None:
    marked = _marked()
    assert "SLA board" in marked and "Mayor hotline 12345" in marked
    for lang in ("zh", "en"):
        missing = marked - set(_catalogue(lang))
        assert not missing, f"{lang}: run `heatcrew console messages`: {sorted(missing)}"
    untranslated = sorted(m for m, s in _catalogue("zh").items() if not (s if isinstance(s, str) else s[0]))
    assert not untranslated, untranslated


def test_translations_are_new_style_and_escape_their_variables() -> None:
    zh, en = gettext_callables("zh"), gettext_callables("en")
    assert zh["gettext"]("SLA board") == "时限看板"
    assert en["gettext"]("SLA board") == "SLA board"
    assert zh["ngettext"]("%(num)d open order", "%(num)d open orders", 3) == "3 个未完成工单"
    assert en["ngettext"]("%(num)d open order", "%(num)d open orders", 1) == "1 open order"
    assert str(en["gettext"]("Code")) == "Code"
    assert "&lt;b&gt;" in str(en["gettext"]("%(x)s", x="<b>"))
