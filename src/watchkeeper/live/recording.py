"""Continuous recording: a camera's own packets into MP4 segments, and the retention that keeps the disk safe.

The capture loop hands every packet it reads to its ``SegmentRecorder``,
which copies it into the current segment without decoding or encoding
(the cost is a write). A segment ends at the first picture keyframe after
``segment_s`` (so every segment plays on its own) and whenever the source
reconnects. Segments are ``<folder>/<camera>/YYYYMMDD-HHMMSS.mp4``, named by
the wall clock at their first packet; a file still being written ends in
``.part`` and is renamed when it closes.

``Retention`` deletes segments older than ``max_age_h``, then the oldest of
every camera until all of them fit in ``max_total_gb``; incidents' evidence
likewise by ``live.evidence.max_age_days`` and ``max_total_gb``, a whole
incident at a time: its folder, and its evidence in the artefact store (which
its row then no longer names). When the disk still
has less than ``min_free_gb`` free, recorders are paused and report why in
their camera's health, instead of filling the disk; they resume once there
is room again.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import av

from ..artefacts import ArtefactStore
from ..config import EvidenceSettings, RecordingSettings
from ..store.db import Database
from ..store.live import drop_evidence, incidents_with_stored_evidence
from ..store.models import IncidentRecord
from ..store.references import EVIDENCE_KINDS

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".mp4"
WRITING_SUFFIX = ".part"
GB = 1024**3


class SegmentRecorder:
    """Writes one camera's packets into segments. Used by its capture thread only."""

    def __init__(self, folder: Path, settings: RecordingSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.folder = folder
        self.settings = settings
        self._clock = clock
        self.paused_reason: str | None = None  # set by Retention when the disk is short of room
        self.segments_written = 0
        self.last_error: str | None = None
        self._output: Any = None
        self._path: Path | None = None
        self._streams: dict[int, Any] = {}  # input stream index -> output stream
        self._templates: list[Any] = []
        self._offsets: dict[int, int] = {}
        self._started = 0.0

    def begin(self, *streams: Any) -> None:
        """A new opening of the source: its streams are what the next segments copy."""
        self._close()
        self._templates = [s for s in streams if s is not None]

    def write(self, packet: av.Packet) -> None:
        if packet.dts is None or packet.pts is None or not self._templates:
            return
        if self.paused_reason is not None:
            self._close()
            return
        keyframe = packet.is_keyframe and packet.stream.type == "video"
        if self._output is not None and keyframe and self._clock() - self._started >= self.settings.segment_s:
            self._close()
        if self._output is None:
            if not keyframe and any(s.type == "video" for s in self._templates):
                return  # a segment starts on a keyframe: before it, nothing could be decoded
            self._open()
        index = packet.stream.index
        target = self._streams.get(index)
        if target is None:
            return
        offset = self._offsets.setdefault(index, packet.dts)
        packet.pts, packet.dts = packet.pts - offset, packet.dts - offset
        if packet.dts < 0:
            return  # from before the segment's first packet of its stream (reordering at the cut)
        packet.stream = target
        try:
            self._output.mux(packet)
        except av.FFmpegError as exc:  # one bad packet costs the segment, never the capture
            self.last_error = f"recording: {exc}"
            log.warning("%s", self.last_error)
            self._close()

    def end(self) -> None:
        """The source closed: finish the segment."""
        self._close()

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(self._clock()).strftime("%Y%m%d-%H%M%S")
        path = self.folder / f"{stamp}{SEGMENT_SUFFIX}"
        n = 1
        while path.exists():
            path = self.folder / f"{stamp}-{n}{SEGMENT_SUFFIX}"
            n += 1
        self._path = path
        self._output = av.open(str(path) + WRITING_SUFFIX, "w", format="mp4")
        self._streams = {s.index: self._output.add_stream_from_template(s) for s in self._templates}
        self._offsets = {}
        self._started = self._clock()

    def _close(self) -> None:
        if self._output is None:
            return
        try:
            self._output.close()
        except av.FFmpegError as exc:
            self.last_error = f"recording: {exc}"
        assert self._path is not None
        written = Path(str(self._path) + WRITING_SUFFIX)
        if written.exists() and written.stat().st_size > 0:
            written.rename(self._path)
            self.segments_written += 1
        else:
            written.unlink(missing_ok=True)
        self._output, self._path = None, None


@dataclass(frozen=True)
class Stored:
    """A unit retention keeps or deletes whole: a recording segment, one incident's evidence folder, or one
    incident's evidence in the artefact store (its row's id)."""

    key: Path | int
    size: int
    modified: float


def prune(units: list[Stored], *, older_than: float, max_bytes: float,
          delete: Callable[[Stored], None]) -> list[Stored]:
    """Delete the units older than ``older_than``, then the oldest until the rest fit ``max_bytes``; the
    units kept come back, oldest first."""
    keep = []
    for unit in sorted(units, key=lambda u: (u.modified, str(u.key))):
        (delete(unit) if unit.modified < older_than else keep.append(unit))
    total = sum(u.size for u in keep)
    while keep and total > max_bytes:
        oldest = keep.pop(0)
        delete(oldest)
        total -= oldest.size
    return keep


def segments(root: Path) -> list[Stored]:
    """Finished recording segments of every camera under ``root``."""
    return [unit for path in root.glob(f"*/*{SEGMENT_SUFFIX}") if (unit := _stat(path, path)) is not None]


def evidence_folders(root: Path) -> list[Stored]:
    """Every incident's evidence folder under ``root`` (``<camera>/<incident>/``), as one unit each."""
    units = []
    for folder in root.glob("*/*/"):
        files = [f for f in folder.iterdir() if f.is_file()] if folder.is_dir() else []
        stats = [u for f in files if (u := _stat(f, f)) is not None]
        if stats:
            units.append(Stored(folder, sum(u.size for u in stats), max(u.modified for u in stats)))
    return units


class StoredEvidence:
    """Live incidents' evidence in the artefact store, one unit per incident: the bytes its row counts, its time
    of creation."""

    def __init__(self, db: Database, artefacts: ArtefactStore) -> None:
        self.db = db
        self.artefacts = artefacts

    def units(self) -> list[Stored]:
        with self.db.session(write=False) as session:
            return [Stored(row_id, size, created.timestamp())
                    for row_id, size, created in incidents_with_stored_evidence(session)]

    def delete(self, unit: Stored) -> None:
        with self.db.session() as session:
            row = session.get(IncidentRecord, unit.key, with_for_update=True)
            if row is not None:  # other servers' retention may be at it too: whoever is first drops it
                drop_evidence(session, self.artefacts, row, EVIDENCE_KINDS)


def _stat(path: Path, unit: Path) -> Stored | None:
    try:
        stat = path.stat()
    except FileNotFoundError:  # deleted meanwhile
        return None
    return Stored(unit, stat.st_size, stat.st_mtime)


class Retention:
    """Keeps recordings (and, given ``evidence``, incident evidence) within their age and size limits, and
    the disk from filling."""

    def __init__(self, root: Path, settings: RecordingSettings, *, clock: Callable[[], float] = time.time,
                 free_bytes: Callable[[Path], int] | None = None,
                 evidence: tuple[Path, EvidenceSettings] | None = None,
                 stored_evidence: StoredEvidence | None = None) -> None:
        self.root = root
        self.settings = settings
        self.evidence = evidence
        self.stored_evidence = stored_evidence  # within the same limits as the evidence folders
        self._clock = clock
        self._free_bytes = free_bytes or (lambda path: shutil.disk_usage(path).free)
        self.recorders: list[SegmentRecorder] = []
        self.deleted: list[Path | int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def enforce(self) -> None:
        """One pass: evidence by age and size; recordings by age, total size, then free space."""
        now = self._clock()
        if self.evidence is not None:
            folder, limits = self.evidence
            older_than, max_bytes = now - limits.max_age_days * 86400, limits.max_total_gb * GB
            prune(evidence_folders(folder), older_than=older_than, max_bytes=max_bytes, delete=self._delete)
            if self.stored_evidence is not None:
                # The database or artefact store may be away: that must not stop the recordings' pruning
                # and the free-space check below, or the recordings' disk fills during the outage.
                try:
                    prune(self.stored_evidence.units(), older_than=older_than, max_bytes=max_bytes,
                          delete=self._drop_stored)
                except Exception as error:
                    log.warning("stored evidence not pruned this pass (recordings still are): %s", error)
        keep = prune(segments(self.root), older_than=now - self.settings.max_age_h * 3600,
                     max_bytes=self.settings.max_total_gb * GB, delete=self._delete)
        if not self.recorders:
            return  # free space is the recorders' concern: nothing records here now
        self.root.mkdir(parents=True, exist_ok=True)
        free = self._free_bytes(self.root)
        while keep and free < self.settings.min_free_gb * GB:
            oldest = keep.pop(0)
            self._delete(oldest)
            free += oldest.size
        reason = None
        if free < self.settings.min_free_gb * GB:
            reason = (f"recording paused: {free / GB:.2f} GB free on the recordings' disk, under "
                      f"live.recording.min_free_gb = {self.settings.min_free_gb:g}")
        for recorder in self.recorders:
            if reason and recorder.paused_reason is None:
                log.error("%s", reason)
            recorder.paused_reason = reason

    def _delete(self, unit: Stored) -> None:
        assert isinstance(unit.key, Path)
        if unit.key.is_dir():
            shutil.rmtree(unit.key, ignore_errors=True)
        else:
            unit.key.unlink(missing_ok=True)
        self.deleted.append(unit.key)

    def _drop_stored(self, unit: Stored) -> None:
        assert self.stored_evidence is not None
        self.stored_evidence.delete(unit)
        self.deleted.append(unit.key)

    def start(self, every_s: float = 30.0) -> None:
        def run() -> None:
            while not self._stop.is_set():
                try:
                    self.enforce()
                except Exception:  # the disk, the database or the artefact store: the next pass tries again
                    log.exception("recording retention failed")
                self._stop.wait(every_s)

        self._thread = threading.Thread(target=run, name="recording-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
