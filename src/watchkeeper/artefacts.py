"""Shared artefacts: uploads and live incidents' evidence, kept once each by content hash, for every host to reach.

An artefact's address is the SHA-256 of its bytes in hex plus the extension of
its kind (``3fa9...c1.jpg``). The same bytes always get the same address, so
storing them twice keeps one object, an object never changes once written,
and a host may keep a copy of one without ever asking whether it is stale. The
extension stays so that a copy handed to a tool (FFmpeg, OpenCV) or served to
a browser still says what it holds.

Database rows keep addresses. Where a value may also be a path on a server
(an analysis's ``media_path``, an incident's evidence), it is written as the
reference ``artefact:<address>``.

Backends (``artefacts.backend``): ``local``, a folder (a network folder that
every host mounts, when there are several), objects sharded by the hash's
first characters and written atomically (a temporary file, then a rename);
``s3``, a bucket of S3-compatible storage through boto3, with a bounded cache
of local copies for the tools that read files.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import mimetypes
import os
import re
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .errors import ArtefactStoreError, NotFoundError

if TYPE_CHECKING:
    from .config import S3ArtefactSettings, Settings

ADDRESS = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,10}")
REFERENCE_PREFIX = "artefact:"
CHUNK_BYTES = 1 << 20
GB = 1024**3
# A hidden temporary file older than this was left by a process that died while writing it.
_ABANDONED_AFTER_S = 3600


def address_of(sha256: str, extension: str) -> str:
    """The address of bytes with this SHA-256 (hex) and this extension (with or without its dot)."""
    address = f"{sha256}.{extension.lstrip('.').lower()}"
    if not ADDRESS.fullmatch(address):
        raise ValueError(f"not an artefact address: {address!r}")
    return address


def as_reference(address: str) -> str:
    return REFERENCE_PREFIX + address


def referenced_address(value: str | None) -> str | None:
    """The address that a stored value refers to (``artefact:<address>``); None for a path, or for nothing."""
    if value and value.startswith(REFERENCE_PREFIX) and ADDRESS.fullmatch(address := value[len(REFERENCE_PREFIX):]):
        return address
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def media_type_of(address: str) -> str:
    return mimetypes.guess_type(address)[0] or "application/octet-stream"


class ArtefactNotFoundError(NotFoundError):
    """No object has this address (never stored, or deleted since)."""


@dataclass
class OpenedArtefact:
    stream: BinaryIO
    size_bytes: int  # the bytes the stream holds: the object's, or those of the range asked for

    def chunks(self) -> Iterator[bytes]:
        """The bytes in pieces, closing the stream at the end (a response body)."""
        left = self.size_bytes
        with self.stream:
            while left > 0 and (chunk := self.stream.read(min(CHUNK_BYTES, left))):
                left -= len(chunk)
                yield chunk


class ArtefactStore(ABC):
    """Objects by content address: put once, read from any host, deleted when nothing refers to them."""

    def put_file(self, path: Path, extension: str, *, sha256: str | None = None) -> str:
        """Store the file (``sha256``: its digest, when the caller has just computed it); returns its address."""
        address = address_of(sha256 or file_sha256(path), extension)
        self._put(address, lambda: path.open("rb"))
        return address

    def put_bytes(self, data: bytes, extension: str) -> str:
        address = address_of(hashlib.sha256(data).hexdigest(), extension)
        self._put(address, lambda: io.BytesIO(data))
        return address

    def _put(self, address: str, source: Callable[[], BinaryIO]) -> None:
        if not self.exists(address):  # content addressing: an object there already holds these very bytes
            with source() as stream:
                self._write(address, stream)

    @abstractmethod
    def _write(self, address: str, stream: BinaryIO) -> None:
        """Write the object so that readers see all of it or none of it."""

    @abstractmethod
    def exists(self, address: str) -> bool: ...

    @abstractmethod
    def open(self, address: str, byte_range: tuple[int, int] | None = None) -> OpenedArtefact:
        """The object's bytes as a stream, or those from ``byte_range``'s first to its last (both included, within
        the object); ArtefactNotFoundError when there is none."""

    @abstractmethod
    def size(self, address: str) -> int:
        """The object's length in bytes; ArtefactNotFoundError when there is none."""

    @abstractmethod
    def local_path(self, address: str) -> AbstractContextManager[Path]:
        """``with store.local_path(address) as path:`` a file on this machine holding the object, for tools that
        read files; it stays there until the block ends. ArtefactNotFoundError when there is none."""

    @abstractmethod
    def delete(self, address: str) -> None:
        """Remove the object (nothing happens when there is none). Callers first make sure no row refers to it."""

    def path_on_disk(self, address: str) -> Path | None:
        """The object's own file when this backend keeps objects on a file system here (no copy is made)."""
        return None


def _check(address: str) -> str:
    if not ADDRESS.fullmatch(address):
        raise ArtefactNotFoundError(f"{address!r} is not an artefact address")
    return address


@contextmanager
def _hidden_temporary(folder: Path) -> Iterator[tuple[BinaryIO, Path]]:
    """A new hidden file in ``folder``, removed again unless the block renames it."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
    part = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out, part
    finally:
        part.unlink(missing_ok=True)


class LocalArtefactStore(ArtefactStore):
    """Objects in a folder, as ``<root>/3f/a9/<address>``: two levels of 256 folders keep every folder small."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, address: str) -> Path:
        return self.root / address[:2] / address[2:4] / _check(address)

    def _existing(self, address: str) -> Path:
        path = self._path(address)
        if not path.is_file():
            raise ArtefactNotFoundError(f"no artefact {address}")
        return path

    def _write(self, address: str, stream: BinaryIO) -> None:
        target = self._path(address)
        with _hidden_temporary(target.parent) as (out, part):
            shutil.copyfileobj(stream, out, CHUNK_BYTES)
            out.flush()
            os.fsync(out.fileno())  # on disk before it has its name: a crash leaves no object with part of its bytes
            os.fchmod(out.fileno(), 0o644)  # the other hosts' services read it too
            # Atomic: readers see no object or the whole one; writers of the same bytes at once leave one object.
            os.replace(part, target)

    def exists(self, address: str) -> bool:
        return self._path(address).is_file()

    def open(self, address: str, byte_range: tuple[int, int] | None = None) -> OpenedArtefact:
        path = self._existing(address)
        stream = path.open("rb")
        if byte_range is None:
            return OpenedArtefact(stream, path.stat().st_size)
        stream.seek(byte_range[0])
        return OpenedArtefact(stream, byte_range[1] - byte_range[0] + 1)

    def size(self, address: str) -> int:
        return self._existing(address).stat().st_size

    @contextmanager
    def local_path(self, address: str) -> Iterator[Path]:
        yield self._existing(address)

    def delete(self, address: str) -> None:
        self._path(address).unlink(missing_ok=True)

    def path_on_disk(self, address: str) -> Path | None:
        path = self._path(address)
        return path if path.is_file() else None


class LocalCopies:
    """Copies of remote objects for tools that read files, in one folder of this machine.

    Past ``max_bytes`` the least recently used copies go. A copy in use holds
    a shared lock (flock) on itself, so that no process of this machine
    deletes it from under a reader.
    """

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.folder.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def path(self, address: str, download: Callable[[str, BinaryIO], None]) -> Iterator[Path]:
        path = self.folder / _check(address)
        while True:
            if not path.exists():
                with _hidden_temporary(self.folder) as (out, part):
                    download(address, out)
                    out.flush()
                    os.replace(part, path)
            try:
                copy = path.open("rb")
            except FileNotFoundError:  # trimmed meanwhile: fetch it again
                continue
            with copy:
                fcntl.flock(copy, fcntl.LOCK_SH)
                if os.fstat(copy.fileno()).st_nlink == 0:  # trimmed between the open and the lock
                    continue
                os.utime(copy.fileno())  # the most recently used now
                yield path
            break
        self.trim()

    def trim(self) -> None:
        """Delete the least recently used copies (none in use) until the rest fit; and abandoned downloads."""
        copies, total = [], 0
        now = time.time()
        for entry in os.scandir(self.folder):
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue
            if entry.name.startswith("."):
                if stat.st_mtime < now - _ABANDONED_AFTER_S:
                    Path(entry.path).unlink(missing_ok=True)
                continue
            copies.append((stat.st_mtime, stat.st_size, Path(entry.path)))
            total += stat.st_size
        for _, size, path in sorted(copies):
            if total <= self.max_bytes:
                return
            if _delete_unless_in_use(path):
                total -= size


def _delete_unless_in_use(path: Path) -> bool:
    try:
        with path.open("rb") as copy:
            try:
                fcntl.flock(copy, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            path.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
    return True


class S3ArtefactStore(ArtefactStore):
    """Objects in a bucket of S3-compatible storage, as ``<prefix>3f/<address>``; local copies in ``copies``."""

    def __init__(self, settings: S3ArtefactSettings, copies: LocalCopies) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = settings.bucket or ""
        self.prefix = settings.prefix
        self.copies = copies
        # One client for the process: boto3's clients are thread-safe, its sessions are not. Short timeouts and
        # few retries (botocore's defaults: 60 s each, more tries): a camera's analysis waits on its evidence.
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=settings.endpoint_url, region_name=settings.region,
            aws_access_key_id=settings.access_key_id, aws_secret_access_key=settings.secret_access_key,
            config=Config(s3={"addressing_style": settings.addressing_style}, connect_timeout=5, read_timeout=30,
                          retries={"mode": "standard", "max_attempts": 2}))  # retries: 3 tries in all

    def _key(self, address: str) -> str:
        return f"{self.prefix}{address[:2]}/{_check(address)}"

    @contextmanager
    def _errors(self, doing: str, address: str) -> Iterator[None]:
        """botocore's errors as this module's: a missing object, or the storage failing."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise ArtefactNotFoundError(f"no artefact {address}") from None
            raise ArtefactStoreError(f"s3://{self.bucket}/{self._key(address)}: {doing} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise ArtefactStoreError(f"s3://{self.bucket}/{self._key(address)}: {doing} failed: {exc}") from exc

    def _write(self, address: str, stream: BinaryIO) -> None:
        # One PUT (or a multipart upload completed at the end): the object appears whole or not at all.
        with self._errors("upload", address):
            self._client.upload_fileobj(stream, self.bucket, self._key(address),
                                        ExtraArgs={"ContentType": media_type_of(address)})

    def exists(self, address: str) -> bool:
        try:
            with self._errors("head", address):
                self._client.head_object(Bucket=self.bucket, Key=self._key(address))
        except ArtefactNotFoundError:
            return False
        return True

    def open(self, address: str, byte_range: tuple[int, int] | None = None) -> OpenedArtefact:
        ranged = {} if byte_range is None else {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"}
        with self._errors("download", address):
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(address), **ranged)
        return OpenedArtefact(response["Body"], response["ContentLength"])

    def size(self, address: str) -> int:
        with self._errors("head", address):
            return int(self._client.head_object(Bucket=self.bucket, Key=self._key(address))["ContentLength"])

    def _download(self, address: str, out: BinaryIO) -> None:
        with self._errors("download", address):
            self._client.download_fileobj(self.bucket, self._key(address), out)

    @contextmanager
    def local_path(self, address: str) -> Iterator[Path]:
        with self.copies.path(address, self._download) as path:
            yield path

    def delete(self, address: str) -> None:
        with self._errors("delete", address):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(address))


def open_artefact_store(settings: Settings) -> ArtefactStore:
    """The store ``settings.artefacts`` describes; folders default to ones in the data folder."""
    config, data_dir = settings.artefacts, Path(settings.data_dir)
    if config.backend == "s3":
        copies = LocalCopies(config.cache_dir or data_dir / "artefact-cache", int(config.cache_max_gb * GB))
        return S3ArtefactStore(config.s3, copies)
    return LocalArtefactStore(config.local.path or data_dir / "artefacts")


@contextmanager
def local_media(store: ArtefactStore, source: str) -> Iterator[str]:
    """A file to analyse: an ``artefact:`` reference's local copy, or ``source`` itself (a path on this machine)."""
    address = referenced_address(source)
    if address is None:
        yield source
        return
    with store.local_path(address) as path:
        yield str(path)
