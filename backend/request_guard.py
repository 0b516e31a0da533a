"""What every request body must be before anything decodes it: JSON, not too deep, without NUL.

The one ``before_request`` hook of the app. It runs after routing and authentication, before the
handler's ``data`` is decoded:

- a route that takes a JSON body (a ``data`` parameter) and gets a non-empty body that is not
  ``application/json`` (charset, if given, UTF-8) answers ``415 unsupported_media_type``: such a
  body used to be decoded anyway, past the NUL check, so a NUL reached the database;
- a JSON body nested deeper than :data:`MAX_JSON_DEPTH` answers ``400 json_too_deep`` before it
  is decoded (the decoder recursed into a ``RecursionError``, a 500 with a traceback, for
  unauthenticated callers too). The check is a few passes of C-speed byte operations;
- a string escape that is half of a surrogate pair (``"\\ud83d"``, what a JavaScript app sends for
  a note cut in the middle of an emoji) is replaced by U+FFFD, as a UTF-8 encoder does: the JSON
  is valid, but the decoder refused the whole body, so one note blocked the phone's whole queue.
  The phone's own UTF-8 (``TextEncoder``) makes the same replacement, so hashes still agree;
- then ``nul_guard``: NUL in the path, the query string or a JSON body is ``400 text_with_nul``.

Uploads (``PUT /api/v1/blobs/{sha256}``) take no ``data``: their bodies are files, streamed, never
read here.
"""

import json
import re
from typing import Any

from litestar import Request

from backend.errors import HeatCrewError
from backend.nul_guard import refuse_nul

__all__ = (
    "MAX_JSON_DEPTH",
    "JsonTooDeep",
    "UnsupportedMediaType",
    "guard_request",
    "json_too_deep",
    "mend_surrogates",
)

MAX_JSON_DEPTH = 32
_UTF8 = {"utf-8", "utf8"}
# A \\uD800-\\uDFFF escape: half of a surrogate pair (alone, or in a pair to keep).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_STRING = re.compile(rb'"[^"]*"')
# Keep only brackets, and make both kinds one: ``[`` opens, ``]`` closes.
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


class UnsupportedMediaType(HeatCrewError):
    status = 415
    code = "unsupported_media_type"
    default_message = "This endpoint takes a JSON body: send it with Content-Type: application/json."


class JsonTooDeep(HeatCrewError):
    status = 400
    code = "json_too_deep"
    default_message = f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep."


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether decoding ``body`` would nest more than ``limit`` arrays/objects deep.

    Strings are cut out first (escaped backslashes, then escaped quotes, then ``"..."``), then
    everything but brackets; each round of removing ``[]`` peels one level off every nest. After
    ``limit`` rounds a remaining ``[]`` is a nest deeper than ``limit``; what remains otherwise is
    unbalanced (``]]][[``), and more than ``limit`` unclosed ``[`` would nest that deep too.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    text = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    text = _STRING.sub(b"", text).translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(limit):
        shorter = text.replace(b"[]", b"")
        if len(shorter) == len(text):
            break
        text = shorter
    if not text:
        return False
    if b"[]" in text:
        return True
    return len(text) - len(text.rstrip(b"[")) > limit


def mend_surrogates(body: bytes) -> bytes:
    """``body`` with every lone surrogate escape replaced by U+FFFD (pairs are kept); as it is when
    there is none. Only a body with such an escape pays for more than one regex search."""
    if not _SURROGATE_ESCAPE.search(body):
        return body
    try:
        value = json.loads(body)  # unlike msgspec, it reads lone surrogates (as lone code points)
    except ValueError:
        return body  # malformed anyway: the decoder says how
    text = json.dumps(value, ensure_ascii=False, allow_nan=False) if _finite(value) else None
    if text is None:
        return body
    mended = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return mended.encode() if mended != text else body


def _finite(value: Any) -> bool:
    """No NaN or infinity (``1e400`` reads as one): those stay for the decoder to refuse."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return False
    return True


def _takes_json(request: Request[Any, Any, Any]) -> bool:
    handler = request.route_handler
    takes = handler.opt.get("_takes_json")
    if takes is None:
        takes = handler.opt["_takes_json"] = "data" in handler.parsed_fn_signature.parameters
    return takes


def _is_json(media_type: str, options: dict[str, str]) -> bool:
    if media_type != "application/json":  # what nul_guard reads, too
        return False
    charset = options.get("charset")
    return charset is None or charset.strip().lower() in _UTF8


async def guard_request(request: Request[Any, Any, Any]) -> None:
    """Litestar ``before_request`` hook: 415, 400 ``json_too_deep``, 400 ``text_with_nul``."""
    if request.method in ("POST", "PUT", "PATCH") and _takes_json(request):
        body = await request.body()
        if body:
            media_type, options = request.content_type
            if not _is_json(media_type, options):
                raise UnsupportedMediaType(detail={"accepted": ["application/json"]})
            if json_too_deep(body):
                raise JsonTooDeep(detail={"max_depth": MAX_JSON_DEPTH})
            mended = mend_surrogates(body)
            if mended is not body:
                # What the handler's data is decoded from (Litestar keeps the body read once).
                request._body = request._connection_state.body = mended
    await refuse_nul(request)
