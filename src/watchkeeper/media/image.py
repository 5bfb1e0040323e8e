"""Still images to one RGB frame, upright as the camera meant it."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..config import MediaSettings
from ..domain import Frame, Media, MediaInfo
from ..errors import CorruptMediaError, MediaTooLargeError, UnsupportedMediaError
from .detect import supported_formats_text
from .sources import SourceData

# Pillow's names for the formats we accept (MPO: the multi-picture JPEG some cameras write).
_PILLOW_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF"})


def _too_many_pixels(src: SourceData, width: int, height: int, settings: MediaSettings) -> MediaTooLargeError:
    return MediaTooLargeError(
        f"{src.name}: {width}x{height} is {width * height:,} pixels, over the limit of "
        f"{settings.max_image_pixels:,} (media.max_image_pixels); refusing to decode it"
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten transparency onto white (what a viewer shows), then drop to RGB."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(src: SourceData, fmt: str, settings: MediaSettings) -> Media:
    try:
        with src.open() as stream, Image.open(stream) as image:
            # Image.open reads only the header: refuse bombs before any pixel is decoded.
            width, height = image.size
            if width * height > settings.max_image_pixels:
                raise _too_many_pixels(src, width, height, settings)
            if image.format not in _PILLOW_FORMATS:
                raise UnsupportedMediaError(
                    f"{src.name}: {image.format} images are not supported; supported: {supported_formats_text()}"
                )
            # Animated GIF/WebP open on their first frame, which is the one analysed.
            rgb = np.array(_to_rgb(ImageOps.exif_transpose(image)), dtype=np.uint8)  # writable, like video frames
    except Image.DecompressionBombError as exc:  # past Pillow's own hard limit
        raise MediaTooLargeError(
            f"{src.name}: refused as a decompression bomb ({exc}); the limit is "
            f"{settings.max_image_pixels:,} pixels (media.max_image_pixels)"
        ) from None
    except UnidentifiedImageError:
        raise CorruptMediaError(f"{src.name}: not a readable {fmt} image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow's words for truncated or broken data ("image file is truncated"...).
        raise CorruptMediaError(f"{src.name}: the {fmt} image is damaged or truncated ({exc})") from None
    height, width = rgb.shape[:2]
    info = MediaInfo(
        media_type="image",
        source=src.name,
        format=fmt,
        sha256=src.sha256,
        size_bytes=src.size_bytes,
        width=width,
        height=height,
        frames_sampled=1,
    )
    return Media(info=info, frames=[Frame(index=0, t_s=0.0, rgb=rgb)])
