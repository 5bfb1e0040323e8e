"""What a file is: its signature first, then its streams, then its extension."""

from __future__ import annotations

from typing import NamedTuple

import av
from av.stream import Disposition

from ..domain import MediaType
from ..errors import UnsupportedMediaError
from .sources import SourceData

IMAGE_FORMATS = ("jpeg", "png", "webp", "bmp", "gif")
AUDIO_FORMATS = ("wav", "mp3", "flac", "ogg", "m4a", "aac")
VIDEO_FORMATS = ("mp4", "mkv", "avi", "mov", "webm")

# The type a format usually holds; containers in _PROBED are opened to look at their streams.
_FORMAT_TYPES: dict[str, MediaType] = {
    **{f: "image" for f in IMAGE_FORMATS},
    **{f: "audio" for f in AUDIO_FORMATS},
    **{f: "video" for f in VIDEO_FORMATS},
}
_PROBED = frozenset({"mp4", "mov", "m4a", "mkv", "webm", "ogg", "avi"})

_EXTENSIONS = {
    ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".jfif": "jpeg", ".png": "png", ".webp": "webp",
    ".bmp": "bmp", ".gif": "gif", ".wav": "wav", ".wave": "wav", ".mp3": "mp3", ".flac": "flac",
    ".ogg": "ogg", ".oga": "ogg", ".opus": "ogg", ".m4a": "m4a", ".aac": "aac", ".mp4": "mp4",
    ".m4v": "mp4", ".mov": "mov", ".qt": "mov", ".mkv": "mkv", ".webm": "webm", ".avi": "avi",
}

_RIFF_FORMATS = {b"WEBP": "webp", b"WAVE": "wav", b"AVI ": "avi"}
_ISO_BRANDS = {
    b"M4A ": "m4a", b"M4B ": "m4a", b"M4P ": "m4a", b"qt  ": "mov",
    b"heic": "heic", b"heix": "heic", b"mif1": "heic", b"msf1": "heic", b"avif": "avif", b"avis": "avif",
}
# QuickTime files from old cameras start with an atom instead of ``ftyp``.
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
_OTHER_SIGNATURES = (
    (b"%PDF", "pdf"), (b"PK\x03\x04", "zip"), (b"\x1f\x8b", "gzip"), (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"),
)


class DetectedFormat(NamedTuple):
    media_type: MediaType
    format: str  # short name: jpeg, wav, mp4... ("unknown" when only the caller's media_type is known)


def supported_formats_text() -> str:
    return (
        f"images ({', '.join(IMAGE_FORMATS)}), audio ({', '.join(AUDIO_FORMATS)}), "
        f"video ({', '.join(VIDEO_FORMATS)})"
    )


def extension_format(suffix: str) -> str | None:
    """The media format an extension (``.jpg``) names; None for one the media layer does not read."""
    return _EXTENSIONS.get(suffix.lower())


def sniff_format(head: bytes) -> str | None:
    """The format named by the file's first bytes, media or not; None when nothing matches."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"BM") and head[6:10] == b"\x00\x00\x00\x00":  # reserved header fields are zero
        return "bmp"
    if head.startswith(b"RIFF"):
        return _RIFF_FORMATS.get(head[8:12])
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska, or WebM when its doc type says so
        return "webm" if b"webm" in head[:64] else "mkv"
    if head[4:8] == b"ftyp":
        return _ISO_BRANDS.get(head[8:12], "mp4")
    if head[4:8] in _QUICKTIME_ATOMS:
        return "mov"
    if head.startswith(b"ID3") or _is_mpeg_audio_sync(head):
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:  # ADTS: sync word, layer 0
        return "aac"
    for signature, name in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return name
    return "text" if _looks_like_text(head) else None


def _is_mpeg_audio_sync(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, a real layer, a valid bitrate and sample rate."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    layer = (head[1] >> 1) & 0x3
    bitrate_index = head[2] >> 4
    rate_index = (head[2] >> 2) & 0x3
    return layer != 0 and bitrate_index != 0xF and rate_index != 0x3


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # only a character cut at the end of the sample
    return True


def _probe_streams(src: SourceData) -> MediaType | None:
    """``video`` when a container holds a real picture stream (not cover art), else ``audio``."""
    try:
        with av.open(src.av_input(), metadata_errors="ignore") as container:
            if any(not s.disposition & Disposition.attached_pic for s in container.streams.video):
                return "video"
            if container.streams.audio:
                return "audio"
    except av.FFmpegError:
        return None  # unreadable: the loader for the format's usual type reports why
    return None


def detect_format(src: SourceData, media_type: MediaType | None = None) -> DetectedFormat:
    """Decide how to load ``src``; ``media_type`` overrides the type, the format is still named."""
    content_format = sniff_format(src.head)
    if content_format is None:
        fmt = _EXTENSIONS.get(src.suffix)
    else:
        fmt = content_format if content_format in _FORMAT_TYPES else None
    if media_type is not None:
        return DetectedFormat(media_type, fmt or content_format or _EXTENSIONS.get(src.suffix, "unknown"))
    if fmt is None:
        if content_format is not None:
            what = f"a {content_format} file"
        elif src.suffix:
            what = f"an unrecognised format (extension '{src.suffix}')"
        else:
            what = "an unrecognised format"
        raise UnsupportedMediaError(
            f"{src.name}: {what}, not a supported media file; supported: {supported_formats_text()}"
        )
    detected_type = _probe_streams(src) if fmt in _PROBED else None
    return DetectedFormat(detected_type or _FORMAT_TYPES[fmt], fmt)
