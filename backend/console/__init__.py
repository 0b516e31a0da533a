"""The web console at ``/console``: server-rendered pages (Jinja) with htmx fragments.

Packages add pages by listing a :class:`ConsolePages` in :data:`PAGE_MODULES` (a module path
whose ``PAGES`` attribute is one): its template directory joins the loader, its controllers are
mounted under the console router (session, CSRF and error pages included), its nav entries
appear in the header for the roles given. ``backend/app.py`` wires :func:`console_routes` and
:func:`template_config`. See docs/ARCHITECTURE.md, "Console".
"""

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Router
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from backend.auth.models import Role

__all__ = (
    "N_",
    "PAGE_MODULES",
    "ConsolePages",
    "NavEntry",
    "console_routes",
    "nav_entries",
    "template_config",
)


def N_(message: str) -> str:
    """Marks a msgid for extraction (``heatcrew console messages``); translated when rendered."""
    return message


OFFICE_ROLES = frozenset({Role.supervisor, Role.dispatcher, Role.admin})


@dataclass(frozen=True, slots=True)
class NavEntry:
    label: str
    """A msgid, translated when the header is rendered."""
    href: str
    roles: frozenset[Role] = OFFICE_ROLES
    order: int = 100


@dataclass(frozen=True, slots=True)
class ConsolePages:
    """What one package adds to the console."""

    controllers: list[Any]
    template_dir: Path | None = None
    nav: list[NavEntry] = field(default_factory=list)


PAGE_MODULES: list[str] = [
    "backend.console.pages",  # sign-in, language
    "backend.review.console",  # the review queue and its items
    "backend.console.board",  # the SLA board
    "backend.console.dispatch",  # orders: create from a call, assign, cancel, returns
    "backend.reports.console",  # KPIs and export downloads
]
"""Modules whose ``PAGES`` (a :class:`ConsolePages`) make the console, in nav order."""


def page_sets() -> list[ConsolePages]:
    return [importlib.import_module(name).PAGES for name in PAGE_MODULES]


def nav_entries() -> list[NavEntry]:
    return sorted((e for pages in page_sets() for e in pages.nav), key=lambda e: e.order)


def template_dirs() -> list[Path]:
    own = Path(__file__).parent / "templates"
    return [own, *(p.template_dir for p in page_sets() if p.template_dir is not None)]


def template_config() -> TemplateConfig:
    environment = Environment(
        loader=FileSystemLoader([str(d) for d in template_dirs()]),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # gettext/ngettext come with each render's context (the reader's language), new-style.
    environment.newstyle_gettext = True  # type: ignore[attr-defined]
    return TemplateConfig(engine=JinjaTemplateEngine.from_environment(environment))


def console_routes() -> list[Any]:
    """The console router (every page set's controllers) and its static files."""
    from backend.console import i18n
    from backend.console.sessions import LOCALES
    from backend.console.web import (
        STATIC_DIR,
        ConsoleSessionMiddleware,
        check_csrf,
        exception_handlers,
    )

    for locale in LOCALES:  # read the catalogues now: a broken .po stops the start, not a page
        i18n.translations(locale)

    def provide_viewer(request: Request) -> Any:
        return request.user

    router = Router(
        path="/console",
        route_handlers=[c for pages in page_sets() for c in pages.controllers],
        middleware=[DefineMiddleware(ConsoleSessionMiddleware, exclude_from_auth_key="console_public")],
        before_request=check_csrf,
        exception_handlers=exception_handlers,
        dependencies={"viewer": Provide(provide_viewer, sync_to_thread=False)},
        include_in_schema=False,
    )
    static = create_static_files_router(
        path="/console/static",
        directories=[STATIC_DIR],
        opt={"exclude_from_auth": True, "console_public": True},
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=365 * 24 * 3600, public=True),
    )
    return [router, static]
