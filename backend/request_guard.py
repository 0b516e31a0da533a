"""What every request body must be before anything decodes it: JSON, not too deep, without NUL.

The one ``before_request`` hook of the app. It runs after routing and authentication, before the
handler's ``data`` is decoded:

- a route that takes a JSON body (a ``data`` parameter) and gets a non-empty body that is not
  ``application/json`` (charset, if given, UTF-8) answers ``415 unsupported_media_type``: such a
  body used to be decoded anyway, past the NUL check, so a NUL reached the database;
- a JSON body nested deeper than :data:`MAX_JSON_DEPTH` answers ``400 json_too_deep`` before it
  is decoded (the decoder recursed into a ``RecursionError``, a 500 with a traceback, for
  unauthenticated callers too). The check is a few passes of C-speed byte operations;
- then ``nul_guard``: NUL in the path, the query string or a JSON body is ``400 text_with_nul``.

Uploads (``PUT /api/v1/blobs/{sha256}``) take no ``data``: their bodies are files, streamed, never
read here.
"""

import re
from typing import Any

from litestar import Request

from backend.errors import HeatCrewError
from backend.nul_guard import refuse_nul

__all__ = ("MAX_JSON_DEPTH", "JsonTooDeep", "UnsupportedMediaType", "guard_request", "json_too_deep")

MAX_JSON_DEPTH = 32
_UTF8 = {"utf-8", "utf8"}
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
    await refuse_nul(request)
