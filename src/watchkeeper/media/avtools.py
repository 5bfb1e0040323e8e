"""PyAV pieces shared by the audio and video loaders: opening, limits, the audio track."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer

from ..config import MediaSettings
from ..domain import AUDIO_SAMPLE_RATE_HZ
from ..errors import CorruptMediaError, MediaTooLargeError
from .sources import SourceData

log = logging.getLogger(__name__)


def av_reason(exc: BaseException) -> str:
    """FFmpeg's own words for an error, without the errno and file name PyAV adds."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


@contextmanager
def open_container(src: SourceData) -> Iterator[InputContainer]:
    try:
        container = av.open(src.av_input(), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise CorruptMediaError(
            f"{src.name}: cannot open the file; it is damaged, truncated or not really {src.suffix or 'media'} "
            f"({av_reason(exc)})"
        ) from None
    with container:
        yield container


def declared_duration_s(container: InputContainer, stream: av.stream.Stream) -> float | None:
    """The duration the headers claim (a truncated file may claim more than it holds)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def start_time_s(container: InputContainer) -> float:
    """Where the media's clock starts; frame and audio times are taken relative to it."""
    return container.start_time / av.time_base if container.start_time is not None else 0.0


def check_duration(name: str, duration_s: float | None, settings: MediaSettings, *, decoded: bool = False) -> None:
    if duration_s is not None and duration_s > settings.max_duration_s:
        how = "decoding passed" if decoded else "lasts"
        raise MediaTooLargeError(
            f"{name}: {how} {duration_s:.2f} s, over the duration limit of {settings.max_duration_s:g} s "
            "(media.max_duration_s)"
        )


class AudioTrack:
    """Decodes one audio stream, packet by packet, to float32 mono at 16 kHz.

    Silence is prepended when the stream starts after the media's clock, so
    sample ``i`` is always at ``i / 16000`` seconds into the media. Samples
    are handed out in consecutive pieces (``take``) so a long track need not
    be held whole.
    """

    def __init__(self, stream: AudioStream, *, name: str, origin_s: float, settings: MediaSettings) -> None:
        self.stream = stream
        self._name = name
        self._origin_s = origin_s
        self._settings = settings
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_SAMPLE_RATE_HZ)
        self._pending: list[np.ndarray] = []
        self._started = False
        self.n_samples = 0  # decoded so far, taken or not
        self._n_taken = 0

    def decode(self, packet: av.Packet) -> None:
        for frame in packet.decode():
            self.add(frame)

    def add(self, frame: av.AudioFrame) -> None:
        if not self._started and frame.time is not None:
            lead = round((frame.time - self._origin_s) * AUDIO_SAMPLE_RATE_HZ)
            if lead > 0:
                self._append(np.zeros(lead, np.float32))
        self._started = True
        for out in self._resampler.resample(frame):
            self._append(out.to_ndarray().reshape(-1))
        check_duration(self._name, self.n_samples / AUDIO_SAMPLE_RATE_HZ, self._settings, decoded=True)

    def _append(self, samples: np.ndarray) -> None:
        self._pending.append(samples)
        self.n_samples += len(samples)

    def flush(self) -> None:
        """Drain the resampler at the end of the stream."""
        try:
            for out in self._resampler.resample(None):
                self._append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as exc:  # a broken tail costs at most the resampler's delay
            log.warning("%s: could not flush the audio resampler: %s", self._name, av_reason(exc))

    def take(self, until: int | None = None) -> np.ndarray:
        """The samples not yet taken, up to sample number ``until`` (all of them when None)."""
        pending = np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
        count = len(pending) if until is None else min(max(until - self._n_taken, 0), len(pending))
        # The remainder is copied so it does not pin the piece handed out once that is dropped.
        self._pending = [pending[count:].copy()] if count < len(pending) else []
        self._n_taken += count
        return pending[:count]

    def finish(self) -> np.ndarray:
        """Flush the resampler and return every sample not yet taken."""
        self.flush()
        return self.take()
