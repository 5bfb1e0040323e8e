"""The dashboard's account pages: registering, the user's own profile, and the admin page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from .. import __version__
from ..api.deps import ServicesDep
from ..auth.users import get_user
from .pages import PagePrincipal, render, templates

router = APIRouter(include_in_schema=False)


@router.get("/register", response_class=HTMLResponse)
def register_page(request: Request, services: ServicesDep) -> Response:
    # Without self-registration there is nothing to ask for: the page does not exist.
    if not services.settings.server.self_registration:
        return templates.TemplateResponse(request, "not_found.html", {
            "title": "Not found", "version": __version__, "what": "This page"}, status_code=404)
    return templates.TemplateResponse(request, "register.html", {"title": "Ask for an account", "version": __version__})


@router.get("/profile", response_class=HTMLResponse)
def profile_page(request: Request, services: ServicesDep, principal: PagePrincipal) -> Response:
    account = None
    if principal is not None and principal.user_id is not None:
        with services.db.session(write=False) as session:
            user = get_user(session, principal.user_id)
            account = {"email": user.email, "created_at": user.created_at, "last_login_at": user.last_login_at}
    return render(request, principal, "profile.html", title="Profile", account=account)


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, principal: PagePrincipal) -> Response:
    return render(request, principal, "admin.html", title="Admin", least_role="admin")
