"""Signed links: a URL path that works without signing in until it expires (for e-mails and shared views).

The signature is an HMAC-SHA256 of the path, the expiry time and the issuing
user's id under a secret kept in the data folder, so links made by one server
are honoured by it (and by servers sharing its data folder) only. The id
travels in the signature (``ID.MAC``), so a link stops working when its
issuer is disabled or deleted (``check_issuer``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from sqlalchemy.orm import Session

from ..errors import AuthError
from ..store.models import User

SECRET_BYTES = 32


def load_or_create_secret(path: Path) -> bytes:
    """The signing secret in ``path``, made (readable by the owner only) on first use."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_bytes(SECRET_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_bytes()
        with os.fdopen(fd, "wb") as handle:
            handle.write(secret)
        return secret


def _mac(secret: bytes, path: str, expires: int, issuer: str) -> str:
    digest = hmac.new(secret, f"{path}\n{expires}\n{issuer}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: bytes, path: str, ttl_s: int, issuer_id: int) -> tuple[int, str]:
    """(expires as Unix seconds, signature) for ``path``, issued by the user ``issuer_id``."""
    expires = int(time.time()) + ttl_s
    return expires, f"{issuer_id}.{_mac(secret, path, expires, str(issuer_id))}"


def check(secret: bytes, path: str, expires: int, signature: str) -> int:
    """The issuer's user id; raises ``AuthError`` unless the signature is ``path``'s and has not expired.

    The caller then checks the issuer with ``check_issuer``.
    """
    issuer, _, mac = signature.partition(".")
    if not hmac.compare_digest(_mac(secret, path, expires, issuer).encode(), mac.encode()):
        raise AuthError("the link's signature does not match")
    if expires < time.time():
        raise AuthError("the link has expired; ask for a new one")
    return int(issuer)  # as sign() wrote it, now that the MAC vouches for it


def check_issuer(session: Session, issuer_id: int) -> None:
    """Raise ``AuthError`` unless the link's issuer is still an active user."""
    issuer = session.get(User, issuer_id)
    if issuer is None or issuer.state != "active":
        raise AuthError("the link's issuer can no longer sign in; ask for a new one")
