"""Signed links: a URL path that works without signing in until it expires (for e-mails and shared views).

The signature is an HMAC-SHA256 of the path and the expiry time under a
secret kept in the data folder, so links made by one server are honoured by
it (and by servers sharing its data folder) only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from ..errors import AuthError

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


def _signature(secret: bytes, path: str, expires: int) -> str:
    digest = hmac.new(secret, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: bytes, path: str, ttl_s: int) -> tuple[int, str]:
    """(expires as Unix seconds, signature) for ``path``."""
    expires = int(time.time()) + ttl_s
    return expires, _signature(secret, path, expires)


def check(secret: bytes, path: str, expires: int, signature: str) -> None:
    """Raise ``AuthError`` unless the signature is ``path``'s and has not expired."""
    if not hmac.compare_digest(_signature(secret, path, expires).encode(), signature.encode()):
        raise AuthError("the link's signature does not match")
    if expires < time.time():
        raise AuthError("the link has expired; ask for a new one")
