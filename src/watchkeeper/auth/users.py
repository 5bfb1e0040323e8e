"""User accounts: creation, lookup, password login, role and state changes."""

from __future__ import annotations

import re

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
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


def get_user(session: Session, user_id: int, *, lock: bool = False) -> User:
    """The user; ``lock``: their row locked until the transaction ends (a read-modify-write)."""
    user = session.get(User, user_id, with_for_update=lock)
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
    try:
        session.flush()
    except IntegrityError as exc:  # the same name (in any case) committed since find_user looked
        raise ConflictError(f"user '{name}' already exists") from exc
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


def _lock_user_and_admins(session: Session, user: User) -> int:
    """Lock and reload ``user``'s row and every active admin's; returns how many active admins there are.

    Concurrent changes (two admins demoting each other on PostgreSQL) then count admins one after the
    other instead of both seeing the other still there; locking in id order keeps them from deadlocking.
    """
    rows = session.scalars(
        select(User).where(or_(User.id == user.id, and_(User.role == "admin", User.state == "active")))
        .order_by(User.id).with_for_update().execution_options(populate_existing=True)
    )
    return sum(1 for row in rows if row.role == "admin" and row.state == "active")


def update_user(session: Session, user: User, *, role: str | None = None, state: str | None = None) -> dict[str, list]:
    """Change a user's role and/or state; returns {field: [old, new]} for the audit log.

    Refuses to leave no active admin. Disabling a user ends their login sessions
    (their API keys stop working because authentication checks the user's state).
    """
    active_admins = _lock_user_and_admins(session, user)
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
    if loses_admin and active_admins <= 1:
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
