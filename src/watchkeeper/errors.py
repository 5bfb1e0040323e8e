"""One exception hierarchy for the whole product.

Front doors map these once: the CLI to exit codes, the API to problem+json.
Every error carries a short machine-readable ``code`` besides its message.
"""

from __future__ import annotations


class WatchkeeperError(Exception):
    """Base class of every error Watchkeeper raises on purpose."""

    code = "watchkeeper_error"

    def to_dict(self) -> dict[str, str]:
        return {"type": type(self).__name__, "code": self.code, "message": str(self)}


class ConfigError(WatchkeeperError):
    code = "config_error"


class MediaError(WatchkeeperError):
    """Input media that cannot be analysed."""

    code = "media_error"


class UnsupportedMediaError(MediaError):
    code = "unsupported_media"


class CorruptMediaError(MediaError):
    """Undecodable or truncated data."""

    code = "corrupt_media"


class EmptyMediaError(MediaError):
    code = "empty_media"


class MediaTooLargeError(MediaError):
    """Over a configured limit (bytes, pixels, duration), decompression bombs included."""

    code = "media_too_large"


class MediaFetchError(MediaError):
    """A URL or path could not be read."""

    code = "media_fetch_failed"


class ModelError(WatchkeeperError):
    code = "model_error"


class ModelUnavailableError(ModelError):
    """A model's package or weight files are missing."""

    code = "model_unavailable"


class ModelIntegrityError(ModelError):
    """Weight files whose sha256 does not match the expected one."""

    code = "model_integrity"


class AnalysisError(WatchkeeperError):
    code = "analysis_error"


# Errors of the service's front door: each maps to one HTTP status.
class NotFoundError(WatchkeeperError):
    code = "not_found"


class AuthError(WatchkeeperError):
    """No credentials, or credentials that name no active user."""

    code = "unauthenticated"


class PermissionDeniedError(WatchkeeperError):
    """An authenticated user whose role does not allow the action."""

    code = "forbidden"


class CsrfError(PermissionDeniedError):
    """A cookie-authenticated change without the session's X-CSRF-Token header."""

    code = "csrf_failed"


class ConflictError(WatchkeeperError):
    """The request clashes with the current state (a taken name, the last admin, no notifier configured)."""

    code = "conflict"


class BadRequestError(WatchkeeperError):
    """Well-formed input that names something invalid (an unknown provider, a role above the caller's)."""

    code = "bad_request"


class RateLimitedError(WatchkeeperError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnsafeTargetError(MediaFetchError):
    """A URL refused before connecting: not http(s), or an address that is not public and not allow-listed."""

    code = "unsafe_target"


class UnsafePathError(MediaFetchError):
    """A server path outside the media roots (``..``, a symlink escape, an absolute path elsewhere, a NUL byte)."""

    code = "unsafe_path"


class DeliveryError(WatchkeeperError):
    """A message the server tried to send at once (an e-mail from POST /notify) was refused or could not leave."""

    code = "delivery_failed"


class ArtefactStoreError(WatchkeeperError):
    """The artefact store (a shared folder, S3-compatible storage) could not be read or written."""

    code = "artefact_store_failed"


class ProviderError(WatchkeeperError):
    """A model provider failed: refused, unreachable, too slow, or answered what the schema does not allow.

    ``retryable`` says whether trying again later may work (a 429, a 5xx, a timeout)."""

    code = "provider_error"

    def __init__(self, message: str, *, provider: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable
