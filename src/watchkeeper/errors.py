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
