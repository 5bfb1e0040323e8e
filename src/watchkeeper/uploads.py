"""Files that clients send or name: uploads in the artefact store, and server paths limited to the media roots.

An upload is streamed to a temporary file under a size limit, hashed, and
kept only when its first bytes are media the media layer reads and its
extension names that same format (a container family counts as one: an
``.mp4`` may hold QuickTime or M4A data). Its bytes go to the artefact store
(every host reads them there), its row in the uploads table gives it a safe
name of our making, unique among uploads; a client's name never becomes a path.
Requests name an upload as seed 000's ``uploads/NAME`` (or plain ``NAME``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .artefacts import ArtefactNotFoundError, ArtefactStore, address_of, as_reference, file_sha256
from .domain import MediaType
from .errors import (
    EmptyMediaError, MediaError, MediaFetchError, MediaTooLargeError, NotFoundError, UnsafePathError,
    UnsupportedMediaError,
)
from .media.detect import (
    AUDIO_FORMATS, IMAGE_FORMATS, VIDEO_FORMATS, detect_format, extension_format, sniff_format, supported_formats_text,
)
from .media.sources import HEAD_BYTES, SourceData
from .store.db import Database
from .store.models import Analysis, Job, Upload
from .store.references import lock_addresses, release

log = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20
_MAX_STEM_CHARS = 100
_ORIGINAL_NAME_CHARS = 255  # the uploads table's column
UPLOADS_FOLDER = "uploads"  # seed 000's file_path is "uploads/NAME"
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
    filename: str  # the safe name; once recorded, unique among uploads
    artefact: str  # its address in the artefact store
    size_bytes: int
    sha256: str
    media_type: MediaType
    content_type: str  # from the content, not from the client
    original_name: str
    spool: Path | None = field(default=None, compare=False)  # the checked bytes, while ``saving`` keeps them

    @classmethod
    def of(cls, row: Upload) -> StoredUpload:
        assert row.artefact is not None
        return cls(filename=row.filename, artefact=row.artefact, size_bytes=row.size_bytes, sha256=row.sha256,
                   media_type=row.media_type, content_type=row.content_type or "application/octet-stream",
                   original_name=row.original_name)


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
    """Media files received from clients: their bytes in the artefact store, their names in the uploads table."""

    def __init__(self, artefacts: ArtefactStore, db: Database, *, spool_dir: Path, max_bytes: int) -> None:
        self.artefacts = artefacts
        self.db = db
        self.spool_dir = Path(spool_dir)  # where an upload is checked before it is stored
        self.max_bytes = max_bytes
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    def save(self, stream: BinaryIO, original_name: str, content_type: str | None = None) -> StoredUpload:
        """Store ``stream`` if it is media whose extension (or, lacking one, ``content_type``) agrees with it;
        ``record`` then gives it its name (``saving`` is the safer way: it also keeps the bytes at hand)."""
        with self._spooled(stream, original_name, content_type) as stored:
            return replace(stored, spool=None)

    @contextmanager
    def _spooled(self, stream: BinaryIO, original_name: str, content_type: str | None) -> Iterator[StoredUpload]:
        """``save``, with the checked file kept in the spool folder until the block ends."""
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
        fd, part = tempfile.mkstemp(dir=self.spool_dir, prefix=".upload-", suffix=".part")
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
            artefact = self.artefacts.put_file(Path(part), extension, sha256=sha256)
            yield StoredUpload(
                filename=f"{stem}{extension}", artefact=artefact, size_bytes=size, sha256=sha256,
                media_type=detected.media_type, content_type=_mime_type(detected.media_type, detected.format),
                original_name=original_name[:_ORIGINAL_NAME_CHARS], spool=Path(part),
            )
        finally:
            Path(part).unlink(missing_ok=True)

    @contextmanager
    def saving(self, stream: BinaryIO, original_name: str, content_type: str | None = None) -> Iterator[StoredUpload]:
        """``save``, undone if the block raises: an object whose database row was not written is not kept (unless
        another row refers to the same bytes). Until the block ends the bytes stay in the spool folder, for
        ``record`` to store again should another upload's failure or a purge have deleted the object meanwhile."""
        with self._spooled(stream, original_name, content_type) as stored:
            try:
                yield stored
            except BaseException:
                with self.db.session() as session:
                    release(session, self.artefacts, [stored.artefact])
                raise

    def record(self, session: Session, stored: StoredUpload, *, uploaded_by: int | None) -> Upload:
        """The upload's row, under the first free name: the client's, else with a random suffix (the unique
        filename column decides, also between uploads at the same moment)."""
        stem, extension = os.path.splitext(stored.filename)
        # Under the address's lock until commit no release decides on the object; one that went since save()
        # (an upload of the same bytes failing, a purge) goes back before the row names it.
        lock_addresses(session, [stored.artefact])
        if not self.artefacts.exists(stored.artefact):
            if stored.spool is None:
                raise ArtefactNotFoundError(f"{stored.filename}: its stored bytes were deleted; upload it again")
            self.artefacts.put_file(stored.spool, extension, sha256=stored.sha256)
        candidate = stored.filename
        while True:
            row = Upload(filename=candidate, artefact=stored.artefact, original_name=stored.original_name,
                         size_bytes=stored.size_bytes, sha256=stored.sha256, media_type=stored.media_type,
                         content_type=stored.content_type, uploaded_by=uploaded_by)
            try:
                with session.begin_nested():
                    session.add(row)
                return row
            except IntegrityError:
                if session.scalar(select(Upload.id).where(Upload.filename == candidate)) is None:
                    raise  # another constraint than the name's
                candidate = f"{stem}-{secrets.token_hex(4)}{extension}"

    def find(self, requested: str) -> StoredUpload | None:
        """The upload that a request's path names (``uploads/NAME`` or ``NAME``); None when it names none, so
        that the path may still be a file in a media root."""
        parts = PurePosixPath(requested).parts
        if not (len(parts) == 1 or (len(parts) == 2 and parts[0] == UPLOADS_FOLDER)):
            return None
        if not _STORED_NAME.fullmatch(parts[-1]):
            return None
        with self.db.session(write=False) as session:
            row = session.scalar(select(Upload).where(Upload.filename == parts[-1], Upload.artefact.is_not(None)))
            return StoredUpload.of(row) if row is not None else None

    def get(self, filename: str) -> StoredUpload:
        """The upload named ``filename``; UnsafePathError for a name save() never makes, NotFoundError if absent."""
        if not _STORED_NAME.fullmatch(filename):
            raise UnsafePathError(f"{filename!r} is not the name of a stored upload")
        stored = self.find(filename)
        if stored is None:
            raise NotFoundError(f"no upload named {filename}")
        return stored

    def adopt(self, folder: Path) -> int:
        """Put the files of uploads stored before the artefact store (in ``folder``, the old uploads folder)
        into the store, and remove them there; returns how many.

        Analyses and pending jobs that name such a file by its path name it by its reference instead. Each
        upload is one transaction, and its file goes once that is committed: a failure part-way leaves every
        row naming something that exists.
        """
        with self.db.session(write=False) as session:
            waiting = list(session.scalars(select(Upload.id).where(Upload.artefact.is_(None))))
        adopted = 0
        for upload_id in waiting:
            with self.db.session() as session:
                row = session.get(Upload, upload_id, with_for_update=True)
                if row is None or row.artefact is not None:
                    continue  # deleted, or adopted by another server, meanwhile
                path = folder / row.filename
                if not (_STORED_NAME.fullmatch(row.filename) and path.is_file() and not path.is_symlink()):
                    continue  # no file of ours to adopt
                sha256 = file_sha256(path)
                row.artefact = address_of(sha256, path.suffix)
                lock_addresses(session, [row.artefact])  # see record()
                self.artefacts.put_file(path, path.suffix, sha256=sha256)
                # The path as it was recorded: the media root's real path (MediaRoots.resolve).
                _name_by_reference(session, {str(path), str(path.resolve())}, as_reference(row.artefact))
            path.unlink(missing_ok=True)
            adopted += 1
        if adopted:
            log.info("uploads moved into the artefact store", extra={"uploads": adopted, "folder": str(folder)})
        return adopted

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


def _name_by_reference(session: Session, paths: Collection[str], reference: str) -> None:
    """Analyses and jobs still to run that name a file by one of ``paths`` name ``reference`` instead."""
    session.execute(update(Analysis).where(Analysis.media_path.in_(paths)).values(media_path=reference))
    source = Job.params["source"].as_string()
    for job in session.scalars(select(Job).where(Job.state == "pending", source.in_(paths))):
        job.params = {**job.params, "source": reference}


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
