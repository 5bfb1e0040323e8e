"""Browser login sessions: an opaque cookie token (stored hashed) and its CSRF token."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from ..errors import NotFoundError
from ..store.models import LoginSession, User, utcnow
from .keys import hash_secret

SESSION_COOKIE = "wk_session"
CSRF_COOKIE = "wk_csrf"
CSRF_HEADER = "X-CSRF-Token"


def start_session(
    session: Session, user: User, *, ttl_h: float, ip: str | None, user_agent: str | None
) -> tuple[LoginSession, str]:
    """A new login for ``user``; returns the row and the cookie token (only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    login = LoginSession(
        user_id=user.id, token_hash=hash_secret(token), csrf_token=secrets.token_urlsafe(32),
        created_at=now, last_seen_at=now, expires_at=now + timedelta(hours=ttl_h),
        ip=ip, user_agent=(user_agent or "")[:400] or None,
    )
    session.add(login)
    session.flush()
    return login, token


def find_active_session(session: Session, token: str) -> LoginSession | None:
    login = session.scalars(
        select(LoginSession).options(joinedload(LoginSession.user))
        .where(LoginSession.token_hash == hash_secret(token))
    ).first()
    if login is None or login.revoked_at is not None or login.expires_at <= utcnow():
        return None
    return login


def get_session(session: Session, session_id: int) -> LoginSession:
    login = session.get(LoginSession, session_id)
    if login is None:
        raise NotFoundError(f"no session with id {session_id}")
    return login


def end_session(login: LoginSession) -> bool:
    """True when the session was live until now."""
    if login.revoked_at is not None:
        return False
    login.revoked_at = utcnow()
    return True
