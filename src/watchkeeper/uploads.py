"""Files that clients send or name: the uploads folder, and server paths limited to the media roots.

An upload is streamed to a temporary file under a size limit, hashed, and
kept only when its first bytes are media the media layer reads and its
extension names that same format (a container family counts as one: an
``.mp4`` may hold QuickTime or M4A data). It is stored under a safe name of
our making; a client's name never becomes a path.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .domain import MediaType
from .errors import (
    EmptyMediaError, MediaError, MediaFetchError, MediaTooLargeError, NotFoundError, UnsafePathError,
    UnsupportedMediaError,
)
from .media.detect import (
    AUDIO_FORMATS, IMAGE_FORMATS, VIDEO_FORMATS, detect_format, extension_format, sniff_format, supported_formats_text,
)
from .media.sources import HEAD_BYTES, SourceData

_CHUNK_BYTES = 1 << 20
_MAX_STEM_CHARS = 100
_ORIGINAL_NAME_CHARS = 255  # the uploads table's column
# What save() produces: an ASCII stem that starts with a letter or digit, then a lower-case extension.
_STORED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,120}\.[a-z0-9]{1,10}")
# Formats that share a container, so one extension may honestly hold another's data.
_SAME_CONTAINER = (frozenset({"mp4", "mov", "m4a"}), frozenset({"mkv", "webm"}))
# MIME subtypes that are not the format's own name.
_MIME_SUBTYPES = {"mp3": "mpeg", "m4a": "mp4", "mkv": "x-matroska", "avi": "x-msvideo", "mov": "quicktime"}
_FORMATS_BY_TYPE: tuple[tuple[MediaType, tuple[str, ...]], ...] = (
    ("image", IMAGE_FORMATS), ("audio", AUDIO_FORMATS), ("video", VIDEO_FORMATS),
)


def _mime_type(media_type: str, fmt: str) -> str:
    return f"{media_type}/{_MIME_SUBTYPES.get(fmt, fmt)}"


# A declared Content-Type names the format of an upload without an extension (a browser's "blob").
_DECLARED_FORMATS = {_mime_type(t, f): f for t, formats in _FORMATS_BY_TYPE for f in formats}


@dataclass(frozen=True)
class StoredUpload:
    filename: str  # the safe stored name, unique in the uploads folder
    path: Path
    size_bytes: int
    sha256: str
    media_type: MediaType
    content_type: str  # from the content, not from the client
    original_name: str


def secure_name(original_name: str) -> tuple[str, str]:
    """``(stem, extension)`` of a client's file name made safe: ASCII letters, digits, ``_`` and ``-`` only."""
    base = re.split(r"[\\/]", original_name)[-1]  # a client's path, Windows ones too, is not ours to keep
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    stem, dot, extension = base.rpartition(".")
    if not dot:
        stem, extension = base, ""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:_MAX_STEM_CHARS].rstrip("_-") or "upload"
    extension = re.sub(r"[^a-z0-9]", "", extension.lower())
    return stem, f".{extension}" if extension else ""


def _same_format(a: str, b: str) -> bool:
    return a == b or any(a in family and b in family for family in _SAME_CONTAINER)


class UploadStore:
    """The uploads folder: media files received from clients, under names of our making."""

    def __init__(self, folder: Path, *, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.folder.mkdir(parents=True, exist_ok=True)

    def save(self, stream: BinaryIO, original_name: str, content_type: str | None = None) -> StoredUpload:
        """Store ``stream`` if it is media whose extension (or, lacking one, ``content_type``) agrees with it."""
        stem, extension = secure_name(original_name)
        if not extension and content_type:
            declared = _DECLARED_FORMATS.get(content_type.split(";")[0].strip().lower())
            extension = f".{declared}" if declared else ""
        named_format = extension_format(extension)
        if named_format is None:
            what = f"the extension '{extension}'" if extension else "no extension"
            raise UnsupportedMediaError(
                f"{original_name}: {what} names no supported media format; supported: {supported_formats_text()}"
            )
        fd, part = tempfile.mkstemp(dir=self.folder, prefix=".upload-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                size, sha256, head = self._copy(stream, out, original_name)
            if size == 0:
                raise EmptyMediaError(f"{original_name}: the file is empty (0 bytes)")
            if sniff_format(head) is None:
                raise UnsupportedMediaError(
                    f"{original_name}: the content is not recognised as media; supported: {supported_formats_text()}"
                )
            # Raises for content of another kind (a PDF, text); opens containers to tell video from audio.
            detected = detect_format(SourceData(name=original_name, suffix=extension, digest=sha256,
                                                size_bytes=size, head=head, path=Path(part)))
            if not _same_format(named_format, detected.format):
                raise UnsupportedMediaError(
                    f"{original_name}: named '{extension}' ({named_format}) but holds {detected.format} data"
                )
            filename = self._place(Path(part), stem, extension)
        except BaseException:
            Path(part).unlink(missing_ok=True)
            raise
        return StoredUpload(
            filename=filename, path=self.folder / filename, size_bytes=size, sha256=sha256,
            media_type=detected.media_type, content_type=_mime_type(detected.media_type, detected.format),
            original_name=original_name[:_ORIGINAL_NAME_CHARS],
        )

    @contextmanager
    def saving(self, stream: BinaryIO, original_name: str, content_type: str | None = None) -> Iterator[StoredUpload]:
        """``save``, undone if the block raises: a file whose database row was not written is not kept."""
        stored = self.save(stream, original_name, content_type)
        try:
            yield stored
        except BaseException:
            stored.path.unlink(missing_ok=True)
            raise

    def path_of(self, filename: str) -> Path:
        """The stored file ``filename``; UnsafePathError for a name save() never makes, NotFoundError if absent."""
        if not _STORED_NAME.fullmatch(filename):
            raise UnsafePathError(f"{filename!r} is not the name of a stored upload")
        path = self.folder / filename
        # A symlink planted in the folder is not an upload.
        if not path.is_file() or path.resolve().parent != self.folder.resolve():
            raise NotFoundError(f"no upload named {filename}")
        return path

    def _copy(self, stream: BinaryIO, out: BinaryIO, name: str) -> tuple[int, str, bytes]:
        """Copy under the size limit: ``(size, sha256, first bytes)``."""
        digest = hashlib.sha256()
        head = b""
        size = 0
        while chunk := stream.read(_CHUNK_BYTES):
            size += len(chunk)
            if size > self.max_bytes:
                raise MediaTooLargeError(
                    f"{name}: the upload passed the limit of {self.max_bytes} bytes (server.upload_max_bytes)"
                )
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            digest.update(chunk)
            out.write(chunk)
        return size, digest.hexdigest(), head

    def _place(self, part: Path, stem: str, extension: str) -> str:
        """Move ``part`` to a free name: the client's, else with a random suffix. O_EXCL makes the claim atomic."""
        candidate = f"{stem}{extension}"
        while True:
            try:
                os.close(os.open(self.folder / candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                candidate = f"{stem}-{secrets.token_hex(4)}{extension}"
                continue
            os.replace(part, self.folder / candidate)
            return candidate


@contextmanager
def named_as_requested(resolved: str | Path, requested: str) -> Iterator[None]:
    """Media errors raised in the block name the file as the request did, not by its resolved server path."""
    try:
        yield
    except MediaError as exc:
        raise type(exc)(str(exc).replace(str(resolved), requested)) from exc


class MediaRoots:
    """The folders whose files requests may name in ``*_path`` fields."""

    def __init__(self, roots: Sequence[Path], *, base: Path) -> None:
        self.roots = [Path(r) for r in roots]
        self.base = Path(base)

    def resolve(self, requested: str) -> Path:
        """The real path of the file ``requested`` names, which must lie inside a root.

        A relative path is tried against ``base`` first (seed 000's
        ``uploads/x.jpg``), then against each root (``x.jpg``). ``..``,
        symlinks leading out of the roots, absolute paths elsewhere and NUL
        bytes raise ``UnsafePathError``; a missing file ``MediaFetchError``.
        """
        if "\x00" in requested:
            raise UnsafePathError("the path contains a NUL byte")
        if not requested.strip():
            raise MediaFetchError("the path is empty")
        path = Path(requested)
        if ".." in path.parts:
            raise UnsafePathError(f"{requested}: '..' is not allowed in media paths")
        real_roots = [root.resolve() for root in self.roots]
        candidates = [path] if path.is_absolute() else [self.base / path, *(root / path for root in self.roots)]
        inside_a_root = False
        for candidate in candidates:
            lexically_inside = any(candidate.absolute().is_relative_to(root.absolute()) for root in self.roots)
            try:
                real = candidate.resolve()
            except RuntimeError:  # Path.resolve's report of a symlink loop
                raise UnsafePathError(f"{requested}: a symlink loop") from None
            if not any(real.is_relative_to(root) for root in real_roots):
                if lexically_inside:  # a symlink on the way leads out
                    raise UnsafePathError(f"{requested}: leads outside the media roots")
                continue
            inside_a_root = True
            if real.is_file():
                return real
        if not inside_a_root:
            raise UnsafePathError(f"{requested}: not inside the media roots (the uploads folder or server.media_roots)")
        raise MediaFetchError(f"{requested}: no such file in the media roots")
