"""Audio files (and the audio of any container) to float32 mono 16 kHz samples."""

from __future__ import annotations

import logging

import av

from ..config import MediaSettings
from ..domain import AUDIO_SAMPLE_RATE_HZ, Media, MediaInfo
from ..errors import CorruptMediaError, EmptyMediaError, UnsupportedMediaError
from .avtools import AudioTrack, av_reason, check_duration, declared_duration_s, open_container, start_time_s
from .sources import SourceData

log = logging.getLogger(__name__)


def load_audio(src: SourceData, fmt: str, settings: MediaSettings) -> Media:
    with open_container(src) as container:
        if not container.streams.audio:
            raise UnsupportedMediaError(f"{src.name}: the file has no audio stream to analyse")
        stream = container.streams.audio[0]
        check_duration(src.name, declared_duration_s(container, stream), settings)
        track = AudioTrack(stream, name=src.name, origin_s=start_time_s(container), settings=settings)
        try:
            for packet in container.demux(stream):
                track.decode(packet)
        except av.FFmpegError as exc:
            if track.n_samples == 0:
                raise CorruptMediaError(f"{src.name}: no audio could be decoded ({av_reason(exc)})") from None
            log.warning(
                "%s: audio decoding stopped at %.1f s, keeping what was decoded: %s",
                src.name, track.n_samples / AUDIO_SAMPLE_RATE_HZ, av_reason(exc),
            )
        samples = track.finish()
        codec = stream.codec_context
        info = MediaInfo(
            media_type="audio",
            source=src.name,
            format=fmt,
            sha256=src.sha256,
            size_bytes=src.size_bytes,
            duration_s=len(samples) / AUDIO_SAMPLE_RATE_HZ,
            audio_codec=codec.name,
            has_audio=True,
            audio_sample_rate_hz=codec.sample_rate or None,
            audio_channels=codec.channels or None,
        )
    if len(samples) == 0:
        raise EmptyMediaError(f"{src.name}: the audio stream holds no samples")
    return Media(info=info, audio=samples)
