"""The media layer: paths, bytes and URLs in; RGB frames, 16 kHz mono audio and metadata out."""

from .detect import AUDIO_FORMATS, IMAGE_FORMATS, VIDEO_FORMATS, DetectedFormat
from .loader import detect_media_type, iter_media, load_media, nearest_frames

__all__ = [
    "AUDIO_FORMATS",
    "IMAGE_FORMATS",
    "VIDEO_FORMATS",
    "DetectedFormat",
    "detect_media_type",
    "iter_media",
    "load_media",
    "nearest_frames",
]
