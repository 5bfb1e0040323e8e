"""Sign-in: sessions for browsers (cookie + CSRF token), who am I, and self-registration when enabled."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy import select

from ...auth import Principal
from ...auth.audit import record
from ...auth.sessions import CSRF_COOKIE, SESSION_COOKIE, end_session, get_session, start_session
from ...auth.passwords import hash_password, verify_password
from ...auth.users import authenticate, create_user, get_user
from ...errors import AuthError, BadRequestError, NotFoundError, PermissionDeniedError
from ...store.models import LoginSession, utcnow
from .. import schemas
from ..deps import IdPath, PageDep, ServicesDep, client_ip, current_principal
from .common import page_of

router = APIRouter(prefix="/auth", tags=["auth"])

# Failed sign-ins one address may make, as a multiple of those it may make for one name: a guess at many
# names from one place is limited too (and cannot flood the audit log with failures).
ADDRESS_LOGIN_SCALE = 10

Anyone = Annotated[Principal, Depends(current_principal)]


def _set_cookies(request: Request, response: Response, token: str, csrf: str, max_age_s: int) -> None:
    # Secure whenever the request came over TLS; plain-HTTP loopback development would otherwise lose the cookie.
    secure = request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age_s, httponly=True, secure=secure, samesite="lax")
    # Readable by the page's script, which echoes it in X-CSRF-Token; a cross-site page cannot read it.
    response.set_cookie(CSRF_COOKIE, csrf, max_age=max_age_s, httponly=False, secure=secure, samesite="lax")


@router.post("/login", response_model=schemas.LoginOut, summary="Sign in: sets the session cookie")
def login(request: Request, response: Response, services: ServicesDep, body: schemas.Login) -> schemas.LoginOut:
    ip = client_ip(request)
    buckets = {f"login|{ip}|{body.name.lower()}": 1, f"login|{ip}": ADDRESS_LOGIN_SCALE}
    # Spent before the password is checked, so parallel guesses cannot all slip past a look-only check;
    # given back on success, as only failures count.
    services.login_limiter.check_all(buckets, "failed sign-ins")
    ttl_h = services.settings.server.session_ttl_h
    with services.db.session() as session:
        user = authenticate(session, body.name, body.password)
        if user is not None:
            login_row, token = start_session(session, user, ttl_h=ttl_h, ip=ip,
                                             user_agent=request.headers.get("user-agent"))
            actor = Principal(user_id=user.id, name=user.name, role=user.role, via="session", session_id=login_row.id)
            record(session, actor, "auth.login", target_type="session", target_id=login_row.id, ip=ip)
            out = schemas.LoginOut(user=schemas.UserOut.model_validate(user), csrf_token=login_row.csrf_token,
                                   expires_at=login_row.expires_at)
    if user is None:
        with services.db.session() as session:
            record(session, Principal(user_id=None, name=body.name[:100], role="viewer", via="session"),
                   "auth.login_failed", ip=ip)
        raise AuthError("wrong name or password, or the account is not active")
    services.login_limiter.give_back(buckets)
    _set_cookies(request, response, token, out.csrf_token, int(ttl_h * 3600))
    return out


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, summary="End this session and clear its cookies")
def logout(request: Request, services: ServicesDep, principal: Anyone) -> Response:
    if principal.session_id is not None:
        with services.db.session() as session:
            if end_session(get_session(session, principal.session_id)):
                record(session, principal, "auth.logout", target_type="session", target_id=principal.session_id,
                       ip=client_ip(request))
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


@router.get("/me", response_model=schemas.Me, summary="Who this request acts as")
def me(services: ServicesDep, principal: Anyone) -> schemas.Me:
    with services.db.session(write=False) as session:
        user = schemas.UserOut.model_validate(get_user(session, principal.user_id)) if principal.user_id else None
    return schemas.Me(user=user, role=principal.role, via=principal.via, key_id=principal.key_id,
                      session_id=principal.session_id)


PREFERENCES_MAX_BYTES = 16 * 1024


@router.get("/me/preferences", response_model=dict[str, Any], summary="Your dashboard settings")
def get_preferences(services: ServicesDep, principal: Anyone) -> dict[str, Any]:
    if principal.user_id is None:
        return {}
    with services.db.session(write=False) as session:
        return dict(get_user(session, principal.user_id).preferences or {})


def _store_preferences(services: ServicesDep, principal: Anyone,
                       change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """The user's settings after ``change`` (given the stored ones), stored within the size limit."""
    if principal.user_id is None:
        raise BadRequestError("settings belong to a user; this key has none")
    with services.db.session() as session:
        user = get_user(session, principal.user_id, lock=True)  # two tabs changing settings at once: both kept
        preferences = change(dict(user.preferences or {}))
        if len(json.dumps(preferences)) > PREFERENCES_MAX_BYTES:
            raise BadRequestError(f"settings are limited to {PREFERENCES_MAX_BYTES} bytes of JSON")
        user.preferences = preferences
    return preferences


@router.put("/me/preferences", response_model=dict[str, Any],
            summary="Replace your dashboard settings (theme, layout, saved filters): any JSON object up to 16 KiB")
def put_preferences(services: ServicesDep, principal: Anyone, body: dict[str, Any]) -> dict[str, Any]:
    return _store_preferences(services, principal, lambda stored: body)


@router.patch("/me/preferences", response_model=dict[str, Any],
              summary="Change some of your dashboard settings: the body's keys replace those stored, others stay")
def patch_preferences(services: ServicesDep, principal: Anyone, body: dict[str, Any]) -> dict[str, Any]:
    return _store_preferences(services, principal, lambda stored: stored | body)


def _signed_in(principal: Anyone) -> Principal:
    # A password belongs to the person signed in: an API key, even the user's own, cannot change it.
    if principal.via != "session" or principal.user_id is None:
        raise PermissionDeniedError("sign in to change your password; API keys cannot")
    return principal


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT,
             summary="Change your password (signed in, giving the current one); ends your other sessions")
def change_password(request: Request, services: ServicesDep, principal: Annotated[Principal, Depends(_signed_in)],
                    body: schemas.PasswordChange) -> Response:
    ip = client_ip(request)
    # Wrong current passwords count like failed sign-ins: a stolen session must not guess its way in.
    bucket = {f"password|{principal.user_id}": 1}
    services.login_limiter.check_all(bucket, "wrong current passwords")
    with services.db.session() as session:
        user = get_user(session, principal.user_id)  # type: ignore[arg-type]
        changed = verify_password(user.password_hash, body.current_password)
        if changed:
            user.password_hash = hash_password(body.new_password)
            others = session.scalars(select(LoginSession).where(
                LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None),
                LoginSession.id != principal.session_id)).all()
            now = utcnow()
            for other in others:
                other.revoked_at = now
            record(session, principal, "auth.password_change", target_type="user", target_id=user.id,
                   details={"sessions_ended": len(others)}, ip=ip)
        else:
            record(session, principal, "auth.password_change_failed", target_type="user", target_id=user.id, ip=ip)
    if not changed:
        raise BadRequestError("the current password is wrong")
    services.login_limiter.give_back(bucket)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sessions", response_model=schemas.Page[schemas.SessionOut],
            summary="Login sessions: your own, or everyone's for admins with all=true")
def list_sessions(services: ServicesDep, principal: Anyone, pagination: PageDep,
                  all_users: Annotated[bool, Query(alias="all")] = False,
                  active: bool = True) -> schemas.Page[schemas.SessionOut]:
    if all_users and principal.role != "admin":
        raise PermissionDeniedError("only admins see other users' sessions")
    query = select(LoginSession)
    if not all_users:
        query = query.where(LoginSession.user_id == principal.user_id)
    if active:
        query = query.where(LoginSession.revoked_at.is_(None))
    with services.db.session(write=False) as session:
        page = page_of(session, query, (LoginSession.created_at.desc(), LoginSession.id.desc()), schemas.SessionOut,
                       pagination)
    for item in page.items:
        item.current = item.id == principal.session_id
    return page


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT,
               summary="End a session (your own; admins: anyone's)")
def revoke_session(session_id: IdPath, request: Request, services: ServicesDep, principal: Anyone) -> Response:
    with services.db.session() as session:
        login_row = get_session(session, session_id)
        if login_row.user_id != principal.user_id and principal.role != "admin":
            raise NotFoundError(f"no session with id {session_id}")  # other users' sessions are not even visible
        if end_session(login_row):
            record(session, principal, "session.revoke", target_type="session", target_id=session_id,
                   details={"user_id": login_row.user_id}, ip=client_ip(request))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/register", response_model=schemas.UserOut, status_code=status.HTTP_201_CREATED,
             summary="Create an account (when server.self_registration is on): a viewer pending admin approval")
def register(request: Request, services: ServicesDep, body: schemas.Register) -> schemas.UserOut:
    if not services.settings.server.self_registration:
        raise PermissionDeniedError("self-registration is off; ask an admin for an account")
    ip = client_ip(request)
    services.login_limiter.check(f"register|{ip}", "registrations from this address")
    with services.db.session() as session:
        user = create_user(session, body.name, body.password, "viewer", state="pending", email=body.email)
        record(session, Principal(user_id=user.id, name=user.name, role="viewer", via="session"), "user.register",
               target_type="user", target_id=user.id, ip=ip)
        return schemas.UserOut.model_validate(user)
