"""Behaviour of the photo pipeline: what is accepted, what is refused, what the copies look like.

Every image is generated here with Pillow (nothing binary is committed), except the
decompression bomb, which is written chunk by chunk because Pillow would need 400 MB to hold it.
"""

import io
import math
import os
import struct
import subprocess
import sys
import threading
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from PIL import Image, ImageCms, ImageFile, ImageOps
from PIL.TiffImagePlugin import IFDRational

from backend.errors import HeatCrewError
from backend.evidence.photos import (
    ALLOWED_FORMATS,
    MAX_PIXELS,
    CorruptImage,
    DerivedCopy,
    ImageTooLarge,
    PhotoClaims,
    UnsupportedImage,
    inspect,
    process,
)

__all__ = ()

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)

# 39°54'27.18"N 116°23'44.55"E (Tian'anmen), as a phone writes it: degrees, minutes, seconds.
LAT_DMS = (IFDRational(39, 1), IFDRational(54, 1), IFDRational(2718, 100))
LON_DMS = (IFDRational(116, 1), IFDRational(23, 1), IFDRational(4455, 100))
LAT, LON = 39 + 54 / 60 + 27.18 / 3600, 116 + 23 / 60 + 44.55 / 3600


# --- builders ------------------------------------------------------------------------------------


def make_exif(
    *,
    orientation: int | None = None,
    gps: dict[int, object] | None = None,
    original: str | None = None,
    offset: str | None = None,
    datetime_ifd0: str | None = None,
    make: str | None = None,
    model: str | None = None,
) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if make is not None:
        exif[0x010F] = make
    if model is not None:
        exif[0x0110] = model
    if datetime_ifd0 is not None:
        exif[0x0132] = datetime_ifd0
    if original is not None or offset is not None:
        exif_ifd = exif.get_ifd(0x8769)
        if original is not None:
            exif_ifd[0x9003] = original
        if offset is not None:
            exif_ifd[0x9011] = offset
    if gps is not None:
        exif.get_ifd(0x8825).update(gps)
    return exif


def phone_exif() -> Image.Exif:
    return make_exif(
        gps={1: "N", 2: LAT_DMS, 3: "E", 4: LON_DMS},
        original="2026:05:01 10:15:30",
        offset="+08:00",
        make="Acme",
        model="Acme Phone 15",
    )


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def scene(size: tuple[int, int] = (640, 480), mode: str = "RGB") -> Image.Image:
    """Four coloured quadrants: red top-left, green top-right, blue bottom-left, yellow bottom-right."""
    width, height = size
    img = Image.new(mode, size)
    img.paste(RED, (0, 0, width // 2, height // 2))
    img.paste(GREEN, (width // 2, 0, width, height // 2))
    img.paste(BLUE, (0, height // 2, width // 2, height))
    img.paste(YELLOW, (width // 2, height // 2, width, height))
    return img


def heif_encoder_available() -> bool:
    try:
        import pillow_heif
    except ImportError:
        return False
    # The pipeline registers the HEIF opener on the first HEIC it sees; encoding test photos needs
    # it now. test_heif_support_is_loaded_on_the_first_heic checks the lazy path in a fresh process.
    pillow_heif.register_heif_opener()
    try:
        encode(Image.new("RGB", (16, 16)), "HEIF")
    except (KeyError, OSError, RuntimeError, ValueError):
        return False
    return True


HEIF_ENCODER = heif_encoder_available()


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of ``width`` x ``height`` black pixels: tiny file, huge image."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_step = 500
    idat = b"".join(
        compressor.compress(row * min(rows_per_step, height - y)) for y in range(0, height, rows_per_step)
    )
    idat += compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def decode(copy: DerivedCopy) -> Image.Image:
    img = Image.open(io.BytesIO(copy.content))
    img.load()
    return img


def jpeg_markers(data: bytes) -> list[int]:
    """Marker codes of every segment up to the start of scan (where the entropy-coded data begins)."""
    assert data[:2] == b"\xff\xd8"
    markers, pos = [], 2
    while pos < len(data):
        assert data[pos] == 0xFF, f"not a marker at {pos}"
        while data[pos] == 0xFF:
            pos += 1
        marker = data[pos]
        markers.append(marker)
        pos += 1
        if marker == 0xDA:
            break
        pos += int.from_bytes(data[pos : pos + 2], "big")
    return markers


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 48) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def quadrant_colours(img: Image.Image) -> list[tuple[int, ...]]:
    width, height = img.size
    points = [(width // 4, height // 4), (3 * width // 4, height // 4)]
    points += [(width // 4, 3 * height // 4), (3 * width // 4, 3 * height // 4)]
    return [img.convert("RGB").getpixel(p) for p in points]


# --- accepted formats ----------------------------------------------------------------------------


def _photo(fmt: str) -> bytes:
    if fmt == "PNG":
        img = scene(mode="RGBA")
        img.paste((0, 0, 0, 0), (0, 0, 64, 64))  # fully transparent corner
        return encode(img, "PNG", exif=phone_exif())
    if fmt == "WEBP":
        img = scene(mode="RGBA")
        img.paste((0, 0, 0, 0), (0, 0, 64, 64))
        return encode(img, "WEBP", quality=90, exif=phone_exif())
    if fmt == "HEIF":
        if not HEIF_ENCODER:
            pytest.skip("pillow_heif is not installed or this libheif build has no HEVC encoder")
        return encode(scene(), "HEIF", quality=90, exif=phone_exif())
    return encode(scene(), "JPEG", quality=90, exif=phone_exif())


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_every_allowed_format_gives_claims_and_jpeg_copies(fmt: str) -> None:
    data = _photo(fmt)
    claims, copies = process(data)

    assert claims.format == fmt
    assert (claims.width, claims.height) == (640, 480)
    assert claims.gps_lat == pytest.approx(LAT, abs=1e-6)
    assert claims.gps_lon == pytest.approx(LON, abs=1e-6)
    assert claims.taken_at == datetime(2026, 5, 1, 2, 15, 30, tzinfo=UTC)
    assert claims.camera == "Acme Phone 15"
    assert [c.name for c in copies] == ["thumb", "display"]
    thumb, display = copies
    assert (thumb.width, thumb.height) == (320, 240)  # long edge 320, 4:3 kept
    assert (display.width, display.height) == (640, 480)  # smaller than 1000: never upscaled
    for copy in copies:
        img = decode(copy)
        assert img.format == "JPEG"
        assert img.mode == "RGB"
        assert img.size == (copy.width, copy.height)
        assert [
            near(c, e) for c, e in zip(quadrant_colours(img), (RED, GREEN, BLUE, YELLOW), strict=True)
        ] == [True] * 4
    if fmt in ("PNG", "WEBP"):
        # The transparent corner is shown on white, as any viewer would, not as black.
        assert near(decode(display).getpixel((8, 8)), (255, 255, 255), 16)
    assert inspect(data) == claims


def test_long_edge_limits_and_aspect_ratio_for_large_photos() -> None:
    claims, (thumb, display) = process(encode(scene((3000, 1000)), "JPEG"))
    assert (claims.width, claims.height) == (3000, 1000)
    assert (display.width, display.height) == (1000, 333)
    assert (thumb.width, thumb.height) == (320, 107)
    _, (thumb, display) = process(encode(scene((900, 2700)), "PNG"))
    assert (display.width, display.height) == (333, 1000)
    assert (thumb.width, thumb.height) == (107, 320)
    assert decode(display).size == (333, 1000)


def test_custom_sizes_keep_their_order_and_never_upscale() -> None:
    data = encode(scene((800, 600)), "JPEG")
    _, copies = process(data, sizes={"small": 100, "huge": 5000, "mid": 400})
    assert [(c.name, c.width, c.height) for c in copies] == [
        ("small", 100, 75),
        ("huge", 800, 600),
        ("mid", 400, 300),
    ]
    assert process(data, sizes={})[1] == []
    with pytest.raises(ValueError):
        process(data, sizes={"bad": 0})


def test_multi_picture_jpeg_from_phones_is_accepted_as_jpeg() -> None:
    # Recent iPhones and many Androids append a gain map / depth picture (MPF): still a JPEG.
    data = encode(scene(), "MPO", save_all=True, append_images=[scene((320, 240))])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    claims, copies = process(data)
    assert claims.format == "JPEG"
    assert decode(copies[1]).size == (640, 480)


def test_sixteen_bit_and_palette_images_render_sensibly() -> None:
    grey16 = Image.new("I;16", (64, 64), 32768)  # mid grey at 16 bits
    _, (_, display) = process(encode(grey16, "PNG"))
    assert near(decode(display).getpixel((32, 32)), (128, 128, 128), 8)

    palette = scene((64, 64)).convert("P")
    palette.info["transparency"] = palette.getpixel((0, 0))  # the red quadrant is transparent
    _, (_, display) = process(encode(palette, "PNG"))
    assert near(decode(display).getpixel((4, 4)), (255, 255, 255), 16)
    assert near(decode(display).getpixel((60, 60)), YELLOW)


def test_cmyk_jpeg_becomes_rgb() -> None:
    _, (_, display) = process(encode(scene().convert("CMYK"), "JPEG"))
    img = decode(display)
    assert img.mode == "RGB"
    assert near(quadrant_colours(img)[0], RED)


# --- refused by content --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(encode(scene(), "GIF"), id="gif"),
        pytest.param(encode(scene(), "BMP"), id="bmp"),
        pytest.param(encode(scene(), "TIFF"), id="tiff"),
        pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", id="pdf"),
        pytest.param(os.urandom(4096), id="random"),
        pytest.param(b"", id="empty"),
        pytest.param(b"just a text file pretending to be photo.jpg\n" * 20, id="text-named-jpg"),
    ],
)
def test_other_formats_are_refused_by_content(data: bytes) -> None:
    for call in (process, inspect):
        with pytest.raises(UnsupportedImage) as caught:
            call(data)
        assert caught.value.code == "unsupported_image_format"
        assert caught.value.status == 422
        assert isinstance(caught.value, HeatCrewError)
        assert caught.value.to_body()["code"] == "unsupported_image_format"


def test_format_comes_from_the_bytes_not_the_name_or_declared_type() -> None:
    # The API takes no file name or content type at all: PNG bytes uploaded as "photo.jpg"
    # with Content-Type image/jpeg are still reported (and stored as a claim) as PNG.
    png = encode(scene(), "PNG")
    assert inspect(png).format == "PNG"
    assert process(png)[0].format == "PNG"
    assert {"JPEG", "PNG", "WEBP", "HEIF"} == ALLOWED_FORMATS


# --- too large, corrupt --------------------------------------------------------------------------


def test_decompression_bomb_is_refused_fast_without_decoding() -> None:
    bomb = png_bomb(20_000, 20_000)
    assert len(bomb) < 200_000  # a small upload ...
    for call in (process, inspect):
        started = time.perf_counter()
        with pytest.raises(ImageTooLarge) as caught:
            call(bomb, max_pixels=1_000_000)
        assert time.perf_counter() - started < 0.5  # ... refused from the header, not decoded
        assert caught.value.code == "image_too_large"
        assert caught.value.status == 422
        assert caught.value.detail == {"max_pixels": 1_000_000, "pixels": 400_000_000}


def test_pixel_limit_is_checked_before_decoding_at_the_default_and_per_call() -> None:
    big = png_bomb(8000, 8000)  # 64 MP: over the 50 MP default
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge) as caught:
        inspect(big)
    assert time.perf_counter() - started < 0.5
    assert caught.value.detail == {"max_pixels": MAX_PIXELS, "pixels": 64_000_000}

    # A header that claims a huge image over almost no data: refused as too large, which
    # proves the decoder never ran (decoding would have reported it as corrupt).
    liar = png_bomb(8, 8)
    ihdr = struct.pack(">II", 30_000, 30_000) + liar[24:29]
    liar = liar[:16] + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + liar[33:]
    with pytest.raises(ImageTooLarge):
        process(liar)

    photo = encode(scene((1000, 1000)), "JPEG")
    with pytest.raises(ImageTooLarge) as caught:
        process(photo, max_pixels=999_999)
    assert caught.value.detail == {"max_pixels": 999_999, "pixels": 1_000_000}
    assert process(photo, max_pixels=1_000_000)[0].width == 1000


def test_bomb_builder_makes_a_real_png() -> None:
    img = Image.open(io.BytesIO(png_bomb(300, 200)))
    img.load()
    assert (img.format, img.size, img.getextrema()) == ("PNG", (300, 200), (0, 0))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_image_is_corrupt(fmt: str) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # the detection relies on Pillow's default
    noisy = Image.effect_noise((640, 480), 60).convert("RGB")
    data = encode(noisy, fmt)
    half = data[: len(data) // 2]
    for call in (process, inspect):
        with pytest.raises(CorruptImage) as caught:
            call(half)
        assert caught.value.code == "corrupt_image"
        assert caught.value.status == 422


def test_damaged_header_of_an_accepted_format_is_corrupt_not_foreign() -> None:
    with pytest.raises(CorruptImage):
        process(encode(scene(), "JPEG")[:12])


# --- orientation ---------------------------------------------------------------------------------


def test_exif_rotation_is_applied_to_size_and_pixels() -> None:
    stored = Image.new("RGB", (400, 200), BLUE)
    stored.paste(RED, (0, 0, 100, 100))  # red block in the top-left of the stored pixels
    data = encode(stored, "JPEG", quality=95, exif=make_exif(orientation=6))

    claims, copies = process(data)
    assert claims.orientation == 6
    assert (claims.width, claims.height) == (200, 400)
    for copy in copies:
        img = decode(copy)
        width, height = img.size
        assert height > width  # portrait, as the phone was held
        # Orientation 6 = rotate 90° clockwise to display: the top-left block ends up top-right.
        assert near(img.getpixel((width - 1 - width // 8, height // 8)), RED)
        assert near(img.getpixel((width // 8, height // 8)), BLUE)
        assert near(img.getpixel((width // 2, height - 1 - height // 8)), BLUE)
    assert (copies[0].width, copies[0].height) == (160, 320)
    assert inspect(data).orientation == 6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow_exif_transpose(orientation: int) -> None:
    data = encode(scene((400, 200)), "PNG", exif=make_exif(orientation=orientation))
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    claims, (_, display) = process(data)
    img = decode(display)
    assert img.size == expected.size == (claims.width, claims.height)
    assert claims.orientation == orientation
    for got, want in zip(quadrant_colours(img), quadrant_colours(expected), strict=True):
        assert near(got, want)


def test_invalid_orientation_values_are_ignored() -> None:
    claims, (_, display) = process(encode(scene((400, 200)), "JPEG", exif=make_exif(orientation=9)))
    assert claims.orientation == 1
    assert (claims.width, claims.height) == decode(display).size == (400, 200)


# --- claims: time, place, camera -----------------------------------------------------------------


def test_gps_and_capture_time_are_read_from_exif() -> None:
    claims = inspect(encode(scene(), "JPEG", exif=phone_exif()))
    assert claims.gps_lat == pytest.approx(39.90755, abs=1e-6)
    assert claims.gps_lon == pytest.approx(116.3957083, abs=1e-6)
    # 10:15:30 at +08:00 is 02:15:30 UTC.
    assert claims.taken_at == datetime(2026, 5, 1, 2, 15, 30, tzinfo=UTC)
    assert claims.taken_at.utcoffset() is not None
    assert claims.taken_at_local == "2026-05-01T10:15:30"
    assert claims.camera == "Acme Phone 15"
    # The claims can be stored as they are.
    assert msgspec.json.decode(msgspec.json.encode(claims), type=PhotoClaims) == claims


def test_southern_and_western_hemispheres_are_negative() -> None:
    # 33°51'24"S 151°12'36"E (Sydney) and 40°42'46"N 74°0'22"W (New York).
    gps = {1: "S", 2: (33.0, 51.0, 24.0), 3: "E", 4: (151.0, 12.0, 36.0)}
    claims = inspect(encode(scene(), "JPEG", exif=make_exif(gps=gps)))
    assert claims.gps_lat == pytest.approx(-(33 + 51 / 60 + 24 / 3600), abs=1e-6)
    assert claims.gps_lon == pytest.approx(151 + 12 / 60 + 36 / 3600, abs=1e-6)
    gps = {1: "N", 2: (40.0, 42.0, 46.0), 3: "W", 4: (74.0, 0.0, 22.0)}
    claims = inspect(encode(scene(), "JPEG", exif=make_exif(gps=gps)))
    assert claims.gps_lat == pytest.approx(40 + 42 / 60 + 46 / 3600, abs=1e-6)
    assert claims.gps_lon == pytest.approx(-(74 + 22 / 3600), abs=1e-6)


def test_time_without_offset_is_kept_local_and_not_guessed_into_utc() -> None:
    claims = inspect(encode(scene(), "JPEG", exif=make_exif(original="2026:12:07 08:30:00")))
    assert claims.taken_at is None
    assert claims.taken_at_local == "2026-12-07T08:30:00"
    # No DateTimeOriginal: the IFD0 DateTime is the fallback.
    claims = inspect(encode(scene(), "JPEG", exif=make_exif(datetime_ifd0="2026:12:07 08:31:00")))
    assert (claims.taken_at, claims.taken_at_local) == (None, "2026-12-07T08:31:00")


def test_photo_without_metadata_has_empty_claims() -> None:
    claims = inspect(encode(scene(), "PNG"))
    assert claims == PhotoClaims(format="PNG", width=640, height=480)
    assert (claims.taken_at, claims.gps_lat, claims.camera, claims.orientation) == (None, None, None, 1)


@pytest.mark.parametrize(
    "gps",
    [
        pytest.param({2: LAT_DMS, 4: LON_DMS}, id="no-hemisphere-refs"),
        pytest.param({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: LON_DMS}, id="latitude-out-of-range"),
        pytest.param({1: "N", 2: (39.0, 75.0, 0.0), 3: "E", 4: LON_DMS}, id="minutes-out-of-range"),
        pytest.param({1: "X", 2: LAT_DMS, 3: "E", 4: LON_DMS}, id="unknown-ref"),
        pytest.param({1: "N", 2: LAT_DMS}, id="latitude-only"),
        pytest.param({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}, id="no-fix-zero-zero"),
        pytest.param({1: "N", 2: LAT_DMS, 3: "E", 4: LON_DMS, 9: "V"}, id="void-fix"),
    ],
)
def test_implausible_gps_gives_no_position(gps: dict[int, object]) -> None:
    claims, copies = process(encode(scene(), "JPEG", exif=make_exif(gps=gps, original="2026:05:01 10:15:30")))
    assert (claims.gps_lat, claims.gps_lon) == (None, None)
    assert claims.taken_at_local == "2026-05-01T10:15:30"  # the rest is still read
    assert len(copies) == 2


def _ascii(text: str) -> tuple[int, int, bytes]:
    return 2, len(text) + 1, text.encode() + b"\0"


def _rationals(*pairs: tuple[int, int]) -> tuple[int, int, bytes]:
    return 5, len(pairs), b"".join(struct.pack(">II", n, d) for n, d in pairs)


def _short(value: int) -> tuple[int, int, bytes]:
    return 3, 1, struct.pack(">H", value)


def _ifd(entries: dict[int, tuple[int, int, bytes]], offset: int) -> bytes:
    """One big-endian TIFF IFD at ``offset``; values over 4 bytes follow it."""
    data_at = offset + 2 + 12 * len(entries) + 4
    table, data = b"", b""
    for tag, (typ, count, payload) in sorted(entries.items()):
        if len(payload) <= 4:
            value = payload.ljust(4, b"\0")
        else:
            value = struct.pack(">I", data_at + len(data))
            data += payload + b"\0" * (len(payload) % 2)
        table += struct.pack(">HHI", tag, typ, count) + value
    return struct.pack(">H", len(entries)) + table + b"\0\0\0\0" + data


def raw_exif(gps: dict[int, tuple[int, int, bytes]], *, gps_pointer: int | None = None) -> bytes:
    """EXIF written by hand, for tag types Pillow's writer would refuse to produce."""
    ifd0: dict[int, tuple[int, int, bytes]] = {
        0x0132: _ascii("2026:05:01 10:15:30"),
        0x8825: (4, 1, b"\0" * 4),
    }
    gps_at = 8 + len(_ifd(ifd0, 8))
    ifd0[0x8825] = (4, 1, struct.pack(">I", gps_at if gps_pointer is None else gps_pointer))
    return b"Exif\0\0MM\0*" + struct.pack(">I", 8) + _ifd(ifd0, 8) + _ifd(gps, gps_at)


GOOD_LON = _rationals((116, 1), (23, 1), (4455, 100))


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
@pytest.mark.parametrize(
    "exif",
    [
        pytest.param(
            raw_exif({1: _ascii("N"), 2: _ascii("39 deg 54 min"), 3: _ascii("E"), 4: GOOD_LON}), id="text"
        ),
        pytest.param(
            raw_exif({1: _ascii("N"), 2: _rationals((39, 0), (0, 0), (0, 0)), 3: _ascii("E"), 4: GOOD_LON}),
            id="zero-denominators",
        ),
        pytest.param(
            raw_exif(
                {1: _short(7), 2: _short(12), 3: _ascii(""), 4: _rationals((1, 1), (2, 1), (3, 1), (4, 1))}
            ),
            id="wrong-types-and-counts",
        ),
        pytest.param(raw_exif({1: _ascii("N")}, gps_pointer=0xFFFFFF), id="gps-pointer-out-of-bounds"),
        pytest.param(raw_exif({}), id="empty-gps-ifd"),
    ],
)
def test_malformed_gps_tags_do_not_crash(exif: bytes) -> None:
    claims, copies = process(encode(scene(), "JPEG", exif=exif))
    assert (claims.gps_lat, claims.gps_lon) == (None, None)
    assert claims.taken_at_local == "2026-05-01T10:15:30"  # the rest is still read
    assert len(copies) == 2


def test_hand_written_exif_is_read_like_pillows() -> None:
    exif = raw_exif(
        {1: _ascii("N"), 2: _rationals((39, 1), (54, 1), (2718, 100)), 3: _ascii("E"), 4: GOOD_LON}
    )
    claims = inspect(encode(scene(), "JPEG", exif=exif))
    assert (claims.gps_lat, claims.gps_lon) == (pytest.approx(LAT, abs=1e-6), pytest.approx(LON, abs=1e-6))


@pytest.mark.parametrize(
    ("original", "offset", "local", "utc"),
    [
        ("0000:00:00 00:00:00", None, None, None),
        ("    :  :     :  :  ", None, None, None),
        ("yesterday", "+08:00", None, None),
        ("2026:02:30 10:00:00", "+08:00", None, None),
        ("2026:05:01 10:15:30", "+25:00", "2026-05-01T10:15:30", None),
        ("2026:05:01 10:15:30", "CST", "2026-05-01T10:15:30", None),
        (
            "2026:05:01 10:15:30",
            "-05:00",
            "2026-05-01T10:15:30",
            datetime(2026, 5, 1, 15, 15, 30, tzinfo=UTC),
        ),
    ],
)
def test_malformed_times_are_ignored(
    original: str, offset: str | None, local: str | None, utc: datetime | None
) -> None:
    claims = inspect(encode(scene(), "JPEG", exif=make_exif(original=original, offset=offset)))
    assert (claims.taken_at_local, claims.taken_at) == (local, utc)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
def test_unparseable_exif_block_does_not_break_the_upload() -> None:
    data = encode(scene(), "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff garbage")
    claims, copies = process(data)
    assert (claims.width, claims.orientation, claims.gps_lat, claims.taken_at) == (640, 1, None, None)
    assert len(copies) == 2


def test_camera_is_make_and_model_without_repetition() -> None:
    claims = inspect(encode(scene(), "JPEG", exif=make_exif(make="Huawei\x00", model="Mate 60\x00")))
    assert claims.camera == "Huawei Mate 60"
    claims = inspect(encode(scene(), "JPEG", exif=make_exif(make="Acme", model="ACME Phone 15")))
    assert claims.camera == "ACME Phone 15"
    claims = inspect(encode(scene(), "JPEG", exif=make_exif(model="X" * 500)))
    assert claims.camera is not None and len(claims.camera) <= 120


# --- derived copies carry no metadata ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_derived_copies_carry_no_metadata_at_all(fmt: str) -> None:
    if fmt == "HEIF" and not HEIF_ENCODER:
        pytest.skip("pillow_heif is not installed or this libheif build has no HEVC encoder")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    extra: dict[str, object] = {"exif": phone_exif(), "icc_profile": srgb}
    if fmt == "JPEG":
        extra |= {"comment": b"job 4711, Mrs Wang, flat 3-2-601", "xmp": b"<x:xmpmeta>secret</x:xmpmeta>"}
    data = encode(scene(), fmt, **extra)
    source = Image.open(io.BytesIO(data))
    assert source.getexif().get_ifd(0x8825), "the source must really carry GPS for this test to mean anything"

    _, copies = process(data)
    for copy in copies:
        img = decode(copy)
        assert len(img.getexif()) == 0
        assert not img.getexif().get_ifd(0x8825)
        assert not {"exif", "icc_profile", "comment", "xmp"} & set(img.info)
        markers = jpeg_markers(copy.content)
        assert not [m for m in markers if 0xE1 <= m <= 0xEF or m == 0xFE], [hex(m) for m in markers]
        assert b"Acme" not in copy.content and b"secret" not in copy.content


def test_original_bytes_are_left_untouched() -> None:
    data = encode(scene(), "JPEG", exif=phone_exif())
    buffer = bytearray(data)
    process(bytes(buffer))
    assert bytes(buffer) == data
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)  # the evidence keeps its GPS


# --- a real phone-sized photo --------------------------------------------------------------------


def test_twelve_megapixel_photo_goes_through() -> None:
    gradient = Image.linear_gradient("L").resize((4000, 3000))
    noise = Image.effect_noise((4000, 3000), 40)
    photo = Image.merge("RGB", (gradient, noise, Image.blend(gradient, noise, 0.5)))
    data = encode(photo, "JPEG", quality=90, exif=make_exif(orientation=6))
    assert len(data) > 1_000_000

    claims, (thumb, display) = process(data)
    assert (claims.format, claims.width, claims.height) == ("JPEG", 3000, 4000)
    # Decoded at quarter scale by libjpeg (1000 px): the display size itself, no resampling.
    assert (display.width, display.height) == decode(display).size == (750, 1000)
    assert (thumb.width, thumb.height) == decode(thumb).size == (240, 320)
    assert math.isclose(display.width / display.height, 3000 / 4000, rel_tol=0.01)


# --- reading from files, fast paths, bounded decoding ----------------------------------------------


_CAMERA = {"make": "Acme", "model": "Acme Phone 15"}


def test_a_path_or_an_open_file_gives_the_same_result_as_bytes(tmp_path: Path) -> None:
    data = encode(scene((2400, 1800)), "JPEG", quality=90, exif=make_exif(orientation=6, **_CAMERA))
    path = tmp_path / "upload.part"
    path.write_bytes(data)
    expected = process(data)
    assert process(path) == expected
    assert process(str(path)) == expected
    with path.open("rb") as f:
        f.seek(100)  # wherever the caller left it: the whole file is read
        assert process(f) == expected
        assert inspect(f) == expected[0]
    assert path.read_bytes() == data


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("cut", [2, 64, 4096])
def test_a_large_jpeg_cut_short_is_corrupt_even_when_decoded_at_reduced_scale(
    progressive: bool, cut: int
) -> None:
    """Draft decoding skips inverse DCT work, not entropy data: a missing tail is still noticed."""
    noisy = Image.effect_noise((3200, 2400), 50).convert("RGB")
    data = encode(noisy, "JPEG", quality=85, progressive=progressive)
    assert len(data) > 1_000_000
    for call in (process, inspect):
        with pytest.raises(CorruptImage):
            call(data[:-cut])
    _, (thumb, display) = process(data)
    assert (display.width, display.height) == (1000, 750) and (thumb.width, thumb.height) == (320, 240)


def test_no_more_images_are_decoded_at_once_than_there_are_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.evidence import photos

    active, peak = 0, 0
    lock = threading.Lock()
    real_load = photos._load

    def slow_load(img: Image.Image, fmt: str) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        real_load(img, fmt)
        with lock:
            active -= 1

    monkeypatch.setattr(photos, "_load", slow_load)
    data = encode(scene(), "JPEG")
    threads = [threading.Thread(target=process, args=(data,)) for _ in range(3 * photos.DECODE_SLOTS + 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == photos.DECODE_SLOTS


def test_heif_support_is_loaded_on_the_first_heic(tmp_path: Path) -> None:
    """pillow_heif costs a worker memory: it is imported by the first HEIC, not by the pipeline."""
    if not HEIF_ENCODER:
        pytest.skip("pillow_heif is not installed or this libheif build has no HEVC encoder")
    heic = tmp_path / "photo.heic"
    heic.write_bytes(_photo("HEIF"))
    jpeg = tmp_path / "photo.jpg"
    jpeg.write_bytes(_photo("JPEG"))
    script = (
        "import sys\n"
        "from backend.evidence.photos import inspect\n"
        f"assert inspect({str(jpeg)!r}).format == 'JPEG'\n"
        "assert 'pillow_heif' not in sys.modules, 'imported before any HEIC'\n"
        f"assert inspect({str(heic)!r}).format == 'HEIF'\n"
        "assert 'pillow_heif' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
