"""Sign-in, sign-out, the language switch and the console's start."""

import secrets
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Redirect, Template

from backend.auth.limits import client_address
from backend.console import ConsolePages, sessions
from backend.console.web import (
    COOKIE,
    COOKIE_PATH,
    LOGIN_CSRF_COOKIE,
    Viewer,
    is_secure,
    render,
)
from backend.deps import Ctx
from backend.errors import HeatCrewError, InvalidInput

__all__ = ("PAGES",)

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
PUBLIC = {"console_public": True}


def safe_next(target: object, default: str = "/console/board") -> str:
    """Only a console path of this site: never an open redirect."""
    if isinstance(target, str) and target.startswith("/console/") and not target.startswith("//"):
        return target
    return default


class SignInController(Controller):
    path = "/"

    @get("/", sync_to_thread=False)
    def start(self, viewer: Viewer) -> Redirect:
        return Redirect("/console/board", status_code=303)

    @get("/login", opt=PUBLIC, sync_to_thread=False)
    def login_form(
        self, request: Request, next: FromQuery[str | None] = None, why: FromQuery[str | None] = None
    ) -> Template:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        response = render(
            request, "console/login.html", csrf_token=token, next=safe_next(next), why=why, error=None
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            path=COOKIE_PATH,
            httponly=True,
            samesite="lax",
            secure=is_secure(request),
        )
        return response

    @post("/login", opt=PUBLIC)
    async def login(self, request: Request, ctx: Ctx, data: Form) -> Template | Redirect:
        username = str(data.get("username", "")).strip()
        password = str(data.get("password", ""))
        target = safe_next(data.get("next"))
        try:
            if not username or not password:
                raise InvalidInput("Enter your username and password.")
            token = await sessions.sign_in(
                ctx, username=username, password=password, address=client_address(request, ctx)
            )
        except HeatCrewError as exc:
            return render(
                request,
                "console/login.html",
                status=exc.status,
                headers=exc.headers or None,
                csrf_token=request.cookies.get(LOGIN_CSRF_COOKIE, ""),
                next=target,
                why=None,
                error=exc,
                username=username,
            )
        response = Redirect(target, status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            path=COOKIE_PATH,
            httponly=True,
            samesite="lax",
            secure=is_secure(request),
            max_age=ctx.settings.console_session_lifetime,
        )
        return response

    @post("/logout", sync_to_thread=True)
    def logout(self, ctx: Ctx, viewer: Viewer) -> Redirect:
        sessions.sign_out(ctx, user=viewer)
        response = Redirect("/console/login?why=signed_out", status_code=303)
        response.delete_cookie(COOKIE, path=COOKIE_PATH)
        return response

    @post("/locale", sync_to_thread=True)
    def locale(self, ctx: Ctx, viewer: Viewer, data: Form) -> Redirect:
        sessions.set_locale(ctx, user_id=viewer.principal.user_id, locale=str(data.get("locale", "")))
        return Redirect(safe_next(data.get("next")), status_code=303)


PAGES = ConsolePages(controllers=[SignInController])
