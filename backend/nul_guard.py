"""PostgreSQL text cannot hold U+0000: a request carrying it is refused before anything is stored.

SQLite would keep the character and PostgreSQL would fail on it half-way through a write, so it is
refused on both, up front: in the path, the query string, JSON bodies and forms' text fields
(``text_with_nul``). A push
is checked action by action instead (``sync/push.py``), so one such action is rejected and the
rest of the batch still applies; its route is marked ``opt={"nul_checked_by_handler": True}``.
"""

import re
from typing import Any

from litestar import Request

from backend.errors import InvalidInput

__all__ = ("has_nul", "refuse_nul")

# A JSON string holds U+0000 only as the escape \u0000, after an even number of backslashes.
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_MESSAGE = "Text may not contain the NUL character (U+0000)."


def has_nul(encoded_json: bytes) -> bool:
    """Whether a JSON document (as msgspec or a phone wrote it) has U+0000 in any string."""
    return b"\\u0000" in encoded_json and _ESCAPED_NUL.search(encoded_json) is not None


async def refuse_nul(request: Request[Any, Any, Any]) -> None:
    """400 ``text_with_nul`` for a NUL anywhere in the request (run by ``request_guard``)."""
    if "\x00" in request.scope["path"] or any(
        "\x00" in k or "\x00" in v for k, v in request.query_params.multi_items()
    ):
        raise InvalidInput(_MESSAGE, code="text_with_nul")
    if request.method not in ("POST", "PUT", "PATCH") or request.route_handler.opt.get(
        "nul_checked_by_handler"
    ):
        return
    kind = request.content_type[0]
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        # A form (the console's): its text fields; a file in it is kept as bytes.
        form = await request.form()
        if any("\x00" in k or (isinstance(v, str) and "\x00" in v) for k, v in form.multi_items()):
            raise InvalidInput(_MESSAGE, code="text_with_nul")
        return
    if kind != "application/json":
        return  # uploads are files, kept as bytes
    if has_nul(await request.body()):
        raise InvalidInput(_MESSAGE, code="text_with_nul")
