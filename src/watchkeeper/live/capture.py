"""One camera's capture loop: decode at the source's rate, keep the recent past, reconnect when the source drops.

A thread per camera reads its source with PyAV (files, webcams, RTSP, RTMP,
HTTP(S) streams) and keeps, in a ``RecentMedia`` ring, what the analysis of
a window needs: the newest decoded picture, small greyscale frames for
optical flow at ``media.motion_fps``, and the sound as 16 kHz mono. Nothing
waits on the analysis: it reads windows out of the ring when it is ready,
so a slow analyser costs skipped windows, never a stalled or lagging capture.

Times are seconds of camera time since the loop started. For streams and
devices that is the wall clock (a reconnect leaves a gap, not a jump back);
a file is placed on it by its timestamps, paced to the wall clock when
``realtime``, and a looping file carries on from where its last pass ended.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from ..config import CameraSettings, EvidenceSettings, LiveSettings, MediaSettings
from ..domain import AUDIO_SAMPLE_RATE_HZ, Frame, Media, MediaInfo, MotionFrames
from ..media.avtools import av_reason
from .recording import SegmentRecorder

log = logging.getLogger(__name__)

CaptureState = Literal["starting", "connected", "reconnecting", "ended", "stopped"]
_DEVICE_INDEX = re.compile(r"^\d+$")
# Measured frame rate: frames over this many seconds.
_FPS_SPAN_S = 5.0
# Decoded pictures kept for the analysis to pick from (the newest one before a window's end).
_PICTURE_FPS = 4.0
# A live stream's timestamps place its frames on the camera clock (decoding comes in bursts; the clock
# of arrival would bunch them up); a stream that strays this far from the wall clock is re-anchored.
_RESYNC_S = 2.0
# Sound pieces this close to where the last one ended are joined to it (resampling shifts them a little).
_SOUND_JOIN_S = 0.1
# A window is ready when both tracks reached its end, but a sound track this far behind the pictures
# (stalled, or muxed late) holds no window back.
_MAX_SOUND_LAG_S = 1.0


class MissingTrack(Exception):
    """The source opened but lacks the track it is read for (a camera's pictures, a microphone's sound)."""


@dataclass
class CameraHealth:
    """What ``/api/v1/cameras`` and the dashboard show for a camera."""

    state: CaptureState = "starting"
    connected_since: float | None = None  # wall-clock epoch seconds
    frames: int = 0
    fps: float = 0.0
    last_frame_age_s: float | None = None
    width: int | None = None
    height: int | None = None
    has_audio: bool = False
    reconnects: int = 0
    last_error: str | None = None
    recording: str | None = None  # "on, N segments", or why it is paused; None when not recording


def _device(source: str) -> tuple[str, str] | None:
    """A capture device's input name and FFmpeg format: webcams by index or path, ALSA and PulseAudio sound."""
    if _DEVICE_INDEX.match(source):
        return f"/dev/video{source}", "v4l2"
    if source.startswith("/dev/video"):
        return source, "v4l2"
    if source.startswith(("hw:", "plughw:")):
        return source, "alsa"
    if source.startswith("pulse:"):
        return source.removeprefix("pulse:") or "default", "pulse"
    return None


def open_args(source: str, timeout_s: float) -> tuple[str, dict[str, Any]]:
    """``av.open`` arguments for a configured source: devices by index or path, stream options by scheme."""
    device = _device(source)
    if device is not None:
        return device[0], {"format": device[1]}
    options: dict[str, str] = {}
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme in ("rtsp", "rtsps"):
        options["rtsp_transport"] = "tcp"  # UDP loses packets, and with them whole frames, on busy networks
    if scheme in ("http", "https"):
        options["reconnect"] = "0"  # the loop reconnects, with backoff and health reporting
    return source, {"options": options, "timeout": timeout_s}


def is_file_source(source: str) -> bool:
    return "://" not in source and _device(source) is None


class RecentMedia:
    """The recent past of one camera, safe to write from the capture thread and read from others."""

    def __init__(self, name: str, *, buffer_s: float, pictures_s: float, media: MediaSettings,
                 clips: EvidenceSettings | None = None) -> None:
        self.name = name
        # Evidence clips are cut from small JPEGs (``clips``; None in privacy mode: no pictures are kept).
        self.clips = clips
        self._clip_frames: deque[tuple[float, bytes]] = deque()
        self._next_clip_t = 0.0
        self._clip_scaler = VideoReformatter()
        self.buffer_s = buffer_s
        self.pictures_s = pictures_s
        self.motion_fps = media.motion_fps
        self.motion_width = media.motion_width
        self._lock = threading.Condition()
        self._latest: tuple[float, av.VideoFrame] | None = None
        # Decoded frames are references, not copies: a few seconds of them cost a few frames of memory each.
        self._pictures: deque[tuple[float, av.VideoFrame]] = deque()
        self._next_picture_t = 0.0
        self._motion: deque[tuple[float, np.ndarray]] = deque()
        self._next_motion_t = 0.0
        self._scaler = VideoReformatter()
        self._audio: deque[tuple[float, np.ndarray]] = deque()  # (time of first sample, samples)
        self.pictures_end_t = 0.0
        self.sound_end_t = 0.0
        self.fps: float | None = None
        self.has_audio = False  # the source has a sound track (set on connecting)

    # -- writing (capture thread) ----------------------------------------------------------------
    def add_frame(self, t: float, frame: av.VideoFrame) -> None:
        small = None
        if t >= self._next_motion_t:
            width = min(self.motion_width, frame.width)
            height = max(2, round(frame.height * width / frame.width))
            small = self._scaler.reformat(frame, width=width, height=height, format="gray",
                                          interpolation="AREA").to_ndarray()
            step = 1.0 / self.motion_fps
            self._next_motion_t = max(self._next_motion_t + step, t + step / 2)
        jpeg = None
        if self.clips is not None and t >= self._next_clip_t:
            jpeg = self._clip_jpeg(frame)
            self._next_clip_t = max(self._next_clip_t + 1.0 / self.clips.clip_fps, t)
        with self._lock:
            self._latest = (t, frame)
            if jpeg is not None:
                self._clip_frames.append((t, jpeg))
            if t >= self._next_picture_t:
                self._pictures.append((t, frame))
                self._next_picture_t = t + 1.0 / _PICTURE_FPS
            if small is not None:
                self._motion.append((t, small))
            self.pictures_end_t = max(self.pictures_end_t, t)
            self._advance()

    def add_audio(self, t: float, samples: np.ndarray) -> None:
        with self._lock:
            self._audio.append((t, samples))
            self.sound_end_t = max(self.sound_end_t, t + len(samples) / AUDIO_SAMPLE_RATE_HZ)
            self._advance()

    @property
    def end_t(self) -> float:
        """Camera time up to which every track of the source is in the ring."""
        if not self.has_audio:
            return self.pictures_end_t
        return min(self.pictures_end_t, max(self.sound_end_t, self.pictures_end_t - _MAX_SOUND_LAG_S))

    def _advance(self) -> None:
        newest = max(self.pictures_end_t, self.sound_end_t)
        while self._pictures and self._pictures[0][0] < newest - self.pictures_s:
            self._pictures.popleft()
        horizon = newest - self.buffer_s
        while self._clip_frames and self._clip_frames[0][0] < horizon:
            self._clip_frames.popleft()
        while self._motion and self._motion[0][0] < horizon:
            self._motion.popleft()
        while self._audio and self._audio[0][0] + len(self._audio[0][1]) / AUDIO_SAMPLE_RATE_HZ < horizon:
            self._audio.popleft()
        self._lock.notify_all()

    def _clip_jpeg(self, frame: av.VideoFrame) -> bytes:
        assert self.clips is not None
        width = min(self.clips.clip_width, frame.width) // 2 * 2  # even sizes: the H.264 encoder needs them
        height = max(2, round(frame.height * width / frame.width) // 2 * 2)
        bgr = self._clip_scaler.reformat(frame, width=width, height=height, format="bgr24").to_ndarray()
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.clips.jpeg_quality])
        return encoded.tobytes() if ok else b""

    # -- reading ---------------------------------------------------------------------------------
    def clip_frames(self, t_start: float, t_end: float) -> list[tuple[float, bytes]]:
        """The clip frames (time, JPEG) of ``[t_start, t_end)`` still in the ring."""
        with self._lock:
            return [f for f in self._clip_frames if t_start <= f[0] < t_end and f[1]]

    def sound(self, t_start: float, t_end: float) -> np.ndarray | None:
        """The 16 kHz sound of ``[t_start, t_end)``, silence where the ring has none; None without a sound track."""
        with self._lock:
            pieces = list(self._audio)
        return _cut_audio(pieces, t_start, t_end) if self.has_audio else None

    def wait_until(self, t: float, timeout_s: float) -> bool:
        """Block until the ring is filled up to camera time ``t``; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self.end_t >= t, timeout=timeout_s)

    def latest_rgb(self) -> tuple[float, np.ndarray] | None:
        with self._lock:
            latest = self._latest
        return None if latest is None else (latest[0], latest[1].to_ndarray(format="rgb24"))

    def window(self, t_start: float, t_end: float) -> Media | None:
        """The media of ``[t_start, t_end)`` as the analyzers take it: its newest picture, motion, sound.

        None when no picture of the window is left (the source was down, or
        the window is older than the ring).
        """
        with self._lock:
            picture = next((p for p in reversed(self._pictures) if t_start <= p[0] < t_end), None)
            motion = [m for m in self._motion if t_start <= m[0] < t_end]
        if picture is None:
            return None
        t_frame, picture = picture
        rgb = picture.to_ndarray(format="rgb24")
        audio = self.sound(t_start, t_end)
        height, width = rgb.shape[:2]
        grey = np.stack([m[1] for m in motion]) if motion else np.zeros((0, 2, 2), np.uint8)
        info = MediaInfo(
            media_type="video", source=self.name, format="live", sha256="", size_bytes=0, width=width,
            height=height, duration_s=t_end, fps=self.fps, has_audio=audio is not None,
            audio_sample_rate_hz=AUDIO_SAMPLE_RATE_HZ if audio is not None else None,
            audio_channels=1 if audio is not None else None, frames_sampled=1,
            frame_interval_s=t_end - t_start, chunk_start_s=t_start, chunk_end_s=t_end,
        )
        return Media(
            info=info,
            frames=[Frame(index=0, t_s=t_frame, rgb=rgb)],
            audio=audio,
            motion=MotionFrames(fps=self.motion_fps, times_s=np.array([m[0] for m in motion], np.float64),
                                gray=grey),
        )


def _cut_audio(pieces: list[tuple[float, np.ndarray]], t_start: float, t_end: float) -> np.ndarray:
    """Samples of ``[t_start, t_end)``, silence where the ring has none (before the sound started, in gaps)."""
    n = max(0, round((t_end - t_start) * AUDIO_SAMPLE_RATE_HZ))
    out = np.zeros(n, np.float32)
    for t0, samples in pieces:
        first = round((t0 - t_start) * AUDIO_SAMPLE_RATE_HZ)
        lo, hi = max(0, first), min(n, first + len(samples))
        if lo < hi:
            out[lo:hi] = samples[lo - first:hi - first]
    return out


@dataclass
class _Pass:
    """One opening of the source: where its timestamps sit on the camera clock."""

    t0: float  # camera time of the pass's first frame
    wall0: float  # monotonic clock then (pacing)
    origin: float | None = None  # source timestamp of the first frame read
    next_sound_t: float | None = None  # where the sound read so far ends


class CaptureLoop:
    """The capture thread of one camera. ``start()``, read ``ring`` and ``health``, ``stop()``.

    With ``microphone_of``, the loop reads that camera's separate microphone
    (``camera.microphone``) into the camera's ring, on the camera's clock;
    the camera's own loop then leaves the sound track of its source alone.
    """

    def __init__(self, camera: CameraSettings, live: LiveSettings, media: MediaSettings, *,
                 on_state: Callable[[CameraHealth], None] | None = None,
                 microphone_of: CaptureLoop | None = None) -> None:
        self.camera = camera
        self.live = live
        self.microphone_of = microphone_of
        self.source = camera.microphone if microphone_of is not None and camera.microphone else camera.source
        self.file = is_file_source(self.source)
        self.ring = microphone_of.ring if microphone_of is not None else RecentMedia(
            camera.name, buffer_s=live.buffer_s, pictures_s=live.window_s + 2.0, media=media,
            clips=None if camera.privacy_mode else live.evidence)
        # A file read faster than real time waits for its reader: it runs ahead only as far as the ring
        # keeps pictures, so no window the reader has yet to analyse loses its picture.
        self._released = threading.Condition()
        self._released_t = 0.0
        self._health = CameraHealth()
        self._health_lock = threading.Lock()
        self._stop = threading.Event()
        role = "microphone" if microphone_of is not None else "capture"
        self._thread = threading.Thread(target=self._run, name=f"{role}-{camera.name}", daemon=True)
        self._on_state = on_state
        self._clock0 = time.monotonic()
        self._last_frame_wall: float | None = None
        self._frames_seen: deque[float] = deque()
        self.recorder: SegmentRecorder | None = None  # set before start to record continuously

    @property
    def health(self) -> CameraHealth:
        with self._health_lock:
            health = replace(self._health)
        if self._last_frame_wall is not None:
            health.last_frame_age_s = round(time.monotonic() - self._last_frame_wall, 3)
        if self.recorder is not None:
            health.recording = (self.recorder.paused_reason or self.recorder.last_error
                                or f"on, {self.recorder.segments_written} segment(s)")
        return health

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive() and self._health.state in ("ended", "stopped")

    def now(self) -> float:
        """Camera time now, for a live source (files follow their own timestamps)."""
        if self.microphone_of is not None:
            return self.microphone_of.now()
        return time.monotonic() - self._clock0

    def start(self) -> CaptureLoop:
        self._clock0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self.release(float("inf"))
        self._thread.join(timeout_s)
        self._set(state="stopped")

    def join(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)

    def release(self, t: float) -> None:
        """The reader is done with camera time before ``t`` (paces files that are not read in real time)."""
        with self._released:
            self._released_t = max(self._released_t, t)
            self._released.notify_all()

    # -- the loop --------------------------------------------------------------------------------
    def _set(self, **changes: Any) -> None:
        with self._health_lock:
            state_before = self._health.state
            for key, value in changes.items():
                setattr(self._health, key, value)
            health = replace(self._health)
        if self._on_state is not None and health.state != state_before:
            self._on_state(health)

    def _run(self) -> None:
        try:
            self._read_until_stopped()
        finally:
            if self.recorder is not None:
                self.recorder.end()  # the segment in progress is finished, whatever stopped the reading

    def _read_until_stopped(self) -> None:
        backoff = self.live.reconnect_initial_s
        t_next = 0.0  # where a looping file's next pass starts on the camera clock
        while not self._stop.is_set():
            try:
                t_next, delivered = self._one_pass(t_next)
            except (av.FFmpegError, OSError, MissingTrack) as exc:
                delivered = False
                reason = av_reason(exc)
                log.warning("camera %s: %s", self.camera.name, reason, extra={"camera": self.camera.name})
                if self.file:  # a missing or broken file stays so: waiting would not mend it
                    self._set(state="ended", last_error=reason)
                    return
                self._set(last_error=reason)
            else:
                if self._stop.is_set():
                    break
                if self.file and not self.camera.loop:
                    self._set(state="ended")
                    return
                if self.file and delivered:
                    backoff = self.live.reconnect_initial_s
                    continue  # the next pass of a looping file, at once
            if self._stop.is_set():
                break
            if delivered:
                backoff = self.live.reconnect_initial_s
            with self._health_lock:
                self._health.reconnects += 1
            self._set(state="reconnecting", connected_since=None)
            log.info("camera %s: reconnecting in %.1f s", self.camera.name, backoff,
                     extra={"camera": self.camera.name})
            if self._stop.wait(backoff):
                break
            backoff = min(self.live.reconnect_max_s, backoff * 2)
        self._set(state="stopped")

    def _one_pass(self, t_start: float) -> tuple[float, bool]:
        """Read the source until it ends, fails or the loop stops; returns the camera time reached and
        whether any frame came."""
        url, kwargs = open_args(self.source, self.live.connect_timeout_s)
        container = av.open(url, metadata_errors="ignore", **kwargs)
        with container:
            audio = container.streams.audio[0] if container.streams.audio else None
            if self.microphone_of is not None:
                video = None
                if audio is None:
                    raise MissingTrack(f"{self.source} has no sound")
            else:
                video = next(iter(container.streams.video), None)
                if video is None:
                    raise MissingTrack(f"{self.source} has no video stream")
                video.thread_type = "AUTO"
                rate = video.average_rate or video.guessed_rate
                self.ring.fps = float(rate) if rate else None
                if self.camera.microphone:
                    audio = None  # the camera's sound comes from its microphone
            streams = [s for s in (video, audio) if s is not None]
            self.ring.has_audio = audio is not None or bool(self.camera.microphone)
            run = _Pass(t0=t_start if self.file else self.now(), wall0=time.monotonic())
            if self.recorder is not None:
                self.recorder.begin(video, audio)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_SAMPLE_RATE_HZ)
            delivered = False
            t_reached = t_start
            for packet in container.demux(*streams):
                if self._stop.is_set():
                    break
                for decoded in packet.decode():
                    t = self._place(run, decoded)
                    if t is None:
                        continue
                    if not delivered and (video is None) == isinstance(decoded, av.AudioFrame):
                        delivered = True
                        self._set(state="connected", connected_since=time.time(), last_error=None,
                                  width=getattr(decoded, "width", None), height=getattr(decoded, "height", None),
                                  has_audio=audio is not None)
                    if isinstance(decoded, av.VideoFrame):
                        self.ring.add_frame(t, decoded)
                        self._count_frame()
                    else:
                        if video is None:
                            self._count_frame()
                        for piece in resampler.resample(decoded):
                            samples = piece.to_ndarray().reshape(-1).astype(np.float32)
                            if run.next_sound_t is not None and abs(t - run.next_sound_t) < _SOUND_JOIN_S:
                                t = run.next_sound_t
                            self.ring.add_audio(t, samples)
                            run.next_sound_t = t + len(samples) / AUDIO_SAMPLE_RATE_HZ
                    t_reached = max(t_reached, t)
                if self.recorder is not None:
                    self.recorder.write(packet)  # after decoding: recording re-labels the packet
        step = 1.0 / self.ring.fps if self.ring.fps else 0.04
        return t_reached + step, delivered

    def _place(self, run: _Pass, decoded: av.VideoFrame | av.AudioFrame) -> float | None:
        """The frame's camera time, from its timestamp; for a realtime file, waits until the wall clock gets
        there, and a file read faster waits for its reader."""
        if decoded.time is None:
            return None if self.file else self.now()
        if run.origin is None:
            run.origin = decoded.time
            if not self.file:
                run.t0 = self.now()
        t = run.t0 + decoded.time - run.origin
        if not self.file:
            if abs(t - self.now()) > _RESYNC_S:  # a jump in the stream's clock, or a long stall
                run.origin, run.t0, run.next_sound_t = decoded.time, self.now(), None
                t = run.t0
            return t
        if self.camera.realtime:
            delay = run.wall0 + (t - run.t0) - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
        else:
            with self._released:
                self._released.wait_for(lambda: t <= self._released_t + self.ring.pictures_s)
        return t

    def _count_frame(self) -> None:
        now = time.monotonic()
        self._last_frame_wall = now
        self._frames_seen.append(now)
        while self._frames_seen and self._frames_seen[0] < now - _FPS_SPAN_S:
            self._frames_seen.popleft()
        span = now - self._frames_seen[0] if len(self._frames_seen) > 1 else 0.0
        with self._health_lock:
            self._health.frames += 1
            self._health.fps = round((len(self._frames_seen) - 1) / span, 2) if span > 0 else 0.0


def camera_from_source(source: str | Path, name: str | None = None, **options: Any) -> CameraSettings:
    """A camera for ``watchkeeper monitor SOURCE`` and ``Monitor(source)``: named after the source by default."""
    text = str(source)
    if name is None:
        stem = Path(text.split("?", 1)[0].rstrip("/")).name or "camera"
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", stem)[:64].lstrip("-._") or "camera"
    return CameraSettings(name=name, source=text, **options)
