"""``create_app(settings)``: the one wiring point of routes, dependencies, errors and docs."""

import logging
from pathlib import Path

import anyio.to_thread
from argon2 import PasswordHasher
from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router
from openapi_ui_bundles import swagger_ui

from backend import slim  # noqa: F401  # first: PyJWT and structlog without their extras
from backend.app_version import require_supported_app
from backend.audit.controllers import AuditController
from backend.auth.controllers import AuthController, DeviceController, MeController, UserController
from backend.auth.middleware import AccessTokenMiddleware
from backend.auth.principal import Principal
from backend.clock import Clock
from backend.console import console_routes, template_config
from backend.context import AppContext, build_context
from backend.contract.openapi import ContractJson
from backend.cors import cors_config, with_cors
from backend.error_handlers import exception_handlers
from backend.evidence.blobs import BlobController
from backend.evidence.controllers import (
    DocumentController,
    InstrumentController,
    MeasurementController,
    PublicDocumentController,
)
from backend.evidence.pdf import check_font
from backend.health import HealthController
from backend.logs import configure_logging
from backend.metrics import MetricsController, instrument_pool, mark_worker_gone, watch_devices
from backend.org.controllers import AdminHouseholdController
from backend.reports.controllers import ReportController
from backend.request_guard import guard_request
from backend.review.controllers import ReviewController
from backend.settings import Settings
from backend.storage import BlobStore
from backend.sync.controllers import SyncController
from backend.telemetry import with_telemetry
from backend.work_orders.controllers import (
    HouseholdController,
    ReferenceController,
    RevisitController,
    SlaController,
    WorkOrderController,
)

__all__ = ("create_app",)

log = logging.getLogger("heatcrew")

SWAGGER_ASSETS = Path(swagger_ui.static_path)  # Swagger UI 5: renders OpenAPI 3.1
API_VERSION = "1.1.0"  # the contract version of mobile_contract/CHANGELOG.md
# Threads of a worker that run database work handed off by the event loop (pulls, admissions; the
# routes Litestar runs in a thread have the loop's own executor, a handful). AnyIO's default is 40:
# more threads than the pool has connections only wait in it, each with its stack and its share of
# the allocator, and take turns at one interpreter lock.
WORKER_THREADS = 10


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    blobs: BlobStore | None = None,
    password_hasher: PasswordHasher | None = None,
) -> Litestar:
    """Build the application. ``clock``, ``blobs`` and ``password_hasher`` are for tests and tools."""
    ctx = build_context(settings, clock=clock, blobs=blobs, password_hasher=password_hasher)

    def provide_ctx() -> AppContext:
        return ctx

    def provide_principal(request: Request) -> Principal:
        return request.user

    route_handlers: list = [
        HealthController,
        AuthController,
        MeController,
        UserController,
        DeviceController,
        WorkOrderController,
        HouseholdController,
        RevisitController,
        SlaController,
        ReferenceController,
        SyncController,
        ReviewController,
        BlobController,
        DocumentController,
        PublicDocumentController,
        MeasurementController,
        InstrumentController,
        ReportController,
        # The web console (/console): its own cookie session, CSRF and error pages; see backend.console.
        *console_routes(),
        AdminHouseholdController,
        AuditController,
    ]
    if settings.metrics_token:
        route_handlers.append(MetricsController)
    if settings.docs_enabled:
        route_handlers.append(
            create_static_files_router(
                path="/schema/assets",
                directories=[SWAGGER_ASSETS],
                opt={"exclude_from_auth": True},
                include_in_schema=False,
            )
        )
    app_ref: list[Litestar] = []  # the published document needs the app's handlers
    app = Litestar(
        route_handlers=route_handlers,
        dependencies={
            "ctx": Provide(provide_ctx, use_cache=True, sync_to_thread=False),
            "principal": Provide(provide_principal, sync_to_thread=False),
        },
        middleware=[
            DefineMiddleware(AccessTokenMiddleware, exclude=["^/schema", "^/health", "^/ready", "^/console"])
        ],
        exception_handlers=exception_handlers,
        before_request=_before_request,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=_openapi_config(settings, app_ref),
        state=State({"ctx": ctx, "console_default_locale": "zh"}),
        template_config=template_config(),
        # The live hub's listener (PostgreSQL) lives on the worker's event loop.
        on_startup=[check_font, _bound_threads, ctx.live.start],
        on_shutdown=[ctx.live.stop, ctx.db.dispose, mark_worker_gone],
        # Logging is configured once per process by backend.logs, not by each app.
        logging_config=None,
        debug=False,
    )
    app_ref.append(app)
    instrument_pool(ctx.db.engine)
    watch_devices(ctx.db.engine.url.render_as_string(hide_password=False), ctx.clock)
    # CORS outside everything, as ``cors_config`` would be, but a refused preflight answers 204;
    # around it the request id, the request's log line and its duration.
    app.asgi_handler = with_telemetry(with_cors(app.asgi_handler, cors_config(settings)))
    return app


async def _bound_threads() -> None:
    anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS


async def _before_request(request: Request) -> None:
    """Who is asking (an outdated phone app: 426), then what the body is (415, 400)."""
    await require_supported_app(request)
    await guard_request(request)


def _openapi_config(settings: Settings, app_ref: list[Litestar]) -> OpenAPIConfig:
    swagger = SwaggerRenderPlugin(
        path="/swagger",
        js_url="/schema/assets/swagger-ui-bundle.js",
        css_url="/schema/assets/swagger-ui.css",
        standalone_preset_js_url="/schema/assets/swagger-ui-standalone-preset.js",
        # Crews' networks and CI reach no CDN: every asset is served by us.
        favicon="<link rel='icon' type='image/png' href='/schema/assets/favicon-32x32.png'>",
    )
    return OpenAPIConfig(
        title="HeatCrew API",
        version=API_VERSION,
        description=(
            "Backend of the HeatCrew phone app for district-heating field crews. Every error answers "
            "`{code, message, detail}` with a stable `code`."
        ),
        path="/schema",
        render_plugins=[ContractJson(app_ref), *([swagger] if settings.docs_enabled else [])],
        use_handler_docstrings=True,
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
            }
        ),
        security=[{"bearer": []}],
    )


def app_from_env() -> Litestar:
    """Factory for uvicorn (``backend.app:app_from_env``), one call per worker process."""
    settings = Settings.from_env()
    configure_logging(settings)
    return create_app(settings)
