"""Evidence of a live incident: a snapshot with its boxes, a clip and the sound, from before it started to after.

When an incident opens, its snapshot is written at once (the window's
picture with the incident's boxes and labels drawn). The clip and the sound
span ``pre_event_s`` before the incident's start to ``post_event_s`` after
it opened, so they are cut from the camera's ring once the camera has got
that far (or has stopped), by a thread of their own: the analysis never
waits for an encoder. Files go to ``<folder>/<camera>/<incident id>/``:
``snapshot.jpg``, ``weapon.jpg`` (the weapon close up, when a weapon is part
of the evidence), ``clip.mp4`` (H.264, with AAC sound when the camera has
sound) and ``audio.wav``. A camera in privacy mode keeps none of them.

Given an artefact store (a server's cameras), each piece goes there instead,
for every host to serve: the pictures straight from memory, the clip and the
sound from the incident's folder, which they leave once stored. A piece the
store fails to take stays in (or is written to) that folder instead, and the
evidence's errors say so; the other pieces are still stored.
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from ..artefacts import ArtefactStore
from ..config import EvidenceSettings
from ..domain import AUDIO_SAMPLE_RATE_HZ, Incident
from ..errors import WatchkeeperError
from ..reasoning.pictures import draw_incident, weapon_crop
from ..samples import mux_audio, write_audio
from .capture import CaptureLoop

log = logging.getLogger(__name__)

SNAPSHOT, WEAPON, CLIP, SOUND = "snapshot.jpg", "weapon.jpg", "clip.mp4", "audio.wav"


@dataclass
class Evidence:
    incident_id: str
    folder: Path
    # The files on this machine: as written, or the artefact store's own (None when it keeps them elsewhere).
    snapshot: Path | None = None
    weapon: Path | None = None
    clip: Path | None = None
    audio: Path | None = None
    clip_span_s: tuple[float, float] | None = None
    errors: list[str] = field(default_factory=list)
    artefacts: dict[str, str] = field(default_factory=dict)  # kind (snapshot, weapon, clip, audio) -> address
    sizes: dict[str, int] = field(default_factory=dict)  # kind -> bytes, of the pieces in the artefact store


def write_clip(path: Path, frames: list[tuple[float, bytes]], sound: np.ndarray | None, t_start: float,
               fps: float) -> Path:
    """JPEG frames placed at their times (from ``t_start``, on a ``fps`` grid) and optional 16 kHz sound, as
    H.264/AAC MP4."""
    with av.open(str(path), "w") as container:
        first = cv2.imdecode(np.frombuffer(frames[0][1], np.uint8), cv2.IMREAD_COLOR)
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        video.height, video.width = first.shape[:2]
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "veryfast", "crf": "26"}
        audio = None
        if sound is not None:
            audio = container.add_stream("aac", rate=AUDIO_SAMPLE_RATE_HZ)
            audio.layout = "mono"
        last_pts = -1
        for t, jpeg in frames:
            bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape != first.shape:
                continue
            frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
            # On the grid, so a source whose rate wanders or drops out keeps the clip in step with its sound.
            frame.pts = max(last_pts + 1, round((t - t_start) * fps))
            last_pts = frame.pts
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            mux_audio(container, audio, sound, AUDIO_SAMPLE_RATE_HZ)
    return path


@dataclass(frozen=True)
class _Cut:
    evidence: Evidence
    t_from: float
    t_to: float


class EvidenceRecorder:
    """Writes the evidence of one camera's incidents; ``on_written(evidence)`` hears when each is complete."""

    def __init__(self, folder: Path, capture: CaptureLoop, settings: EvidenceSettings, *,
                 on_written: Callable[[Evidence], None] | None = None,
                 artefacts: ArtefactStore | None = None) -> None:
        self.folder = folder / capture.camera.name
        self.capture = capture
        self.settings = settings
        self.on_written = on_written
        self.artefacts = artefacts
        self.privacy = capture.camera.privacy_mode
        self.evidence: dict[str, Evidence] = {}
        self._cuts: queue.Queue[_Cut | None] = queue.Queue()
        self._thread = threading.Thread(target=self._cut_when_ready, name=f"evidence-{capture.camera.name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def opened(self, incident_id: str, incident: Incident, picture: np.ndarray | None, t_open: float) -> Evidence:
        """Write the snapshot now and schedule the clip and the sound."""
        evidence = Evidence(incident_id, self.folder / incident_id)
        self.evidence[incident_id] = evidence
        if self.privacy:
            return evidence
        evidence.folder.mkdir(parents=True, exist_ok=True)
        if picture is not None:
            self._keep_picture(evidence, SNAPSHOT, draw_incident(picture, incident))
            close_up = weapon_crop(picture, incident)
            if close_up is not None:
                self._keep_picture(evidence, WEAPON, close_up)
        t_from = max(0.0, incident.t_start_s - self.settings.pre_event_s)
        self._cuts.put(_Cut(evidence, t_from, t_open + self.settings.post_event_s))
        return evidence

    def _keep_picture(self, evidence: Evidence, name: str, picture: Image.Image) -> None:
        if self.artefacts is None:
            picture.save(evidence.folder / name, quality=self.settings.jpeg_quality)
            setattr(evidence, _kind(name), evidence.folder / name)
            return
        jpeg = io.BytesIO()
        picture.save(jpeg, format="JPEG", quality=self.settings.jpeg_quality)
        data = jpeg.getvalue()
        artefacts = self.artefacts
        if not self._store(evidence, name, lambda: artefacts.put_bytes(data, "jpg"), len(data)):
            (evidence.folder / name).write_bytes(data)
            setattr(evidence, _kind(name), evidence.folder / name)

    def _keep_file(self, evidence: Evidence, path: Path) -> None:
        """A written clip or sound: moved into the artefact store, or kept where it is (no store, or it failed)."""
        artefacts = self.artefacts
        if artefacts is not None and self._store(evidence, path.name, lambda: artefacts.put_file(path, path.suffix),
                                                 path.stat().st_size):
            path.unlink()
        else:
            setattr(evidence, _kind(path.name), path)

    def _store(self, evidence: Evidence, name: str, put: Callable[[], str], size: int) -> bool:
        """Put one piece into the artefact store; False, with the failure among the evidence's errors, if that
        failed: the store failing must stop neither the other pieces nor the camera's analysis."""
        assert self.artefacts is not None
        try:
            address = put()
        except (WatchkeeperError, OSError) as exc:
            log.error("evidence not stored, kept in its folder: %s", exc,
                      extra={"camera": self.capture.camera.name, "file": str(evidence.folder / name)})
            evidence.errors.append(f"{name} not stored, kept in {evidence.folder}: {exc}")
            return False
        evidence.artefacts[_kind(name)] = address
        evidence.sizes[_kind(name)] = size
        setattr(evidence, _kind(name), self.artefacts.path_on_disk(address))
        return True

    def close(self, timeout_s: float = 60.0) -> None:
        """Finish the pending clips with what the ring holds (the camera has stopped), then stop."""
        if self._thread.is_alive():
            self._cuts.put(None)
            self._thread.join(timeout_s)

    def _cut_when_ready(self) -> None:
        while (cut := self._cuts.get()) is not None:
            ring = self.capture.ring
            # Until the camera has got past the clip's end, or has finished: then what there is makes the clip.
            while not ring.wait_until(cut.t_to, timeout_s=0.5) and not self.capture.finished:
                pass
            try:
                self._write(cut)
            except Exception as exc:  # a broken clip must not lose the next incident's evidence
                log.exception("evidence clip failed", extra={"camera": self.capture.camera.name})
                cut.evidence.errors.append(f"{type(exc).__name__}: {exc}")
            if self.artefacts is not None:
                _clear(cut.evidence)
            if self.on_written is not None:
                self.on_written(cut.evidence)

    def _write(self, cut: _Cut) -> None:
        ring, evidence = self.capture.ring, cut.evidence
        t_to = min(cut.t_to, ring.end_t)
        sound = ring.sound(cut.t_from, t_to)
        if sound is not None and len(sound):
            self._keep_file(evidence, write_audio(evidence.folder / SOUND, sound, sr=AUDIO_SAMPLE_RATE_HZ,
                                                  codec="pcm_s16le"))
        frames = ring.clip_frames(cut.t_from, t_to)
        if not frames:
            evidence.errors.append("no pictures of the clip's span were left in the camera's ring")
            return
        t_first = frames[0][0]
        clip_sound = ring.sound(t_first, t_to)
        self._keep_file(evidence, write_clip(evidence.folder / CLIP, frames, clip_sound, t_first,
                                             self.settings.clip_fps))
        evidence.clip_span_s = (t_first, t_to)


def _clear(evidence: Evidence) -> None:
    """Empty the incident's folder (a clip whose writing failed half-way goes too) but for the pieces the artefact
    store did not take, and remove it once empty."""
    kept = {evidence.snapshot, evidence.weapon, evidence.clip, evidence.audio}
    for path in evidence.folder.glob("*"):
        if path not in kept:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: it holds what was kept
        evidence.folder.rmdir()


def _kind(name: str) -> str:
    """The evidence kind a file name stands for: snapshot.jpg -> snapshot."""
    return name.partition(".")[0]
