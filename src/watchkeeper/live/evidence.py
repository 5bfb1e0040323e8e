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
"""

from __future__ import annotations

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

from ..config import EvidenceSettings
from ..domain import AUDIO_SAMPLE_RATE_HZ, Incident
from ..reasoning.pictures import draw_incident, weapon_crop
from ..samples import mux_audio, write_audio
from .capture import CaptureLoop

log = logging.getLogger(__name__)

SNAPSHOT, WEAPON, CLIP, SOUND = "snapshot.jpg", "weapon.jpg", "clip.mp4", "audio.wav"


@dataclass
class Evidence:
    incident_id: str
    folder: Path
    snapshot: Path | None = None
    weapon: Path | None = None
    clip: Path | None = None
    audio: Path | None = None
    clip_span_s: tuple[float, float] | None = None
    errors: list[str] = field(default_factory=list)


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
                 on_written: Callable[[Evidence], None] | None = None) -> None:
        self.folder = folder / capture.camera.name
        self.capture = capture
        self.settings = settings
        self.on_written = on_written
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
            path = evidence.folder / SNAPSHOT
            draw_incident(picture, incident).save(path, quality=self.settings.jpeg_quality)
            evidence.snapshot = path
            close_up = weapon_crop(picture, incident)
            if close_up is not None:
                close_up.save(evidence.folder / WEAPON, quality=self.settings.jpeg_quality)
                evidence.weapon = evidence.folder / WEAPON
        t_from = max(0.0, incident.t_start_s - self.settings.pre_event_s)
        self._cuts.put(_Cut(evidence, t_from, t_open + self.settings.post_event_s))
        return evidence

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
            if self.on_written is not None:
                self.on_written(cut.evidence)

    def _write(self, cut: _Cut) -> None:
        ring, evidence = self.capture.ring, cut.evidence
        t_to = min(cut.t_to, ring.end_t)
        sound = ring.sound(cut.t_from, t_to)
        if sound is not None and len(sound):
            evidence.audio = write_audio(evidence.folder / SOUND, sound, sr=AUDIO_SAMPLE_RATE_HZ, codec="pcm_s16le")
        frames = ring.clip_frames(cut.t_from, t_to)
        if not frames:
            evidence.errors.append("no pictures of the clip's span were left in the camera's ring")
            return
        t_first = frames[0][0]
        clip_sound = ring.sound(t_first, t_to)
        evidence.clip = write_clip(evidence.folder / CLIP, frames, clip_sound, t_first, self.settings.clip_fps)
        evidence.clip_span_s = (t_first, t_to)
