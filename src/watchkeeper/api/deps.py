"""Request dependencies: the shared services, who is asking, and what their role allows.

A request is authenticated by an API key (``Authorization: Bearer KEY`` or
``X-API-Key: KEY``) or by the session cookie from ``POST /api/v1/auth/login``.
Cookie-authenticated changes must echo the session's CSRF token in
``X-CSRF-Token`` (a cross-site form can send the cookie but cannot read the
token). Every authenticated request spends a token from its key's or
session's bucket.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, Path, Query, Request, WebSocket
from starlette.requests import HTTPConnection
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import update
from starlette.concurrency import run_in_threadpool

from ..auth import Principal, links, lower_role, role_allows
from ..auth.keys import find_active_key
from ..auth.sessions import CSRF_HEADER, SESSION_COOKIE, find_active_session
from ..errors import AuthError, CsrfError, PermissionDeniedError
from ..store.models import ApiKey, LoginSession, utcnow
from .schemas import MAX_ROW_ID
from .services import Services

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Refreshing "last used" on every request would turn every read into a write; once a minute is enough.
TOUCH_INTERVAL = timedelta(minutes=1)

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer KEY`.")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
session_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False,
    description="The session from POST /api/v1/auth/login; changes also need the X-CSRF-Token header.",
)


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


@dataclass(frozen=True)
class Credentials:
    """What a request sent to say who it is: an API key, a session cookie, or neither."""

    api_key: str | None = None
    session_token: str | None = None

    @property
    def sent(self) -> bool:
        return self.api_key is not None or self.session_token is not None


def sent_credentials(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
    session_token: Annotated[str | None, Depends(session_cookie)],
) -> Credentials:
    return Credentials(bearer.credentials if bearer is not None else api_key, session_token)


CredentialsDep = Annotated[Credentials, Depends(sent_credentials)]


def authenticate_request(request: HTTPConnection, services: Services, credentials: Credentials) -> Principal | None:
    """The principal behind the request's credentials; None when it sent none. Raises on bad ones.

    A WebSocket signed in by cookie is checked by its origin instead (``websocket_principal``).
    """
    if not credentials.sent:
        return None
    now = utcnow()
    with services.db.session(write=False) as session:
        if credentials.api_key is not None:
            key = find_active_key(session, credentials.api_key)
            if key is None or key.user.state != "active":
                raise AuthError("invalid or revoked API key")
            principal = Principal(user_id=key.user_id, name=key.user.name, role=lower_role(key.role, key.user.role),
                                  via="api_key", key_id=key.id)
            last_seen = key.last_used_at
        else:
            login = find_active_session(session, credentials.session_token or "")
            if login is None or login.user.state != "active":
                raise AuthError("the session has expired or was ended; sign in again")
            if isinstance(request, Request) and request.method not in SAFE_METHODS:
                sent = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(sent.encode(), login.csrf_token.encode()):
                    raise CsrfError(f"a signed-in change needs the session's {CSRF_HEADER} header")
            principal = Principal(user_id=login.user_id, name=login.user.name, role=login.user.role, via="session",
                                  session_id=login.id)
            last_seen = login.last_seen_at
    if last_seen is None or now - last_seen > TOUCH_INTERVAL:
        _touch(services, principal, now)
    return principal


def _touch(services: Services, principal: Principal, now: datetime) -> None:
    with services.db.session() as session:
        if principal.key_id is not None:
            session.execute(update(ApiKey).where(ApiKey.id == principal.key_id).values(last_used_at=now))
        else:
            session.execute(update(LoginSession).where(LoginSession.id == principal.session_id)
                            .values(last_seen_at=now))


async def optional_principal(
    request: Request,
    services: ServicesDep,
    credentials: CredentialsDep,
) -> Principal | None:
    """For /health: the caller when the credentials are good, else anonymous (never an error).

    Asynchronous so that anonymous health checks never wait for a worker thread.
    """
    if not credentials.sent:
        return None
    try:
        return await run_in_threadpool(authenticate_request, request, services, credentials)
    except (AuthError, CsrfError):
        return None


MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]


def current_principal(
    request: Request,
    services: ServicesDep,
    credentials: CredentialsDep,
) -> Principal:
    principal = authenticate_request(request, services, credentials)
    if principal is None:
        raise AuthError("sign in, or send an API key as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
    services.request_limiter.check(principal.rate_key, "requests for this key or session")
    request.state.principal = principal
    return principal


def require(role: str) -> Callable[[Principal], Principal]:
    """A dependency that passes principals whose role is ``role`` or higher."""

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not role_allows(principal.role, role):
            raise PermissionDeniedError(f"this needs the {role} role; '{principal.name}' acts as {principal.role}")
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


Viewer = Annotated[Principal, Depends(require("viewer"))]


def viewer_or_signed_link(
    request: Request,
    services: ServicesDep,
    credentials: CredentialsDep,
    expires: Annotated[int | None, Query(ge=0, le=2**40, description="Signed link: expiry (Unix s).")] = None,
    signature: Annotated[str | None, Query(max_length=100, description="Signed link: signature.")] = None,
) -> Principal | None:
    """A signed link (``expires`` and ``signature`` from GET /api/v1/media/{id}/link) or any signed-in user."""
    if expires is not None or signature is not None:
        issuer_id = links.check(services.link_secret, request.url.path, expires or 0, signature or "")
        with services.db.session(write=False) as session:
            links.check_issuer(session, issuer_id)
        return None
    return current_principal(request, services, credentials)  # every role may read


def metrics_reader(
    request: Request,
    services: ServicesDep,
    credentials: CredentialsDep,
) -> Principal | None:
    """GET /metrics: anyone when ``server.metrics_public``, else any signed-in user or API key (Prometheus
    sends one as ``Authorization: Bearer KEY``): camera names and load are not for every passer-by."""
    if services.settings.server.metrics_public:
        return None
    return current_principal(request, services, credentials)  # every role may read


def websocket_principal(websocket: WebSocket, services: Services) -> Principal:
    """Who opens a WebSocket: an API key (header, or ``?api_key=`` for browsers, which cannot set headers on
    one) or the session cookie. Browsers send cookies with cross-site WebSocket handshakes too, and no CSRF
    header can come with one, so a cookie counts only from this server's own origin or a configured one."""
    authorization = websocket.headers.get("authorization", "")
    secret = (authorization[7:] if authorization.lower().startswith("bearer ") else None) \
        or websocket.headers.get("x-api-key") or websocket.query_params.get("api_key")
    session_token = None if secret else websocket.cookies.get(SESSION_COOKIE)
    if session_token is not None:
        origin = websocket.headers.get("origin")
        own = f"{'https' if websocket.url.scheme == 'wss' else 'http'}://{websocket.headers.get('host', '')}"
        if origin is not None and origin != own and origin not in services.settings.server.cors_origins:
            raise CsrfError(f"a signed-in WebSocket from {origin} is not allowed (server.cors_origins)")
    principal = authenticate_request(websocket, services, Credentials(secret, session_token))
    if principal is None:
        raise AuthError("sign in, or send an API key ('X-API-Key' header or '?api_key=')")
    services.request_limiter.check(principal.rate_key, "requests for this key or session")
    return principal  # every role may watch


Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]


class Pagination:
    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=500, description="Items per page.")] = 50,
        offset: Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip.")] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset


PageDep = Annotated[Pagination, Depends()]
IdPath = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
