"""Signed documents as PDF: service receipts, damage slips, temperature records, meter swaps, stop/resume.

A pure function over plain data: the caller reads the database, formats every value in the
company's zone and computes the content hash; :func:`render_pdf` only lays it out. A4, one
embedded CJK font (subset, so the file shows the same Chinese on any viewer without fonts of its
own), long text wrapped, fields and tables flowing onto further pages, and on every page a footer
with the content hash, the reference and how to verify it, so one page torn off still identifies
what it belongs to. Output is byte-for-byte reproducible for the same input and font.

The layout itself is ``pdf_layout`` (ReportLab), imported with a worker's first document: a worker
that prints none never holds ReportLab or the parsed font (about 25 MiB together).

Font lookup, first found wins: ``HEATCREW_PDF_FONT`` (a TrueType ``.ttf``/``.ttc`` file; when set
it must work, there is no silent fallback), Kurinto Sans SC from the ``weblate-fonts`` package (a
dependency, so ``pip install`` brings it), then common Debian CJK fonts. PostScript-flavoured
OpenType (``.otf``, e.g. Noto Sans CJK) is not supported by ReportLab.
"""

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from backend.errors import HeatCrewError

__all__ = (
    "FONT_ENV_VAR",
    "PdfDocument",
    "PdfFont",
    "PdfFontMissing",
    "PdfTable",
    "SignatureBlock",
    "check_font",
    "find_font",
    "render_pdf",
)

#: Path of a TrueType CJK font to use instead of the bundled one.
FONT_ENV_VAR = "HEATCREW_PDF_FONT"

# Inside the weblate-fonts wheel (OFL-1.1): full GB 2312 coverage, TrueType outlines, ~10 MB. Only
# the regular face: every face a worker holds parsed costs it ~14 MiB (the cmap and metrics of
# 30,000 glyphs), so headings and labels stand out by size, colour and rules, not by a bold face.
_BUNDLED_REGULAR = "static/weblate_fonts/kurinto/ttf/KurintoSansSC-Rg.ttf"

# Debian: fonts-wqy-microhei, fonts-wqy-zenhei, fonts-droid-fallback (all TrueType outlines).
_SYSTEM_FONTS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
)

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class PdfFontMissing(HeatCrewError):
    """503: no usable CJK font, so no document can be rendered; the message says what was tried."""

    status = 503
    code = "pdf_font_missing"
    default_message = "No CJK font is available to render documents."


@dataclass(frozen=True, slots=True)
class SignatureBlock:
    """One party's signature as it will be printed.

    Exactly one outcome: ``image_png`` (the drawn signature), ``refused_reason`` (printed as
    "拒签 refused: <reason>"), or neither (printed as not yet signed).
    """

    role_label: str
    """Who signs, e.g. "住户 Resident", "测温人员 Inspector"."""
    name: str
    """Full real name as entered at signing."""
    signed_at: str
    """When, already formatted in the company's zone (or when the refusal was recorded)."""
    image_png: bytes | None = None
    refused_reason: str | None = None

    def __post_init__(self) -> None:
        if self.image_png is not None and self.refused_reason is not None:
            raise ValueError(f"signature of {self.role_label!r} has both an image and a refusal")


@dataclass(frozen=True, slots=True)
class PdfTable:
    """A grid such as rooms and their three readings; the header repeats on every page."""

    header: Sequence[str]
    rows: Sequence[Sequence[str]]

    def __post_init__(self) -> None:
        if not self.header:
            raise ValueError("a table needs at least one column")
        for number, row in enumerate(self.rows, start=1):
            if len(row) != len(self.header):
                raise ValueError(f"table row {number} has {len(row)} cells, the header {len(self.header)}")


@dataclass(frozen=True, slots=True)
class PdfDocument:
    """Everything printed on a signed document, composed by the caller from the database."""

    title: str
    """E.g. "入户测温记录 Indoor temperature record"."""
    company: str
    reference: str
    """The document's own number, printed in the header and on every page's footer."""
    fields: Sequence[tuple[str, str]]
    """(label, value) pairs in print order; values may hold newlines and wrap freely."""
    content_sha256: str
    """Lower-case hex SHA-256 of the signed content, printed on every page."""
    verify_hint: str
    """How a reader checks the document, e.g. where to enter the reference and hash."""
    issued_at: str
    """When this copy was produced, already formatted in the company's zone."""
    table: PdfTable | None = None
    signatures: Sequence[SignatureBlock] = field(default=())
    superseded_note: str | None = None
    """Correction notice shown boxed under the title ("本记录已被 … 取代 Superseded by …" or
    "更正 … Corrects …", with the reason); signed records are never edited, only superseded."""

    def __post_init__(self) -> None:
        if not _SHA256_RE.fullmatch(self.content_sha256):
            raise ValueError("content_sha256 must be 64 lower-case hex digits")


@dataclass(frozen=True, slots=True)
class PdfFont:
    """The font files to embed: ``bold`` is ``None`` when the regular face serves for both, as it
    does for every font :func:`find_font` finds (a second face costs each worker ~14 MiB)."""

    regular: Path
    bold: Path | None = None


def find_font() -> PdfFont:
    """Locate the CJK font (see the module docstring for the order).

    Raises:
        PdfFontMissing: ``HEATCREW_PDF_FONT`` names a file that does not exist, or nothing was found.
    """
    override = os.environ.get(FONT_ENV_VAR, "").strip()
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise PdfFontMissing(f"{FONT_ENV_VAR} names {str(path)!r}, which is not a file.")
        return PdfFont(regular=path)
    tried: list[str] = []
    try:
        package = resources.files("weblate_fonts")
    except ModuleNotFoundError:
        tried.append("the weblate-fonts package (not installed)")
    else:
        regular = Path(str(package / _BUNDLED_REGULAR))
        if regular.is_file():
            return PdfFont(regular=regular)
        tried.append(str(regular))
    for path in _SYSTEM_FONTS:
        if path.is_file():
            return PdfFont(regular=path)
        tried.append(str(path))
    raise PdfFontMissing(
        f"No CJK font found; set {FONT_ENV_VAR} to a TrueType font file.", detail={"tried": tried}
    )


def render_pdf(doc: PdfDocument, *, font: PdfFont | None = None) -> bytes:
    """Lay out ``doc`` on A4 pages and return the PDF bytes.

    Args:
        doc: What to print.
        font: The font files to embed; default :func:`find_font`.

    Raises:
        PdfFontMissing: No font, or the file is not a TrueType font ReportLab can embed.
        ValueError: A signature image is not a readable PNG, or the footer text would fill the page.
    """
    from backend.evidence import pdf_layout  # here: ReportLab only in a worker that prints

    return pdf_layout.render(doc, font or find_font())


# The first four bytes of the files ReportLab embeds: TrueType outlines, alone or in a collection.
# PostScript-flavoured OpenType starts with b"OTTO".
_TRUETYPE_STARTS = (b"\x00\x01\x00\x00", b"true", b"ttcf")


def check_font() -> bool:
    """At start: whether a font is there to print with (found and of a kind ReportLab embeds, not
    parsed: the first document of a worker parses it, ~0.2 s). A missing or unusable font is
    logged, not fatal: PDFs answer ``pdf_font_missing`` and everything else works."""
    try:
        font = find_font()
        for path in (font.regular, font.bold):
            if path is not None and _start_of(path) not in _TRUETYPE_STARTS:
                raise PdfFontMissing(f"{path} is not a TrueType font (a .ttf or .ttc file).")
    except PdfFontMissing as exc:
        logging.getLogger("heatcrew.pdf").warning("no font for PDFs: %s", exc.message)
        return False
    return True


def _start_of(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            return file.read(4)
    except OSError:
        return b""
