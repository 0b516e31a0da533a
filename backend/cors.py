"""CORS: Litestar's middleware, except that a preflight it refuses still answers ``204``.

Litestar answers a refused preflight (an origin, method or header not allowed) with a plain-text
``400``; here it is a ``204`` without any ``Access-Control-Allow-*`` header, which the browser
reads as the refusal it is. So every OPTIONS request answers 2xx, on every route.

No origin is allowed unless ``HEATCREW_CORS_ALLOW_ORIGINS`` names it. A browser reads only the
response headers it is told it may: a resumable upload needs ``Upload-Offset`` (where to go on),
so the upload headers, ``Retry-After``, ``X-Request-ID`` and a push's ``Deprecation``, ``Sunset``
and ``Link`` are exposed; the app's ``X-App-Version`` may be sent. Tokens travel in the
``Authorization`` header, never in cookies, so credentials are not allowed.
"""

from litestar.config.cors import CORSConfig
from litestar.datastructures import Headers
from litestar.enums import MediaType
from litestar.middleware._internal.cors import CORSMiddleware
from litestar.response import Response
from litestar.status_codes import HTTP_204_NO_CONTENT
from litestar.types import ASGIApp

from backend.settings import Settings
from mobile_contract.uploads import UPLOAD_EXPIRES, UPLOAD_LENGTH, UPLOAD_OFFSET

__all__ = ("CORS_CONFIG", "cors_config", "with_cors")

ALLOWED_HEADERS = [
    "authorization",
    "content-type",
    "x-device-id",
    "x-request-id",
    "x-app-version",
    UPLOAD_LENGTH.lower(),
]
# A push's Deprecation, Sunset and Link announce an action version being retired.
EXPOSED_HEADERS = [
    UPLOAD_OFFSET,
    UPLOAD_LENGTH,
    UPLOAD_EXPIRES,
    "Retry-After",
    "X-Request-ID",
    "Location",
    "Deprecation",
    "Sunset",
    "Link",
]
CORS_CONFIG = CORSConfig(allow_origins=[], allow_headers=ALLOWED_HEADERS, expose_headers=EXPOSED_HEADERS)


def cors_config(settings: Settings) -> CORSConfig:
    """The allowed origins from the settings; headers as above."""
    return CORSConfig(
        allow_origins=settings.cors_origins,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
        max_age=600,
    )


class _CORSMiddleware(CORSMiddleware):
    def _create_preflight_response(self, origin: str, request_headers: Headers) -> Response[str | None]:
        response = super()._create_preflight_response(origin=origin, request_headers=request_headers)
        if response.status_code == HTTP_204_NO_CONTENT:
            return response
        return Response(
            content=None,
            status_code=HTTP_204_NO_CONTENT,
            media_type=MediaType.TEXT,
            headers={"Vary": "Origin"},
        )


def with_cors(asgi_handler: ASGIApp, config: CORSConfig = CORS_CONFIG) -> ASGIApp:
    """Wrap the app's handler (in place of ``Litestar(cors_config=...)``, which wraps it the same way)."""
    return _CORSMiddleware(app=asgi_handler, config=config)
