"""``load_media``: any supported input to decoded ``Media``."""

from __future__ import annotations

import logging
import time

from ..config import MediaSettings
from ..domain import Media, MediaType
from ..errors import MediaError
from .audio import load_audio
from .detect import DetectedFormat, detect_format
from .image import load_image
from .sources import MediaSource, open_source
from .video import load_video

log = logging.getLogger(__name__)

_MEDIA_TYPES = ("image", "audio", "video")


def detect_media_type(source: MediaSource, settings: MediaSettings | None = None, *,
                      name: str | None = None) -> DetectedFormat:
    """What ``load_media`` would load ``source`` as: ``(media_type, format)``.

    Raises ``UnsupportedMediaError`` for content that is no supported media.
    """
    with open_source(source, settings or MediaSettings(), name=name) as src:
        return detect_format(src)


def load_media(
    source: MediaSource,
    media_type: MediaType | None = None,
    settings: MediaSettings | None = None,
    *,
    frame_interval_s: float | None = None,
    name: str | None = None,
) -> Media:
    """Decode a path, raw bytes or an http(s) URL into frames, audio and metadata.

    ``media_type`` forces how the input is read (e.g. ``"audio"`` for the
    sound track of a video); ``frame_interval_s`` overrides
    ``settings.frame_interval_s`` for videos; ``name`` labels raw bytes in
    messages and gives their extension. Every failure is a ``MediaError``.
    """
    settings = settings or MediaSettings()
    if media_type is not None and media_type not in _MEDIA_TYPES:
        raise MediaError(f"unknown media type {media_type!r}; use one of {', '.join(_MEDIA_TYPES)}")
    interval_s = settings.frame_interval_s if frame_interval_s is None else frame_interval_s
    if not interval_s > 0:
        raise MediaError(f"frame_interval_s must be a positive number of seconds, got {frame_interval_s!r}")
    started = time.perf_counter()
    with open_source(source, settings, name=name) as src:
        detected = detect_format(src, media_type)
        if detected.media_type == "image":
            media = load_image(src, detected.format, settings)
        elif detected.media_type == "audio":
            media = load_audio(src, detected.format, settings)
        else:
            media = load_video(src, detected.format, settings, interval_s)
    log.debug("loaded %s (%s %s) in %.2f s", media.info.source, detected.media_type, detected.format,
              time.perf_counter() - started)
    return media
