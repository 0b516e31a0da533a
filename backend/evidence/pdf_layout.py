"""The layout of a signed document with ReportLab (see ``backend.evidence.pdf``, which composes the
data and imports this module with a worker's first document)."""

import io
import mmap
import threading
from functools import partial
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from PIL import Image as PILImage
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    Image,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from backend.evidence.pdf import PdfDocument, PdfFont, PdfFontMissing, PdfTable, SignatureBlock

__all__ = ("render",)

_PAGE_WIDTH, _PAGE_HEIGHT = A4
_MARGIN = 18 * mm
_CONTENT_WIDTH = _PAGE_WIDTH - 2 * _MARGIN
_LABEL_WIDTH = 50 * mm
_SIGNATURE_BOX = (70 * mm, 28 * mm)
_INK = colors.HexColor("#1a1a1a")
_MUTED = colors.HexColor("#5a5a5a")
_RULE = colors.HexColor("#9a9a9a")
_WARN = colors.HexColor("#a11d1d")


def render(doc: PdfDocument, font: PdfFont) -> bytes:
    """``doc`` on A4 pages, as PDF bytes (``backend.evidence.pdf.render_pdf``)."""
    with _LOCK:
        regular = _register(font.regular)
        bold = _register(font.bold) if font.bold else regular
        styles = _Styles(regular, bold)
        footer = _Footer(doc, styles)
        if footer.height > _PAGE_HEIGHT / 4:
            raise ValueError("title, reference and verify hint are too long for the page footer")
        buffer = io.BytesIO()
        bottom = _MARGIN + footer.height + 5 * mm
        body = Frame(
            _MARGIN, bottom, _CONTENT_WIDTH, _PAGE_HEIGHT - _MARGIN - bottom,
            leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0,
        )  # fmt: skip
        template = BaseDocTemplate(
            buffer,
            pagesize=A4,
            pageTemplates=[PageTemplate("page", frames=[body])],
            title=doc.title,
            author=doc.company,
            subject=doc.reference,
            creator="HeatCrew",
            # Otherwise every page names Helvetica, a font the file does not carry.
            initialFontName=regular,
            # Fixed creation date and document id: the same input gives the same bytes.
            invariant=True,
        )
        template.build(_story(doc, styles), canvasmaker=partial(_FooterCanvas, footer=footer))
    return buffer.getvalue()


# ReportLab keeps registered fonts and per-document subset state in module globals; one render at a
# time keeps that simple (a one-page receipt takes about 20 ms).
_LOCK = threading.Lock()
_REGISTERED: dict[Path, str] = {}


def _register(path: Path) -> str:
    """Register a font file once per process (parsing a CJK font takes ~0.2 s); return its name."""
    path = path.resolve()
    name = _REGISTERED.get(path)
    if name is None:
        name = f"HeatCrewPdf{len(_REGISTERED)}"
        try:
            # Collections (.ttc): the first face, which is the Simplified Chinese one in WenQuanYi.
            pdfmetrics.registerFont(TTFont(name, _MappedFontFile(path), subfontIndex=0))
        except (TTFError, OSError, ValueError) as exc:  # ValueError: an empty file cannot be mapped
            raise PdfFontMissing(f"{path} is not a usable TrueType font: {exc}") from exc
        _REGISTERED[path] = name
    return name


class _MappedFontFile:
    """A font file as ReportLab reads a file object (``name``, ``read()``), whose bytes are a
    read-only memory map instead of a copy.

    ReportLab keeps the whole file (~10 MB for Kurinto) to cut subsets from. Read into a bytes
    object that is ~10 MiB private to every worker; mapped, only the pages it has touched (the
    tables parsed at start, the glyphs printed since) are resident, and those are the page cache's,
    shared by every worker. Package upgrades replace font files (new inode), never rewrite them in
    place, so the map stays valid for the process's life.
    """

    def __init__(self, path: Path) -> None:
        self.name = str(path)  # ReportLab names the embedded font file after it

    def read(self) -> mmap.mmap:
        with open(self.name, "rb") as file:
            return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)


class _Styles:
    __slots__ = (
        "cell",
        "font",
        "footer",
        "header_cell",
        "label",
        "meta",
        "notice",
        "refused",
        "section",
        "title",
        "value",
    )

    def __init__(self, regular: str, bold: str) -> None:
        self.font = regular
        # wordWrap="CJK" breaks between Han characters and at spaces in Latin text.
        base = ParagraphStyle(
            "base", fontName=regular, fontSize=10, leading=14, textColor=_INK, wordWrap="CJK"
        )
        self.title = ParagraphStyle("title", base, fontName=bold, fontSize=16, leading=21, spaceAfter=2 * mm)
        self.meta = ParagraphStyle("meta", base, fontSize=9, leading=12, textColor=_MUTED)
        self.notice = ParagraphStyle("notice", base, textColor=_WARN)
        self.section = ParagraphStyle(
            "section", base, fontName=bold, fontSize=12, leading=16, spaceBefore=5 * mm, spaceAfter=2 * mm,
            keepWithNext=1,
        )  # fmt: skip
        self.label = ParagraphStyle("label", base, fontName=bold, textColor=_MUTED)
        self.value = base
        self.cell = ParagraphStyle("cell", base, fontSize=9, leading=12)
        self.header_cell = ParagraphStyle("header_cell", self.cell, fontName=bold)
        self.refused = ParagraphStyle("refused", base, textColor=_WARN)
        self.footer = ParagraphStyle("footer", base, fontSize=7.5, leading=10, textColor=_MUTED)


def _text(value: str) -> str:
    """Plain text to Paragraph markup: nothing in it is taken as a tag, newlines are kept."""
    return escape(value).replace("\r\n", "\n").replace("\n", "<br/>")


def _story(doc: PdfDocument, styles: _Styles) -> list[Flowable]:
    story: list[Flowable] = [
        Paragraph(_text(doc.company), styles.meta),
        Paragraph(_text(doc.title), styles.title),
        Paragraph(_text(f"编号 Ref: {doc.reference} · 签发 Issued: {doc.issued_at}"), styles.meta),
        Spacer(0, 4 * mm),
    ]
    if doc.superseded_note:
        notice = [[Paragraph(_text(doc.superseded_note), styles.notice)]]
        box = [("BOX", (0, 0), (-1, -1), 1, _WARN), ("BACKGROUND", (0, 0), (-1, -1), colors.whitesmoke)]
        story += [_table(notice, styles, box, colWidths=[_CONTENT_WIDTH]), Spacer(0, 4 * mm)]
    if doc.fields:
        rows = [
            [Paragraph(_text(label), styles.label), Paragraph(_text(value), styles.value)]
            for label, value in doc.fields
        ]
        lines = [
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LINEBELOW", (0, 0), (-1, -1), 0.25, _RULE),
            ("LEFTPADDING", (0, 0), (0, -1), 0),
        ]
        # splitInRow: a value longer than a page continues on the next one instead of failing layout.
        story.append(
            _table(rows, styles, lines, colWidths=[_LABEL_WIDTH, _CONTENT_WIDTH - _LABEL_WIDTH], splitInRow=1)
        )
    if doc.table:
        story.append(_grid(doc.table, styles))
    if doc.signatures:
        story.append(Paragraph("签字 Signatures", styles.section))
        story += [_signature(signature, styles) for signature in doc.signatures]
    return story


def _table(
    rows: list[list[Flowable]], styles: _Styles, commands: list[tuple[Any, ...]], **options: Any
) -> Table:
    # FONTNAME: otherwise each table names Helvetica, a font the file does not carry.
    table = Table(rows, **options)
    table.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), styles.font), *commands]))
    return table


def _grid(table: PdfTable, styles: _Styles) -> Table:
    width = _CONTENT_WIDTH / len(table.header)
    rows = [[Paragraph(_text(cell), styles.header_cell) for cell in table.header]]
    rows += [[Paragraph(_text(cell), styles.cell) for cell in row] for row in table.rows]
    lines = [
        ("GRID", (0, 0), (-1, -1), 0.5, _RULE),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#ececec")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    widths = [width] * len(table.header)
    return _table(rows, styles, lines, colWidths=widths, repeatRows=1, splitInRow=1, spaceBefore=5 * mm)


def _signature(signature: SignatureBlock, styles: _Styles) -> Table:
    who = Paragraph(
        f"{_text(signature.role_label)}<br/>{_text(signature.name)}<br/>"
        f"<font size=8 color='#5a5a5a'>{_text(signature.signed_at)}</font>",
        styles.label,
    )
    if signature.image_png is not None:
        mark: Flowable = _signature_image(signature)
    elif signature.refused_reason is not None:
        mark = Paragraph(_text(f"拒签 refused: {signature.refused_reason}"), styles.refused)
    else:
        mark = Paragraph("未签 not signed", styles.refused)
    lines = [
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, _RULE),
        ("LEFTPADDING", (0, 0), (0, -1), 0),
        ("TOPPADDING", (0, 0), (-1, -1), 3 * mm),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3 * mm),
    ]
    # One single-row table per signature: it moves to the next page whole, never split.
    return _table([[who, mark]], styles, lines, colWidths=[_LABEL_WIDTH, _CONTENT_WIDTH - _LABEL_WIDTH])


def _signature_image(signature: SignatureBlock) -> Image:
    """The PNG at its own pixel size (never resampled), drawn scaled to fit the signature box."""
    data = signature.image_png or b""
    try:
        with PILImage.open(io.BytesIO(data)) as probe:
            if probe.format != "PNG":
                raise ValueError(f"format {probe.format}")
            probe.verify()
            width_px, height_px = probe.size
    except Exception as exc:
        raise ValueError(f"signature image of {signature.role_label!r} is not a readable PNG: {exc}") from exc
    scale = min(_SIGNATURE_BOX[0] / width_px, _SIGNATURE_BOX[1] / height_px)
    # mask="auto": a transparent background stays transparent (drawn as a soft mask).
    image = Image(io.BytesIO(data), width=width_px * scale, height=height_px * scale, mask="auto")
    image.hAlign = "LEFT"
    return image


class _Footer:
    """The block at the foot of every page; its height is known before layout starts."""

    __slots__ = ("height", "lines", "styles")

    def __init__(self, doc: PdfDocument, styles: _Styles) -> None:
        self.styles = styles
        self.lines = Paragraph(
            "<br/>".join(
                (
                    _text(f"{doc.title} · 编号 Ref: {doc.reference}"),
                    _text(f"SHA-256: {doc.content_sha256}"),
                    _text(f"核验 Verify: {doc.verify_hint}"),
                )
            ),
            styles.footer,
        )
        self.height = self.lines.wrap(_CONTENT_WIDTH - 30 * mm, _PAGE_HEIGHT)[1]

    def draw(self, canvas: Canvas, page: int, pages: int) -> None:
        top = _MARGIN + self.height
        canvas.saveState()
        canvas.setStrokeColor(_RULE)
        canvas.setLineWidth(0.5)
        canvas.line(_MARGIN, top + 2 * mm, _PAGE_WIDTH - _MARGIN, top + 2 * mm)
        self.lines.drawOn(canvas, _MARGIN, _MARGIN)
        number = Paragraph(
            f"第 {page}/{pages} 页<br/>Page {page} of {pages}",
            ParagraphStyle("page", self.styles.footer, alignment=TA_RIGHT),
        )
        _, height = number.wrap(30 * mm, self.height)
        number.drawOn(canvas, _PAGE_WIDTH - _MARGIN - 30 * mm, top - height)
        canvas.restoreState()


class _FooterCanvas(Canvas):
    """Holds pages back until the end so each footer can say "page n of N"."""

    def __init__(self, *args: Any, footer: _Footer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._footer = footer
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            self._footer.draw(self, number, len(self._pages))
            super().showPage()
        super().save()
