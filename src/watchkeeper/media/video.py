"""Video decoded once, whole or in consecutive chunks: sampled RGB frames, small grey motion frames, audio.

Decoding is the cost that cannot be avoided, so everything else rides on it:
only the sampled frames are converted to full-size RGB, and the dense motion
frames are scaled and greyed by swscale straight from the decoder's YUV.

Pictures and sound are read by two demuxers over the same file, each told to
skip the other's packets and advanced only as far as the chunk being cut, so
memory follows the chunk length whatever the file's interleaving. (A single
demuxer would have to hold whatever the muxer put ahead: files whose video
runs tens of seconds ahead of their audio are common, and an audio track that
stops early would hold back every later frame.)

Chunk ``k`` spans ``[k * chunk_s, (k + 1) * chunk_s)`` of the file and holds
the sampled frames, motion frames and audio samples of that span, all with
absolute times. The sampling schedules run across chunks unchanged, so the
chunks together hold exactly what one whole-file pass gives, with one
addition: every chunk after the first starts its motion frames with the last
motion frame of the chunks before it (time before ``chunk_start_s``), so
optical flow sees no seam. A remainder shorter than a quarter chunk joins the
last chunk instead of becoming a sliver of its own, and the last chunk ends
where decoding ended.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial

import av
import numpy as np
from av.container import InputContainer
from av.stream import Discard, Disposition
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
_TAIL_CHUNKS = 0.25  # a remainder shorter than this many chunks joins the last chunk


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


def _only_stream(container: InputContainer, keep: av.stream.Stream) -> None:
    """Have the demuxer skip every other stream's packets instead of reading them."""
    for stream in container.streams:
        if stream.index != keep.index:
            stream.discard = Discard.all


class _VideoTrack:
    """Decodes the picture stream as far as asked and keeps what the analyzers need until it is taken."""

    def __init__(self, container: InputContainer, stream: VideoStream, *, name: str, origin_s: float,
                 interval_s: float, declared_s: float | None, settings: MediaSettings) -> None:
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self._step_s = 1.0 / (self.fps or _FALLBACK_FPS)
        self._name = name
        self._origin_s = origin_s
        self._declared_s = declared_s
        self._settings = settings
        self._decoded = (frame for packet in container.demux(stream) for frame in packet.decode())
        self._samples = _Schedule(interval_s)
        self._motion = _Schedule(1.0 / settings.motion_fps)
        self._scaler = VideoReformatter()  # reused so swscale keeps its context between frames
        self._motion_size: tuple[int, int] | None = None
        self._n_sampled = 0
        self._frames: list[Frame] = []
        self._motion_frames: list[tuple[float, np.ndarray]] = []
        self._motion_carry: list[tuple[float, np.ndarray]] = []  # the last motion frame already taken
        self.n_decoded = 0
        self.last_t_s: float | None = None
        self.first_size: tuple[int, int] | None = None
        self.ended = False

    @property
    def end_s(self) -> float:
        return 0.0 if self.last_t_s is None else self.last_t_s + self._step_s

    def fill_to(self, t_s: float) -> None:
        """Decode until a frame at or after ``t_s`` (so every frame before it is in) or the end."""
        while not self.ended and (self.last_t_s is None or self.last_t_s < t_s):
            try:
                frame = next(self._decoded)
            except StopIteration:
                self._finish(None)
            except av.FFmpegError as exc:
                self._finish(exc)
            else:
                self._add(frame)

    def _finish(self, error: av.FFmpegError | None) -> None:
        self.ended = True
        if error is not None:
            if self.n_decoded == 0:
                raise CorruptMediaError(f"{self._name}: no video frame could be decoded ({av_reason(error)})")
            log.warning("%s: decoding stopped at %.1f s, keeping the %d frames decoded: %s",
                        self._name, self.end_s, self.n_decoded, av_reason(error))
        elif self.n_decoded == 0:
            raise CorruptMediaError(f"{self._name}: the video stream holds no decodable frame")
        elif self._declared_s and self.end_s < 0.9 * self._declared_s - 0.5:
            log.warning("%s: the file claims %.1f s of video but only %.1f s could be decoded; "
                        "it is probably truncated", self._name, self._declared_s, self.end_s)

    def _add(self, frame: av.VideoFrame) -> None:
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
            self._n_sampled += 1
            if self._n_sampled <= self._settings.max_frames:
                self._frames.append(Frame(index=index, t_s=t_s, rgb=frame.to_ndarray(format="rgb24")))
            elif self._n_sampled == self._settings.max_frames + 1:
                log.warning("%s: reached %d sampled frames (media.max_frames); frames after %.1f s are not sampled",
                            self._name, self._settings.max_frames, t_s)
        if self._motion.due(t_s):
            width, height = self._motion_size
            small = self._scaler.reformat(frame, width=width, height=height, format="gray", interpolation="AREA")
            self._motion_frames.append((t_s, small.to_ndarray()))

    def take(self, end_s: float) -> tuple[list[Frame], MotionFrames]:
        """Hand over the frames before ``end_s``; motion starts with the last motion frame handed over before."""
        frames = [f for f in self._frames if f.t_s < end_s]
        self._frames = [f for f in self._frames if f.t_s >= end_s]
        motion = [m for m in self._motion_frames if m[0] < end_s]
        self._motion_frames = [m for m in self._motion_frames if m[0] >= end_s]
        with_carry = self._motion_carry + motion
        self._motion_carry = with_carry[-1:]
        return frames, self._motion_of(with_carry)

    def _motion_of(self, motion: list[tuple[float, np.ndarray]]) -> MotionFrames:
        width, height = self._motion_size or (0, 0)
        gray = np.stack([m[1] for m in motion]) if motion else np.zeros((0, height, width), np.uint8)
        fps = min(self._settings.motion_fps, self.fps) if self.fps else self._settings.motion_fps
        return MotionFrames(fps=fps, times_s=np.asarray([m[0] for m in motion], np.float64), gray=gray)


class _AudioFeed:
    """The audio track, read by a demuxer of its own and decoded only as far as asked."""

    def __init__(self, container: InputContainer, *, name: str, origin_s: float, settings: MediaSettings) -> None:
        stream = container.streams.audio[0]
        _only_stream(container, stream)
        self.track = AudioTrack(stream, name=name, origin_s=origin_s, settings=settings)
        self._name = name
        self._packets = container.demux(stream)
        self.ended = False

    @property
    def end_s(self) -> float:
        return self.track.n_samples / AUDIO_SAMPLE_RATE_HZ

    def fill_to(self, t_s: float) -> None:
        while not self.ended and self.end_s < t_s:
            try:
                self.track.decode(next(self._packets))
            except StopIteration:
                self._finish()
            except av.FFmpegError as exc:
                # A broken audio track is dropped from there on so the pictures survive.
                log.warning("%s: the audio track stops decoding at %.1f s (%s); keeping the video",
                            self._name, self.end_s, av_reason(exc))
                self._finish()

    def _finish(self) -> None:
        self.ended = True
        self.track.flush()


def _picture_stream(container: InputContainer) -> VideoStream | None:
    """The first video stream that is moving pictures, not embedded cover art."""
    return next((s for s in container.streams.video if not s.disposition & Disposition.attached_pic), None)


def iter_video(src: SourceData, fmt: str, settings: MediaSettings, frame_interval_s: float,
               chunk_s: float | None = None) -> Iterator[Media]:
    """The video as one ``Media`` (``chunk_s`` None) or as consecutive chunks of ``chunk_s`` seconds.

    Errors met while decoding are raised from the ``next()`` that meets them;
    a file that breaks off after some chunks ends the iteration with a warning.
    """
    with ExitStack() as open_files:
        container = open_files.enter_context(open_container(src))
        vstream = _picture_stream(container)
        if vstream is None:
            raise UnsupportedMediaError(f"{src.name}: the file has no video stream to analyse")
        codec = vstream.codec_context
        _check_frame_size(src.name, codec.width, codec.height, settings)
        declared_s = declared_duration_s(container, vstream)
        check_duration(src.name, declared_s, settings)
        codec.thread_type = "AUTO"  # frame and slice threads: decoding is most of the cost
        _only_stream(container, vstream)

        origin_s = start_time_s(container)
        video = _VideoTrack(container, vstream, name=src.name, origin_s=origin_s, interval_s=frame_interval_s,
                            declared_s=declared_s, settings=settings)
        audio = None
        audio_codec = container.streams.audio[0].codec_context if container.streams.audio else None
        if audio_codec is not None:
            audio = _AudioFeed(open_files.enter_context(open_container(src)), name=src.name, origin_s=origin_s,
                               settings=settings)
        describe = partial(
            MediaInfo,
            media_type="video",
            source=src.name,
            format=fmt,
            sha256=src.sha256,
            size_bytes=src.size_bytes,
            fps=video.fps,
            video_codec=codec.name,
            audio_codec=audio_codec.name if audio_codec is not None else None,
            audio_sample_rate_hz=(audio_codec.sample_rate or None) if audio_codec is not None else None,
            audio_channels=(audio_codec.channels or None) if audio_codec is not None else None,
            frame_interval_s=frame_interval_s,
        )

        span_s = chunk_s or math.inf
        start_s, index, last = 0.0, 0, False
        while not last:
            end_s = (index + 1) * span_s
            lookahead_s = end_s + _TAIL_CHUNKS * span_s
            video.fill_to(lookahead_s)
            if audio is not None:
                audio.fill_to(lookahead_s)
            decoded_s = max(video.end_s, audio.end_s if audio is not None else 0.0)
            last = video.ended and (audio is None or audio.ended) and decoded_s <= lookahead_s
            if last:  # it ends where decoding ended, and that is the file's duration now known
                end_s = duration_s = decoded_s
            else:
                duration_s = max(declared_s, end_s) if declared_s is not None else None
            frames, motion = video.take(math.inf if last else end_s)
            samples = None
            if audio is not None:
                samples = audio.track.take(None if last else round(end_s * AUDIO_SAMPLE_RATE_HZ))
            has_audio = samples is not None and len(samples) > 0
            width, height = video.first_size or (codec.width, codec.height)
            info = describe(
                width=width,
                height=height,
                duration_s=duration_s,
                has_audio=has_audio,
                frames_sampled=len(frames),
                chunk_index=index,
                chunk_start_s=start_s,
                chunk_end_s=None if last and index == 0 else end_s,
            )
            yield Media(info=info, frames=frames, audio=samples if has_audio else None, motion=motion)
            start_s, index = end_s, index + 1

