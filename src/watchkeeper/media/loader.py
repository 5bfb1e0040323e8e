"""``load_media`` and ``iter_media``: any supported input to decoded ``Media``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from ..config import MediaSettings
from ..domain import Frame, Media, MediaType
from ..errors import MediaError
from .audio import load_audio
from .detect import DetectedFormat, detect_format
from .image import load_image
from .sources import MediaSource, open_source
from .video import iter_video

log = logging.getLogger(__name__)

_MEDIA_TYPES = ("image", "audio", "video")


def detect_media_type(source: MediaSource, settings: MediaSettings | None = None, *,
                      name: str | None = None) -> DetectedFormat:
    """What ``load_media`` would load ``source`` as: ``(media_type, format)``.

    Raises ``UnsupportedMediaError`` for content that is no supported media.
    """
    with open_source(source, settings or MediaSettings(), name=name) as src:
        return detect_format(src)


def iter_media(
    source: MediaSource,
    media_type: MediaType | None = None,
    settings: MediaSettings | None = None,
    *,
    frame_interval_s: float | None = None,
    name: str | None = None,
    chunk_s: float | None = None,
) -> Iterator[Media]:
    """Decode a path, raw bytes or an http(s) URL into ``Media``: one, or consecutive chunks of a video.

    Images and audio give one ``Media``, and so does a video when
    ``chunk_s`` is None. With ``chunk_s`` a video gives chunks of that many
    seconds from one decoding pass, so memory follows the chunk, not the
    file: chunk ``k`` holds the sampled frames, motion frames and audio of
    ``[k * chunk_s, (k + 1) * chunk_s)`` with absolute times, and its
    ``info`` says where it sits (``chunk_index``, ``chunk_start_s``,
    ``chunk_end_s``; ``duration_s`` is the whole file's). Every chunk after
    the first starts its motion frames with the previous chunk's last one,
    so optical flow has no seam; a remainder under a quarter chunk joins the
    last chunk. A video no longer than 1.25 chunks gives exactly what
    ``load_media`` gives.

    The arguments are checked at the call; the input is read, and every
    other ``MediaError`` raised, from the first ``next()`` on. A video that
    breaks off mid-way gives the chunks decoded so far and a logged warning.
    """
    settings = settings or MediaSettings()
    if media_type is not None and media_type not in _MEDIA_TYPES:
        raise MediaError(f"unknown media type {media_type!r}; use one of {', '.join(_MEDIA_TYPES)}")
    interval_s = settings.frame_interval_s if frame_interval_s is None else frame_interval_s
    if not interval_s > 0:
        raise MediaError(f"frame_interval_s must be a positive number of seconds, got {frame_interval_s!r}")
    if chunk_s is not None and not chunk_s > 0:
        raise MediaError(f"chunk_s must be a positive number of seconds or None, got {chunk_s!r}")
    return _decode(source, media_type, settings, interval_s, name, chunk_s)


def _decode(source: MediaSource, media_type: MediaType | None, settings: MediaSettings, interval_s: float,
            name: str | None, chunk_s: float | None) -> Iterator[Media]:
    started = time.perf_counter()
    with open_source(source, settings, name=name) as src:
        detected = detect_format(src, media_type)
        if detected.media_type == "image":
            yield load_image(src, detected.format, settings)
        elif detected.media_type == "audio":
            yield load_audio(src, detected.format, settings)
        else:
            yield from iter_video(src, detected.format, settings, interval_s, chunk_s)
    log.debug("decoded %s (%s %s) in %.2f s", src.name, detected.media_type, detected.format,
              time.perf_counter() - started)


def load_media(
    source: MediaSource,
    media_type: MediaType | None = None,
    settings: MediaSettings | None = None,
    *,
    frame_interval_s: float | None = None,
    name: str | None = None,
) -> Media:
    """Decode a path, raw bytes or an http(s) URL into frames, audio and metadata, whole.

    ``media_type`` forces how the input is read (e.g. ``"audio"`` for the
    sound track of a video); ``frame_interval_s`` overrides
    ``settings.frame_interval_s`` for videos; ``name`` labels raw bytes in
    messages and gives their extension. Every failure is a ``MediaError``.
    ``iter_media`` decodes long videos in chunks.
    """
    [media] = iter_media(source, media_type, settings, frame_interval_s=frame_interval_s, name=name)
    return media


def nearest_frames(source: MediaSource, media_type: MediaType | None, times_s: list[float],
                   settings: MediaSettings | None = None, *, frame_interval_s: float | None = None) -> list[Frame]:
    """The decoded frame nearest each time (one per time, in order; none for sound), decoding chunk by chunk."""
    settings = settings or MediaSettings()
    best: dict[int, tuple[float, Frame]] = {}
    for chunk in iter_media(source, media_type, settings, frame_interval_s=frame_interval_s, chunk_s=settings.chunk_s):
        for frame in chunk.frames:
            for n, t in enumerate(times_s):
                if n not in best or abs(frame.t_s - t) < best[n][0]:
                    best[n] = (abs(frame.t_s - t), frame)
    return [best[n][1] for n in range(len(times_s)) if n in best]
