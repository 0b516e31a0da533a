"""Signed documents rendered to PDF and read back the way a viewer or an auditor would.

Text is extracted with pypdf (through the font's ToUnicode map, so wrong glyphs or a missing
map fail here), images are pulled out of the page, and the font dictionaries are inspected.
The signature PNG is drawn here with Pillow; nothing binary is committed.
"""

import hashlib
import io
from pathlib import Path

import pypdf
import pytest
from PIL import Image, ImageDraw

from backend.errors import HeatCrewError
from backend.evidence.pdf import (
    FONT_ENV_VAR,
    PdfDocument,
    PdfFont,
    PdfFontMissing,
    PdfTable,
    SignatureBlock,
    find_font,
    render_pdf,
)

__all__ = ()

HASH = hashlib.sha256("测温记录 WO-2025-000123 #2".encode()).hexdigest()
REFERENCE = "WO-2025-000123/测温-2"
# Odd sizes, so a match cannot be a coincidence of rounding or a default.
SIGNATURE_SIZE = (437, 151)


@pytest.fixture(autouse=True)
def _no_font_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FONT_ENV_VAR, raising=False)


def signature_png(size: tuple[int, int] = SIGNATURE_SIZE) -> bytes:
    """A pen stroke on a transparent background, as the signing pad produces."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    width, height = size
    points = [(10, height - 20), (width // 4, 20), (width // 2, height - 30), (width - 10, height // 2)]
    ImageDraw.Draw(image).line(points, fill=(12, 24, 110, 255), width=5)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def inspector(**changes: object) -> SignatureBlock:
    values: dict = {
        "role_label": "测温人员 Inspector",
        "name": "李强（工号 T-0815）",
        "signed_at": "2025-12-03 14:20",
        "image_png": signature_png(),
    }
    return SignatureBlock(**(values | changes))


def temperature_record(**changes: object) -> PdfDocument:
    values: dict = {
        "title": "入户测温记录 Indoor temperature record",
        "company": "北方热力集团 Northern Heat Co.",
        "reference": REFERENCE,
        "fields": [
            ("住户 Resident", "张伟"),
            ("地址 Address", "幸福小区 3 号楼 2 单元 501"),
            ("测温仪器 Instrument", "TES-1310 #A0042，精度 ±0.3 °C"),
            ("室外温度 Outdoor", "-7.5 °C"),
        ],
        "table": PdfTable(
            header=["房间 Room", "读数1 °C", "读数2 °C", "读数3 °C"],
            rows=[["卧室 Bedroom", "18.4", "18.5", "18.4"], ["客厅 Living room", "19.1", "19.0", "19.2"]],
        ),
        "signatures": [inspector()],
        "content_sha256": HASH,
        "verify_hint": "在 HeatCrew 控制台输入编号与 SHA-256 核验",
        "issued_at": "2025-12-03 14:25",
    }
    return PdfDocument(**(values | changes))


def read(pdf: bytes) -> pypdf.PdfReader:
    assert pdf.startswith(b"%PDF-")
    return pypdf.PdfReader(io.BytesIO(pdf))


def lines(page: pypdf.PageObject) -> list[str]:
    return [line.strip() for line in page.extract_text().splitlines()]


def test_chinese_text_reads_back_exactly() -> None:
    reader = read(render_pdf(temperature_record()))

    assert len(reader.pages) == 1
    text = lines(reader.pages[0])
    for expected in (
        "北方热力集团 Northern Heat Co.",
        "入户测温记录 Indoor temperature record",
        "住户 Resident",
        "张伟",
        "幸福小区 3 号楼 2 单元 501",
        "TES-1310 #A0042，精度 ±0.3 °C",
        "-7.5 °C",
        "房间 Room",
        "卧室 Bedroom",
        "客厅 Living room",
        "18.5",
        "测温人员 Inspector",
        "李强（工号 T-0815）",
        "2025-12-03 14:20",
        f"编号 Ref: {REFERENCE} · 签发 Issued: 2025-12-03 14:25",
    ):
        assert expected in text
    assert reader.metadata.title == "入户测温记录 Indoor temperature record"


def test_signature_png_is_embedded_at_its_own_pixel_size() -> None:
    page = read(render_pdf(temperature_record())).pages[0]

    (image,) = page.images
    assert image.image.size == SIGNATURE_SIZE
    # The transparent pad background survives (as a soft mask), so nothing covers the rule lines.
    assert image.image.mode == "RGBA"


def test_refused_signature_prints_the_reason_and_no_image() -> None:
    refused = SignatureBlock(
        role_label="住户 Resident",
        name="张伟",
        signed_at="2025-12-03 14:22",
        refused_reason="认为温度计不准 thinks the thermometer is wrong",
    )
    page = read(render_pdf(temperature_record(signatures=[refused]))).pages[0]

    assert "拒签 refused: 认为温度计不准 thinks the thermometer is wrong" in lines(page)
    assert list(page.images) == []


def test_every_page_of_a_long_document_carries_hash_reference_and_page_count() -> None:
    fields = [(f"检查项 {n} Check item {n}", f"正常，无渗漏 no leak at joint {n}") for n in range(1, 121)]
    reader = read(render_pdf(temperature_record(fields=fields)))

    pages = len(reader.pages)
    assert pages >= 3
    for number, page in enumerate(reader.pages, start=1):
        text = lines(page)
        assert f"SHA-256: {HASH}" in text
        assert any(REFERENCE in line for line in text)
        assert f"Page {number} of {pages}" in text
    # Nothing lost or repeated at page breaks; the signature comes after the last field.
    everything = [line for page in reader.pages for line in lines(page)]
    for label, value in fields:
        assert everything.count(label) == 1
        assert everything.count(value) == 1
    assert everything.index("测温人员 Inspector") > everything.index("检查项 120 Check item 120")


def test_long_text_wraps_within_the_page() -> None:
    notes = "暖气片阀门被水垢完全堵塞已清洗并更换阀芯试水正常" * 24  # 576 characters, no spaces
    url = "https://heatcrew.example.com/verify/" + "A1b2C3d4" * 30
    page = read(render_pdf(temperature_record(fields=[("备注 Notes", notes), ("链接 Link", url)]))).pages[0]

    text = lines(page)
    start = text.index("备注 Notes") + 1
    wrapped = []
    while "".join(wrapped) != notes:
        wrapped.append(text[start + len(wrapped)])
        assert len(wrapped) < 40, "the notes never came back whole"
    # A line holds about 36 Han characters at this size; one 576-character line would overflow.
    assert len(wrapped) >= 10
    assert max(len(line) for line in wrapped) <= 40
    url_start = text.index("链接 Link") + 1
    assert len(text[url_start]) < len(url)
    assert url in "".join(text[url_start : url_start + 10])


def test_correction_notice_is_shown() -> None:
    note = "本记录更正 WO-2025-000123/测温-1（读数录错房间）Corrects record 1"
    page = read(render_pdf(temperature_record(superseded_note=note))).pages[0]

    assert note in lines(page)


def test_text_is_not_taken_as_markup() -> None:
    value = "<b>阀门</b> & <font size=40>大</font>"
    page = read(render_pdf(temperature_record(fields=[("备注 Notes", value)]))).pages[0]

    assert value in lines(page)


def test_font_is_embedded_as_a_subset_and_no_other_font_is_named() -> None:
    reader = read(render_pdf(temperature_record()))

    fonts = reader.pages[0]["/Resources"]["/Font"]
    assert fonts
    for font in fonts.values():
        font = font.get_object()
        descendants = font.get("/DescendantFonts")
        target = descendants[0].get_object() if descendants else font
        descriptor = target["/FontDescriptor"].get_object()
        assert "/FontFile2" in descriptor or "/FontFile3" in descriptor
        # "ABCDEF+Name": a subset, not the whole 10 MB font.
        assert str(target["/BaseFont"])[7] == "+"
    assert len(render_pdf(temperature_record())) < 300_000


def test_same_input_gives_the_same_bytes() -> None:
    assert render_pdf(temperature_record()) == render_pdf(temperature_record())


def test_bundled_font_is_found_without_configuration() -> None:
    font = find_font()

    assert font.regular.name == "KurintoSansSC-Rg.ttf"
    # One face: a second one would cost every worker ~14 MiB for bold headings.
    assert font.bold is None


def test_font_override_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FONT_ENV_VAR, str(find_font().regular))
    reader = read(render_pdf(temperature_record()))

    names = {str(font.get_object()["/BaseFont"]) for font in reader.pages[0]["/Resources"]["/Font"].values()}
    assert {name.split("+", 1)[1] for name in names} == {"KurintoSansSC-Rg"}
    assert "张伟" in lines(reader.pages[0])


def test_missing_font_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-font.ttf"
    monkeypatch.setenv(FONT_ENV_VAR, str(missing))

    with pytest.raises(PdfFontMissing) as raised:
        render_pdf(temperature_record())
    assert isinstance(raised.value, HeatCrewError)
    assert raised.value.code == "pdf_font_missing"
    assert raised.value.status == 503
    assert str(missing) in raised.value.message


def test_a_file_that_is_not_a_font_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "font.ttf"
    bogus.write_bytes(b"not a font at all" * 100)

    with pytest.raises(PdfFontMissing, match="not a usable TrueType font"):
        render_pdf(temperature_record(), font=PdfFont(regular=bogus))


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: temperature_record(content_sha256="abc"), id="short-hash"),
        pytest.param(lambda: temperature_record(content_sha256=HASH.upper()), id="upper-case-hash"),
        pytest.param(lambda: PdfTable(header=["房间", "读数"], rows=[["卧室"]]), id="ragged-table"),
        pytest.param(lambda: inspector(refused_reason="不签"), id="image-and-refusal"),
        pytest.param(
            lambda: render_pdf(temperature_record(verify_hint="核验 " * 3000)), id="footer-fills-page"
        ),
    ],
)
def test_inconsistent_input_is_refused(build) -> None:
    with pytest.raises(ValueError):
        build()


def test_a_signature_that_is_not_a_png_is_refused() -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(jpeg, "JPEG")

    for data in (b"\x89PNG\r\n\x1a\n broken", jpeg.getvalue()):
        with pytest.raises(ValueError, match="not a readable PNG"):
            render_pdf(temperature_record(signatures=[inspector(image_png=data)]))


def test_english_words_are_never_cut_in_mixed_text() -> None:
    # Han characters may break anywhere, Latin words only at spaces. The Han run runs straight into
    # the English (no space, as people type it); lengthening it moves the line end across every
    # letter of the word that follows.
    fields = [(f"备注 {n}", "阀" * n + "replacement" + " replacement" * 11) for n in range(24, 40)]
    reader = read(render_pdf(temperature_record(fields=fields, table=None, signatures=[])))

    value_lines = [line for page in reader.pages for line in lines(page) if line.startswith(("阀", "rep"))]
    words = [word.lstrip("阀") for line in value_lines for word in line.split()]
    assert [word for word in words if word] == ["replacement"] * 12 * len(fields)


def test_a_value_longer_than_a_page_continues_on_the_next() -> None:
    notes = "\n".join(f"第 {n} 行 line {n}" for n in range(1, 121))
    reader = read(render_pdf(temperature_record(fields=[("备注 Notes", notes)])))

    assert len(reader.pages) >= 3
    everything = [line for page in reader.pages for line in lines(page)]
    assert [line for line in everything if line.startswith("第 ") and "行 line" in line] == notes.split("\n")
