"""API keys: long random strings, shown once, kept as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from ..errors import BadRequestError, NotFoundError
from ..store.models import ROLES, ApiKey, User, utcnow
from . import role_allows

KEY_PREFIX = "wk_"
SHOWN_PREFIX_CHARS = 10  # "wk_" and 7 more: enough to tell keys apart in a list, useless to an attacker


def hash_secret(secret: str) -> str:
    """SHA-256 hex of a high-entropy token (keys, session tokens): no slow hash needed at 256 random bits."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, user: User, name: str, role: str | None = None) -> tuple[ApiKey, str]:
    """A new key for ``user`` acting as ``role`` (default: the user's role); returns the row and the key."""
    role = role or user.role
    if role not in ROLES:
        raise BadRequestError(f"unknown role '{role}'; roles: {', '.join(ROLES)}")
    if not role_allows(user.role, role):
        raise BadRequestError(f"a key of '{user.name}' ({user.role}) cannot have the role '{role}'")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(user_id=user.id, name=name, prefix=secret[:SHOWN_PREFIX_CHARS], key_hash=hash_secret(secret),
                 role=role)
    session.add(key)
    session.flush()
    return key, secret


def find_active_key(session: Session, secret: str) -> ApiKey | None:
    """The unrevoked key with this secret, its user loaded; None when unknown or revoked."""
    key = session.scalars(
        select(ApiKey).options(joinedload(ApiKey.user)).where(ApiKey.key_hash == hash_secret(secret))
    ).first()
    return key if key is not None and key.revoked_at is None else None


def get_key(session: Session, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFoundError(f"no API key with id {key_id}")
    return key


def revoke_key(key: ApiKey) -> bool:
    """True when the key was live until now."""
    if key.revoked_at is not None:
        return False
    key.revoked_at = utcnow()
    return True
