"""User accounts: creation, lookup, password login, role and state changes."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import BadRequestError, ConflictError, NotFoundError
from ..store.models import ROLES, USER_STATES, LoginSession, User, utcnow
from .passwords import hash_password, needs_rehash, verify_password

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise BadRequestError(f"unknown role '{role}'; roles: {', '.join(ROLES)}")


def find_user(session: Session, name: str) -> User | None:
    # Names are unique regardless of case, so "Admin" cannot pose as "admin".
    return session.scalars(select(User).where(func.lower(User.name) == name.lower())).first()


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"no user with id {user_id}")
    return user


def create_user(
    session: Session, name: str, password: str, role: str, *, state: str = "active", email: str | None = None
) -> User:
    if not NAME_PATTERN.match(name):
        raise BadRequestError(
            "a user name is 1-100 letters, digits and '_.@-', starting with a letter or digit"
        )
    _check_role(role)
    if find_user(session, name) is not None:
        raise ConflictError(f"user '{name}' already exists")
    user = User(name=name, password_hash=hash_password(password), role=role, state=state, email=email)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The active user with this name and password, or None (same cost whether the name exists or not)."""
    user = find_user(session, name)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        return None
    if user.state != "active":
        return None
    if needs_rehash(user.password_hash or ""):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    return user


def _active_admins(session: Session) -> int:
    return session.scalar(
        select(func.count()).select_from(User).where(User.role == "admin", User.state == "active")
    ) or 0


def update_user(session: Session, user: User, *, role: str | None = None, state: str | None = None) -> dict[str, list]:
    """Change a user's role and/or state; returns {field: [old, new]} for the audit log.

    Refuses to leave no active admin. Disabling a user ends their login sessions
    (their API keys stop working because authentication checks the user's state).
    """
    changes: dict[str, list] = {}
    if role is not None and role != user.role:
        _check_role(role)
        changes["role"] = [user.role, role]
    if state is not None and state != user.state:
        if state not in USER_STATES:
            raise BadRequestError(f"unknown state '{state}'; states: {', '.join(USER_STATES)}")
        changes["state"] = [user.state, state]
    loses_admin = user.role == "admin" and user.state == "active" and (
        changes.get("role", [None, "admin"])[1] != "admin" or changes.get("state", [None, "active"])[1] != "active"
    )
    if loses_admin and _active_admins(session) <= 1:
        raise ConflictError(f"'{user.name}' is the last active admin; make another admin first")
    if "role" in changes:
        user.role = role  # type: ignore[assignment]
    if "state" in changes:
        user.state = state  # type: ignore[assignment]
        if state != "active":
            now = utcnow()
            for login in session.scalars(
                select(LoginSession).where(LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None))
            ):
                login.revoked_at = now
    return changes
