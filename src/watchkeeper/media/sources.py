"""Turn a path, raw bytes or an http(s) URL into bytes the decoders can read.

Every input is size-checked before it is read, hashed once (the sha256 is
the cache key), and exposed either as a local file (paths, downloads spooled
to a temporary file) or as an in-memory buffer (bytes), so a multi-gigabyte
video is never held in memory whole.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlsplit

from ..config import MediaSettings
from ..errors import EmptyMediaError, MediaFetchError, MediaTooLargeError

MediaSource = str | os.PathLike[str] | bytes | bytearray | memoryview

# Enough for every signature detect.py looks at (EBML doc type, ftyp brands).
HEAD_BYTES = 4096
_CHUNK_BYTES = 1 << 20
_URL_SCHEMES = ("http://", "https://")
_USER_AGENT = "watchkeeper-media/1"


@dataclass(frozen=True)
class SourceData:
    """Input bytes resolved to a local file or a buffer, with their hash and first bytes."""

    name: str  # what messages and MediaInfo.source show: the path, the URL or the given name
    suffix: str  # lower-case extension, the fallback when the content is not recognised
    size_bytes: int
    head: bytes
    path: Path | None = None
    data: bytes | None = None
    digest: str | None = None  # known already (a download hashes as it arrives)

    @cached_property
    def sha256(self) -> str:
        """The content hash, read on first use: sniffing a file's type needs only its head."""
        if self.digest is not None:
            return self.digest
        if self.path is None:
            return hashlib.sha256(self.data or b"").hexdigest()
        try:
            with open(self.path, "rb") as f:
                return hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as exc:
            raise MediaFetchError(f"{self.name}: cannot read the file ({exc.strerror or exc})") from None

    def open(self) -> BinaryIO:
        """A fresh binary reader positioned at the start."""
        if self.path is not None:
            return open(self.path, "rb")
        return io.BytesIO(self.data or b"")

    def av_input(self) -> str | BinaryIO:
        """What ``av.open`` takes: a file name (FFmpeg reads it natively) or a buffer."""
        return str(self.path) if self.path is not None else io.BytesIO(self.data or b"")


def human_bytes(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024:
            break
    return f"{n:.1f} {unit}"


def _check_size(name: str, size: int, settings: MediaSettings) -> None:
    if size == 0:
        raise EmptyMediaError(f"{name}: the file is empty (0 bytes)")
    if size > settings.max_bytes:
        raise MediaTooLargeError(
            f"{name}: {human_bytes(size)} is over the size limit of {human_bytes(settings.max_bytes)} "
            "(media.max_bytes)"
        )


def is_url(source: object) -> bool:
    return isinstance(source, str) and source[:8].lower().startswith(_URL_SCHEMES)


@contextmanager
def open_source(source: MediaSource, settings: MediaSettings, *, name: str | None = None) -> Iterator[SourceData]:
    """Resolve ``source``; a download lives in a temporary file until the block exits.

    ``name`` labels raw bytes (an upload's file name), which also gives the
    extension fallback.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        yield _from_bytes(bytes(source), name or "<bytes>", settings)
    elif is_url(source):
        with _download(str(source), settings) as downloaded:
            yield downloaded
    elif isinstance(source, str | os.PathLike):
        yield _from_path(Path(source), settings)
    else:
        raise MediaFetchError(f"cannot read media from a {type(source).__name__}; pass a file path, a URL or bytes")


def _from_bytes(data: bytes, name: str, settings: MediaSettings) -> SourceData:
    _check_size(name, len(data), settings)
    return SourceData(
        name=name,
        suffix=PurePosixPath(name).suffix.lower(),
        digest=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        head=data[:HEAD_BYTES],
        data=data,
    )


def _from_path(path: Path, settings: MediaSettings) -> SourceData:
    name = str(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise MediaFetchError(f"{name}: is a folder, not a media file")
        _check_size(name, size, settings)
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except FileNotFoundError:
        raise MediaFetchError(f"{name}: no such file") from None
    except PermissionError:
        raise MediaFetchError(f"{name}: permission denied") from None
    except OSError as exc:
        raise MediaFetchError(f"{name}: cannot read the file ({exc.strerror or exc})") from None
    return SourceData(name=name, suffix=path.suffix.lower(), size_bytes=size, head=head, path=path)


@contextmanager
def _download(url: str, settings: MediaSettings) -> Iterator[SourceData]:
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    with tempfile.NamedTemporaryFile(prefix="watchkeeper-", suffix=suffix) as tmp:
        yield _fetch_into(url, tmp, suffix, settings)


def _fetch_into(url: str, tmp: BinaryIO, suffix: str, settings: MediaSettings) -> SourceData:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    digest = hashlib.sha256()
    head = b""
    size = 0
    try:
        with urllib.request.urlopen(request, timeout=settings.url_timeout_s) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit():
                # Refuse before reading a byte when the server says it is too big.
                _check_size(url, max(int(declared), 1), settings)
            while chunk := response.read(_CHUNK_BYTES):
                size += len(chunk)
                if size > settings.max_bytes:
                    raise MediaTooLargeError(
                        f"{url}: download passed the size limit of {human_bytes(settings.max_bytes)} "
                        "(media.max_bytes); stopped reading"
                    )
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                digest.update(chunk)
                tmp.write(chunk)
    except urllib.error.HTTPError as exc:
        raise MediaFetchError(f"{url}: the server answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise MediaFetchError(f"{url}: cannot reach the server ({exc.reason})") from None
    except TimeoutError:
        raise MediaFetchError(f"{url}: no answer within {settings.url_timeout_s:g} s (media.url_timeout_s)") from None
    except (http.client.HTTPException, OSError) as exc:
        raise MediaFetchError(f"{url}: the download broke off ({type(exc).__name__}: {exc})") from None
    tmp.flush()
    _check_size(url, size, settings)
    return SourceData(name=url, suffix=suffix, digest=digest.hexdigest(), size_bytes=size, head=head,
                      path=Path(tmp.name))
