"""The dashboard's pages. Each page is a template that the browser fills from /api/v1 with the session
cookie; signing in and out also go through the API. A page asked for without a session redirects to the
sign-in page, which comes back to it afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..api.deps import Credentials, ServicesDep, authenticate_request, session_cookie
from ..auth import Principal, role_allows
from ..errors import AuthError

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

# The navigation: (path, label, the least role that sees it).
NAVIGATION = [("/", "Live", "viewer"), ("/incidents", "Incidents", "viewer"), ("/analyze", "Analyse", "operator"),
              ("/stats", "Statistics", "viewer"), ("/admin", "Admin", "admin")]


async def page_principal(request: Request, services: ServicesDep,
                         session_token: Annotated[str | None, Depends(session_cookie)]) -> Principal | None:
    """The signed-in user of a page request (pages are GETs: the session cookie alone), or None."""
    if session_token is None:
        return None
    try:
        return await run_in_threadpool(authenticate_request, request, services,
                                       Credentials(session_token=session_token))
    except AuthError:
        return None


PagePrincipal = Annotated[Principal | None, Depends(page_principal)]


def render(request: Request, principal: Principal | None, template: str, *, title: str,
           least_role: str = "viewer", **context: Any) -> Response:
    """The page, or the way to it: sign in first, or a page saying the role is not enough."""
    if principal is None:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    if not role_allows(principal.role, least_role):
        template, title = "forbidden.html", "Not allowed"
        context = {"needed": least_role}
    navigation = [(path, label) for path, label, role in NAVIGATION if role_allows(principal.role, role)]
    return templates.TemplateResponse(request, template, {
        "title": title, "user": principal, "navigation": navigation, "version": __version__,
        "can_operate": role_allows(principal.role, "operator"), "is_admin": role_allows(principal.role, "admin"),
        **context}, status_code=403 if template == "forbidden.html" else 200,
        headers={"Cache-Control": "no-store"})


def local_path(target: str) -> str:
    """``target`` when it is a path on this server, else ``/``: browsers read ``/\\evil`` and ``/<tab>/evil``
    (they turn backslashes into slashes and drop tabs and line breaks) as another site."""
    if any(c in target for c in "\\\t\r\n") or not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, services: ServicesDep, next: str = "/") -> Response:
    return templates.TemplateResponse(request, "login.html", {
        "title": "Sign in", "next": local_path(next), "version": __version__,
        "registration": services.settings.server.self_registration})


@router.get("/dashboard.html")
def seed_001_dashboard() -> RedirectResponse:
    """Seed 001's dashboard path."""
    return RedirectResponse("/", status_code=307)


@router.get("/", response_class=HTMLResponse)
def live_page(request: Request, principal: PagePrincipal) -> Response:
    return render(request, principal, "live.html", title="Live")
