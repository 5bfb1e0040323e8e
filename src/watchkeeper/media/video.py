"""Video in one demux pass: sampled RGB frames, small grey motion frames and the audio track.

Decoding is the cost that cannot be avoided, so everything else rides on
the same pass: video and audio packets come from one demux loop, only the
sampled frames are converted to full-size RGB, and the dense motion frames
are scaled and greyed by swscale straight from the decoder's YUV.
"""

from __future__ import annotations

import logging
import math

import av
import numpy as np
from av.container import InputContainer
from av.stream import Disposition
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from ..config import MediaSettings
from ..domain import AUDIO_SAMPLE_RATE_HZ, Frame, Media, MediaInfo, MotionFrames
from ..errors import CorruptMediaError, MediaTooLargeError, UnsupportedMediaError
from .avtools import AudioTrack, av_reason, check_duration, declared_duration_s, open_container, start_time_s
from .sources import SourceData

log = logging.getLogger(__name__)

_TICK_EPS = 1e-6  # in intervals: absorbs float error in pts * time_base
_FALLBACK_FPS = 25.0  # only to step timestamps over frames that carry none


class _Schedule:
    """Picks the first frame at or after each multiple of ``interval_s``."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._next_tick = 0

    def due(self, t_s: float) -> bool:
        ticks = t_s / self.interval_s
        if ticks + _TICK_EPS < self._next_tick:
            return False
        self._next_tick = math.floor(ticks + _TICK_EPS) + 1
        return True


def _check_frame_size(name: str, width: int, height: int, settings: MediaSettings) -> None:
    if width * height > settings.max_video_pixels:
        raise MediaTooLargeError(
            f"{name}: video frames of {width}x{height} ({width * height:,} pixels) are over the limit of "
            f"{settings.max_video_pixels:,} pixels (media.max_video_pixels)"
        )


class _VideoCollector:
    """Takes decoded frames in presentation order and keeps what the analyzers need."""

    def __init__(self, stream: VideoStream, *, name: str, origin_s: float, interval_s: float,
                 settings: MediaSettings) -> None:
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self._step_s = 1.0 / (self.fps or _FALLBACK_FPS)
        self._name = name
        self._origin_s = origin_s
        self._settings = settings
        self._samples = _Schedule(interval_s)
        self._motion = _Schedule(1.0 / settings.motion_fps)
        self._scaler = VideoReformatter()  # reused so swscale keeps its context between frames
        self._motion_size: tuple[int, int] | None = None
        self._cap_logged = False
        self.frames: list[Frame] = []
        self.motion_gray: list[np.ndarray] = []
        self.motion_times_s: list[float] = []
        self.n_decoded = 0
        self.last_t_s: float | None = None
        self.first_size: tuple[int, int] | None = None

    @property
    def end_s(self) -> float:
        return 0.0 if self.last_t_s is None else self.last_t_s + self._step_s

    def add(self, frame: av.VideoFrame) -> None:
        index = self.n_decoded
        self.n_decoded += 1
        if frame.time is not None:
            t_s = frame.time - self._origin_s
        else:
            t_s = 0.0 if self.last_t_s is None else self.last_t_s + self._step_s
        self.last_t_s = t_s
        check_duration(self._name, t_s, self._settings, decoded=True)
        _check_frame_size(self._name, frame.width, frame.height, self._settings)
        if self._motion_size is None:
            self.first_size = (frame.width, frame.height)
            width = min(self._settings.motion_width, frame.width)
            self._motion_size = (width, max(2, round(frame.height * width / frame.width)))
        if self._samples.due(t_s):
            if len(self.frames) < self._settings.max_frames:
                self.frames.append(Frame(index=index, t_s=t_s, rgb=frame.to_ndarray(format="rgb24")))
            elif not self._cap_logged:
                self._cap_logged = True
                log.warning("%s: reached %d sampled frames (media.max_frames); frames after %.1f s are not sampled",
                            self._name, self._settings.max_frames, t_s)
        if self._motion.due(t_s):
            width, height = self._motion_size
            small = self._scaler.reformat(frame, width=width, height=height, format="gray", interpolation="AREA")
            self.motion_gray.append(small.to_ndarray())
            self.motion_times_s.append(t_s)

    def motion(self) -> MotionFrames:
        width, height = self._motion_size or (0, 0)
        gray = np.stack(self.motion_gray) if self.motion_gray else np.zeros((0, height, width), np.uint8)
        fps = min(self._settings.motion_fps, self.fps) if self.fps else self._settings.motion_fps
        return MotionFrames(fps=fps, times_s=np.asarray(self.motion_times_s, np.float64), gray=gray)


def _picture_stream(container: InputContainer) -> VideoStream | None:
    """The first video stream that is moving pictures, not embedded cover art."""
    return next((s for s in container.streams.video if not s.disposition & Disposition.attached_pic), None)


def load_video(src: SourceData, fmt: str, settings: MediaSettings, frame_interval_s: float) -> Media:
    with open_container(src) as container:
        vstream = _picture_stream(container)
        if vstream is None:
            raise UnsupportedMediaError(f"{src.name}: the file has no video stream to analyse")
        astream = container.streams.audio[0] if container.streams.audio else None
        codec = vstream.codec_context
        _check_frame_size(src.name, codec.width, codec.height, settings)
        declared_s = declared_duration_s(container, vstream)
        check_duration(src.name, declared_s, settings)
        codec.thread_type = "AUTO"  # frame and slice threads: decoding is most of the cost

        origin_s = start_time_s(container)
        video = _VideoCollector(vstream, name=src.name, origin_s=origin_s, interval_s=frame_interval_s,
                                settings=settings)
        audio = AudioTrack(astream, name=src.name, origin_s=origin_s, settings=settings) if astream else None
        audio_ok = audio is not None
        try:
            for packet in container.demux([s for s in (vstream, astream) if s is not None]):
                if packet.stream.type == "video":
                    for frame in packet.decode():
                        video.add(frame)
                elif audio_ok:
                    audio_ok = _decode_audio_packet(audio, packet, src.name)
        except av.FFmpegError as exc:
            if video.n_decoded == 0:
                raise CorruptMediaError(f"{src.name}: no video frame could be decoded ({av_reason(exc)})") from None
            log.warning("%s: decoding stopped at %.1f s, keeping the %d frames decoded: %s",
                        src.name, video.end_s, video.n_decoded, av_reason(exc))
        else:
            if video.n_decoded == 0:
                raise CorruptMediaError(f"{src.name}: the video stream holds no decodable frame")
            if declared_s and video.end_s < 0.9 * declared_s - 0.5:
                log.warning("%s: the file claims %.1f s of video but only %.1f s could be decoded; "
                            "it is probably truncated", src.name, declared_s, video.end_s)
        samples = audio.finish() if audio is not None else None
        has_audio = samples is not None and len(samples) > 0
        width, height = video.first_size or (codec.width, codec.height)
        audio_codec = astream.codec_context if astream is not None else None
        info = MediaInfo(
            media_type="video",
            source=src.name,
            format=fmt,
            sha256=src.sha256,
            size_bytes=src.size_bytes,
            width=width,
            height=height,
            duration_s=max(video.end_s, len(samples) / AUDIO_SAMPLE_RATE_HZ if has_audio else 0.0),
            fps=video.fps,
            video_codec=codec.name,
            audio_codec=audio_codec.name if audio_codec is not None else None,
            has_audio=has_audio,
            audio_sample_rate_hz=(audio_codec.sample_rate or None) if audio_codec is not None else None,
            audio_channels=(audio_codec.channels or None) if audio_codec is not None else None,
            frames_sampled=len(video.frames),
            frame_interval_s=frame_interval_s,
        )
    return Media(info=info, frames=video.frames, audio=samples if has_audio else None, motion=video.motion())


def _decode_audio_packet(audio: AudioTrack, packet: av.Packet, name: str) -> bool:
    """Feed one packet; a broken audio track is dropped from there on so the pictures survive."""
    try:
        audio.decode(packet)
    except av.FFmpegError as exc:
        log.warning("%s: the audio track stops decoding at %.1f s (%s); keeping the video",
                    name, audio.n_samples / AUDIO_SAMPLE_RATE_HZ, av_reason(exc))
        return False
    return True
