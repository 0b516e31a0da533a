"""Photo pipeline: accept photos by content, read what they claim, make clean derived copies.

Pure functions over bytes or a file (no HTTP, no database, no network) so the upload endpoint
can run them in a worker thread on the received file itself, never a copy of it in memory, and
tests can drive them directly. The original upload is never modified: it is evidence and is kept
byte for byte. What a photo says about itself (capture time, place, camera) is only a *claim*: it
is stored next to the server's receive time, never instead of it. Derived copies (thumbnail,
display size) are what the apps show; they carry no metadata at all, so a technician's location
never leaks through a shared thumbnail.
"""

import contextlib
import importlib.util
import io
import math
import os
import re
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import IO, Any

import msgspec
from PIL import Image, ImageFile

from backend.errors import HeatCrewError

#: Whether pillow_heif is installed; without it HEIC/HEIF is simply unsupported and everything
#: else works. It is imported on the first ISO-BMFF file only (see :func:`_heif_opener`): most
#: workers never see a HEIC, and its import costs ~3 MiB.
HEIF_SUPPORTED = importlib.util.find_spec("pillow_heif") is not None

__all__ = (
    "ALLOWED_FORMATS",
    "DECODE_SLOTS",
    "DEFAULT_SIZES",
    "HEIF_SUPPORTED",
    "JPEG_QUALITY",
    "MAX_PIXELS",
    "CorruptImage",
    "DerivedCopy",
    "ImageTooLarge",
    "PhotoClaims",
    "PhotoSource",
    "UnsupportedImage",
    "inspect",
    "process",
)

#: Formats accepted, as Pillow names them. Decided from the bytes, never from a name or MIME type.
ALLOWED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP", "HEIF"})

#: Pixel-count ceiling (about 8660 x 5773): above any phone camera, far below what would let a
#: small hostile file make a worker allocate gigabytes.
MAX_PIXELS = 50_000_000

#: Derived copies by name, as the long edge in pixels. Never upscaled. The display copy is what
#: phones fetch over mobile data and what the review queue shows (about 90 kB for a 12 MP photo);
#: 1000 px is also a quarter of a phone camera's 4000 px, which libjpeg decodes at 1/4 scale
#: directly, so a 12 MP photo goes through in about 45 ms instead of 65. Supervisors zoom into
#: the original.
DEFAULT_SIZES: Mapping[str, int] = MappingProxyType({"thumb": 320, "display": 1000})

#: Visually clean for photos on phone screens at roughly half the bytes of quality 95.
JPEG_QUALITY = 82

#: Images decoded at once in this process, whoever calls: one per CPU this process may run on.
#: A 12 MP photo needs about 20 MB while it is worked on; twenty phones uploading at once must
#: not make that 400 MB. Callers beyond this wait (in their own thread) for a free slot.
DECODE_SLOTS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_decoding = threading.BoundedSemaphore(DECODE_SLOTS)

#: What the pipeline reads: the bytes, a path, or an open binary file (read from its start).
PhotoSource = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]

# Registers every bundled plugin once, so the allow-list can be checked against what this Pillow
# build can actually decode (e.g. WebP may be compiled out).
Image.init()
_OPEN_FORMATS: tuple[str, ...] = tuple(
    f for f in ("JPEG", "PNG", "WEBP", "HEIF") if f in Image.OPEN or (f == "HEIF" and HEIF_SUPPORTED)
)


_heif_lock = threading.Lock()


def _heif_opener() -> None:
    """Register pillow_heif's opener with Pillow, once per process (uploads run in threads)."""
    with _heif_lock:
        if "HEIF" not in Image.OPEN:
            from pillow_heif import register_heif_opener  # here: only a HEIC/HEIF upload needs it

            register_heif_opener()


def _formats_for(prefix: bytes) -> tuple[str, ...]:
    """The allowed decoders to try on a file starting with ``prefix``: HEIF only for an ISO-BMFF
    file (``ftyp`` box), whose opener is registered then; no other file could be HEIF."""
    if prefix[4:8] == b"ftyp" and HEIF_SUPPORTED:
        _heif_opener()
        return _OPEN_FORMATS
    return tuple(f for f in _OPEN_FORMATS if f != "HEIF")


# Pillow opens multi-picture JPEGs (iPhone HDR gain maps, some Android cameras) as "MPO"; the
# first picture is an ordinary JPEG and is what every viewer shows.
_FORMAT_ALIASES = {"MPO": "JPEG"}

# EXIF tags and IFDs used below (numbers from the EXIF 2.32 specification).
_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_ORIENTATION = 0x0112
_TAG_DATETIME = 0x0132
_IFD_EXIF = 0x8769
_IFD_GPS = 0x8825
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_OFFSET_TIME = 0x9010
_TAG_OFFSET_TIME_ORIGINAL = 0x9011
_TAG_SUBSEC_TIME = 0x9290
_TAG_SUBSEC_TIME_ORIGINAL = 0x9291
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON, _GPS_STATUS = 1, 2, 3, 4, 9

# Same table as PIL.ImageOps.exif_transpose; applied here to the already-reduced image, which is
# cheaper than rotating the full-size one.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Pillow's resampler is scalar C and, after decoding, the largest cost of the pipeline. Below a
# factor of 2 (a JPEG's display copy: the decoder has already halved it, 2000 -> 1600 px is left)
# an area average (BOX) looks the same on a phone screen as bicubic for half the time. Larger
# reductions (display -> thumb, non-JPEG originals) first average whole pixel blocks (``reduce``,
# very cheap) by the integer part of the factor, then resample the rest bicubically.
_SMALL_STEP = Image.Resampling.BOX
# A JPEG the decoder has already scaled down (by 1/2, 1/4 or 1/8) to at most this much above the
# largest copy's edge is kept at the decoded size: DCT scaling is a clean downscale, and resampling
# the last 2000 -> 1600 px of a 12 MP photo would cost 14 ms, a fifth of the whole pipeline.
JPEG_SCALED_SLACK = 1.25
_LARGE_STEP = Image.Resampling.BICUBIC
_REDUCING_GAP = 1.0

_EXIF_DATETIME_RE = re.compile(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_EXIF_OFFSET_RE = re.compile(r"([+-])(\d{2}):(\d{2})")
_BOMB_PIXELS_RE = re.compile(r"\((\d+) pixels\)")
# Camera strings come from the file: bounded so a hostile file cannot bloat a row.
_MAX_CAMERA_CHARS = 120


class UnsupportedImage(HeatCrewError):
    """422: the bytes are not a JPEG, PNG, WebP or HEIC/HEIF image (judged by content only)."""

    status = 422
    code = "unsupported_image_format"
    default_message = "The file is not a JPEG, PNG, WebP or HEIC/HEIF image."


class ImageTooLarge(HeatCrewError):
    """422: too many pixels to decode safely; refused from the header, before any decoding."""

    status = 422
    code = "image_too_large"
    default_message = "The image has more pixels than allowed."


class CorruptImage(HeatCrewError):
    """422: the header names an accepted format but the data is truncated or unreadable."""

    status = 422
    code = "corrupt_image"
    default_message = "The image data is damaged or incomplete."


class PhotoClaims(msgspec.Struct, frozen=True):
    """What the file says about itself: recorded beside the server's receive time, never trusted.

    ``width``/``height`` are as displayed (EXIF orientation applied). ``taken_at_local`` is the
    camera's wall-clock time (EXIF stores no zone); ``taken_at`` is set, in UTC, only when the file
    also records its UTC offset, so a time is never silently guessed into the wrong zone.
    ``orientation`` is the EXIF value found (1 when none). For HEIF the container's own rotation
    is authoritative and already applied by the decoder; the EXIF value is then only informative.
    """

    format: str
    width: int
    height: int
    taken_at: datetime | None = None
    taken_at_local: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    camera: str | None = None
    orientation: int = 1


class DerivedCopy(msgspec.Struct, frozen=True):
    """A metadata-free JPEG rendition for display; the original is kept separately, untouched."""

    name: str
    content: bytes
    width: int
    height: int


def inspect(source: PhotoSource, *, max_pixels: int = MAX_PIXELS) -> PhotoClaims:
    """Validate ``source`` by content and return its claims, without making derived copies.

    The image is still decoded completely (so truncation is caught), but a JPEG is decoded at
    1/8 scale: every byte of compressed data is still read, but the costly inverse DCT mostly is not.
    """
    with _decoding, _opened(source) as fp:
        img, fmt = _open(fp, max_pixels)
        try:
            size = img.size
            if fmt == "JPEG":
                img.draft(None, (1, 1))
            _load(img, fmt)
            return _claims(img, fmt, size)
        finally:
            img.close()


def process(
    source: PhotoSource, *, max_pixels: int = MAX_PIXELS, sizes: Mapping[str, int] | None = None
) -> tuple[PhotoClaims, list[DerivedCopy]]:
    """Validate ``source``, read its claims and render upright, metadata-free JPEG copies.

    ``source`` is the bytes, a path or an open binary file; a file is read from its start in
    blocks, so an upload never has to be held in memory. ``sizes`` maps copy names to the long
    edge in pixels (default :data:`DEFAULT_SIZES`); an image smaller than a size is kept at its
    own size, never upscaled. Copies come back in the order of ``sizes``. The source itself is
    never modified. At most :data:`DECODE_SLOTS` calls decode at once; the others wait.
    """
    wanted = dict(DEFAULT_SIZES if sizes is None else sizes)
    for name, edge in wanted.items():
        if not isinstance(edge, int) or edge < 1:
            raise ValueError(f"size {name!r} must be a positive int, got {edge!r}")
    with _decoding, _opened(source) as fp:
        img, fmt = _open(fp, max_pixels)
        try:
            size = img.size
            if fmt == "JPEG" and wanted:
                # Let libjpeg scale by 1/2, 1/4 or 1/8 while decoding (DCT scaling) as long as the
                # result still covers the largest copy: most of the speed of the whole pipeline.
                # Scaling skips only inverse-DCT work: every byte of entropy-coded data is still
                # decoded, so a truncated or damaged file fails here exactly as at full size.
                img.draft("RGB", _fit(size, max(wanted.values())))
            _load(img, fmt)
            claims = _claims(img, fmt, size)
            slack = JPEG_SCALED_SLACK if fmt == "JPEG" and img.size != size else 1.0
            copies = _derive(img, size, claims.orientation if fmt != "HEIF" else 1, wanted, slack=slack)
            return claims, copies
        finally:
            img.close()


@contextlib.contextmanager
def _opened(source: PhotoSource) -> Iterator[IO[bytes]]:
    """A seekable binary file positioned at the start of the image, whatever was given."""
    if isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(source)
    elif isinstance(source, str | os.PathLike):
        with open(source, "rb") as fp:
            yield fp
    else:
        source.seek(0)
        yield source


def _open(fp: IO[bytes], max_pixels: int) -> tuple[ImageFile.ImageFile, str]:
    """Identify the format from the bytes and refuse oversized images from the header alone.

    Only the allowed decoders are ever tried, so GIF/TIFF/BMP/... parsers never see the data.
    Pillow's own process-wide bomb guard (``Image.MAX_IMAGE_PIXELS``) is left as is and only
    mapped to :class:`ImageTooLarge`; the per-call limit is checked here, before ``load()``.
    """
    if max_pixels < 1:
        raise ValueError("max_pixels must be positive")
    allowed = sorted(ALLOWED_FORMATS.intersection(_OPEN_FORMATS))
    prefix = fp.read(16)
    fp.seek(0)
    if not prefix:
        raise UnsupportedImage("The file is empty.", detail={"allowed": allowed})
    try:
        img = Image.open(fp, formats=_formats_for(prefix))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # DecompressionBombWarning only arrives as an exception when warnings are errors.
        match = _BOMB_PIXELS_RE.search(str(exc))
        hard_limit = Image.MAX_IMAGE_PIXELS * 2 if Image.MAX_IMAGE_PIXELS else max_pixels
        raise ImageTooLarge(
            detail={"max_pixels": min(max_pixels, hard_limit), "pixels": int(match[1]) if match else None}
        ) from None
    except Image.UnidentifiedImageError:
        if (looks_like := _looks_allowed(prefix)) is not None:
            raise CorruptImage(detail={"format": looks_like}) from None
        raise UnsupportedImage(detail={"allowed": allowed}) from None
    except MemoryError:
        raise
    except Exception as exc:  # hostile headers can make any parser raise anything
        raise CorruptImage(detail={"format": _looks_allowed(prefix)}) from exc
    fmt = _FORMAT_ALIASES.get(img.format or "", img.format or "")
    width, height = img.size
    if fmt not in ALLOWED_FORMATS:
        img.close()
        raise UnsupportedImage(detail={"allowed": allowed})
    if width * height > max_pixels:
        img.close()
        raise ImageTooLarge(detail={"max_pixels": max_pixels, "pixels": width * height})
    if width < 1 or height < 1:
        img.close()
        raise CorruptImage(detail={"format": fmt})
    return img, fmt


def _looks_allowed(prefix: bytes) -> str | None:
    """The allowed format whose signature the bytes start with, if any (to tell corrupt from foreign)."""
    for fmt in _formats_for(prefix):
        accept = Image.OPEN[fmt][1]
        try:
            if accept is not None and accept(prefix):
                return _FORMAT_ALIASES.get(fmt, fmt)
        except Exception:
            continue
    return None


def _load(img: ImageFile.ImageFile, fmt: str) -> None:
    """Decode fully; any failure means the data is damaged.

    Relies on ``ImageFile.LOAD_TRUNCATED_IMAGES`` being False (Pillow's default, never changed
    here): with it True, Pillow would silently pad a truncated JPEG with grey.
    """
    try:
        img.load()
    except MemoryError:
        raise
    except Exception as exc:
        raise CorruptImage(detail={"format": fmt}) from exc


def _claims(img: Image.Image, fmt: str, size: tuple[int, int]) -> PhotoClaims:
    """Read the claims; malformed metadata yields None fields, never an error."""
    exif = _exif(img)
    exif_ifd = _ifd(exif, _IFD_EXIF)
    if fmt == "HEIF":
        # pillow_heif reports the EXIF value here and resets it in the EXIF it exposes.
        orientation = _orientation(img.info.get("original_orientation"))
        width, height = size
    else:
        orientation = _orientation(exif.get(_TAG_ORIENTATION))
        width, height = size[::-1] if orientation in (5, 6, 7, 8) else size
    taken_at, taken_at_local = _taken(exif, exif_ifd)
    lat, lon = _gps(_ifd(exif, _IFD_GPS))
    return PhotoClaims(
        format=fmt,
        width=width,
        height=height,
        taken_at=taken_at,
        taken_at_local=taken_at_local,
        gps_lat=lat,
        gps_lon=lon,
        camera=_camera(exif),
        orientation=orientation,
    )


def _exif(img: Image.Image) -> Image.Exif:
    try:
        return img.getexif()
    except Exception:
        return Image.Exif()


def _ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        ifd = exif.get_ifd(tag)
    except Exception:
        return {}
    return ifd if isinstance(ifd, dict) else {}


def _text(value: object) -> str:
    """EXIF ASCII as clean text: NUL padding and control characters removed."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    return "".join(ch for ch in value if ch.isprintable()).strip()


def _orientation(value: object) -> int:
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _camera(exif: Image.Exif) -> str | None:
    """ "Make Model", without repeating the make when the model already starts with it."""
    make, model = _text(exif.get(_TAG_MAKE)), _text(exif.get(_TAG_MODEL))
    if make and model.lower().startswith(make.lower()):
        make = ""
    camera = " ".join(part for part in (make, model) if part)[:_MAX_CAMERA_CHARS].strip()
    return camera or None


def _taken(exif: Image.Exif, exif_ifd: dict[int, Any]) -> tuple[datetime | None, str | None]:
    """(UTC time if the offset is recorded, local wall-clock ISO string) from the best EXIF time."""
    candidates = (
        (
            exif_ifd.get(_TAG_DATETIME_ORIGINAL) or exif.get(_TAG_DATETIME_ORIGINAL),
            exif_ifd.get(_TAG_OFFSET_TIME_ORIGINAL),
            exif_ifd.get(_TAG_SUBSEC_TIME_ORIGINAL),
        ),
        (exif.get(_TAG_DATETIME), exif_ifd.get(_TAG_OFFSET_TIME), exif_ifd.get(_TAG_SUBSEC_TIME)),
    )
    for raw, raw_offset, raw_subsec in candidates:
        local = _exif_datetime(raw, raw_subsec)
        if local is None:
            continue
        offset = _exif_offset(raw_offset)
        if offset is None:
            return None, local.isoformat()
        try:
            return local.replace(tzinfo=offset).astimezone(UTC), local.isoformat()
        except (OverflowError, ValueError):
            return None, local.isoformat()
    return None, None


def _exif_datetime(raw: object, raw_subsec: object) -> datetime | None:
    match = _EXIF_DATETIME_RE.fullmatch(_text(raw))
    if match is None:  # also blanks and "0000:00:00 00:00:00" placeholders
        return None
    try:
        local = datetime(*(int(part) for part in match.groups()))  # naive: EXIF has no zone
    except ValueError:
        return None
    subsec = _text(raw_subsec)
    if subsec.isdigit():
        local = local.replace(microsecond=int(subsec[:6].ljust(6, "0")))
    return local


def _exif_offset(raw: object) -> timezone | None:
    match = _EXIF_OFFSET_RE.fullmatch(_text(raw))
    if match is None:
        return None
    sign, hours, minutes = match[1], int(match[2]), int(match[3])
    if hours > 14 or minutes >= 60:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if sign == "-" else delta)


def _gps(gps: dict[int, Any]) -> tuple[float | None, float | None]:
    """Decimal degrees, or (None, None) unless both coordinates are present and plausible.

    A missing hemisphere reference gives None rather than a guessed sign; a "void" fix and the
    0,0 that some devices write when they have no fix are treated as no position.
    """
    if _text(gps.get(_GPS_STATUS)).upper() == "V":
        return None, None
    lat = _gps_coordinate(gps.get(_GPS_LAT), gps.get(_GPS_LAT_REF), "N", "S", 90.0)
    lon = _gps_coordinate(gps.get(_GPS_LON), gps.get(_GPS_LON_REF), "E", "W", 180.0)
    if lat is None or lon is None or (lat == 0.0 and lon == 0.0):
        return None, None
    return lat, lon


def _gps_coordinate(value: object, ref: object, positive: str, negative: str, limit: float) -> float | None:
    hemisphere = _text(ref).upper()[:1]
    if hemisphere not in (positive, negative) or not isinstance(value, tuple | list):
        return None
    if not 1 <= len(value) <= 3:
        return None
    try:
        parts = [float(part) for part in value]
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    if not all(math.isfinite(part) and part >= 0 for part in parts):
        return None
    degrees, minutes, seconds = [*parts, 0.0, 0.0][:3]
    if minutes >= 60 or seconds >= 60:
        return None
    decimal = degrees + minutes / 60 + seconds / 3600
    if decimal > limit:
        return None
    return round(-decimal if hemisphere == negative else decimal, 7)


def _fit(size: tuple[int, int], edge: int) -> tuple[int, int]:
    """``size`` scaled so its long edge is ``edge``, keeping aspect; unchanged if already smaller."""
    width, height = size
    long_edge = max(width, height)
    if long_edge <= edge:
        return width, height
    scale = edge / long_edge
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB for JPEG; anything transparent is composited on white (not black) as viewers show it."""
    if img.mode == "RGB":
        return img
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        # 16-bit/float greyscale: scale to 8 bits instead of letting Pillow clip it to white.
        return img.convert("I").point(lambda v: v / 257).convert("L").convert("RGB")
    return img.convert("RGB")


def _derive(
    img: Image.Image, size: tuple[int, int], orientation: int, sizes: dict[str, int], *, slack: float = 1.0
) -> list[DerivedCopy]:
    """Render each copy: resize (largest first, each from the previous), then orient, then encode.

    Long-edge limits do not depend on rotation, so resizing happens before the transpose, which
    then only touches the reduced image. ``size`` is the original (pre-draft) stored size. The
    decoded image is released as soon as the first copy no longer needs it, which keeps the
    memory held per decode near 20 MB for a 12 MP photo.
    """
    swap = orientation in (5, 6, 7, 8)
    oriented = size[::-1] if swap else size
    work = _to_rgb(img)
    oriented_yet = False
    made: dict[str, DerivedCopy] = {}
    for name, edge in sorted(sizes.items(), key=lambda item: item[1], reverse=True):
        target = _fit(oriented, edge)
        if not oriented_yet and max(work.size) <= edge * slack:
            # Already scaled by the JPEG decoder to just above the wanted edge: kept as decoded.
            target = work.size[::-1] if swap else work.size
        if not oriented_yet:
            stored_target = target[::-1] if swap else target
            if work.size != stored_target:
                work = _shrink(work, stored_target)
            if work is not img:
                img.close()  # the decoded pixels (12 MB for a 12 MP JPEG) are not needed any more
            if orientation in _TRANSPOSE:
                work = work.transpose(_TRANSPOSE[orientation])
            oriented_yet = True
        elif work.size != target:
            work = _shrink(work, target)
        made[name] = DerivedCopy(name=name, content=_encode_jpeg(work), width=target[0], height=target[1])
    return [made[name] for name in sizes]


def _shrink(img: Image.Image, target: tuple[int, int]) -> Image.Image:
    factor = max(img.width / target[0], img.height / target[1])
    if factor < 2:
        return img.resize(target, _SMALL_STEP)
    return img.resize(target, _LARGE_STEP, reducing_gap=_REDUCING_GAP)


def _encode_jpeg(img: Image.Image) -> bytes:
    """Baseline JPEG with no EXIF, XMP, ICC or comment segment.

    Pillow's JPEG writer copies ``info["comment"]`` from the image itself, and resize/convert
    carry ``info`` over from the decoded original, so it is emptied before saving.
    """
    img.info = {}
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()
