"""Local capture devices for ``watchkeeper cameras probe``: webcams (V4L2) and microphones (ALSA)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import av

from ..media.avtools import av_reason

_PCM_LINE = re.compile(r"^(\d+)-(\d+):\s*([^:]*?)\s*:.*\bcapture\b")


@dataclass(frozen=True)
class CaptureDevice:
    kind: str  # "camera" or "microphone"
    source: str  # what a camera's ``source`` (or ``av.open``) takes
    name: str
    detail: str  # its picture size and rate, or why it could not be opened


def video_devices(dev: Path = Path("/dev"), timeout_s: float = 3.0) -> list[CaptureDevice]:
    found = []
    for path in sorted(dev.glob("video*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        name = _sysfs_name(path.name)
        try:
            with av.open(str(path), format="v4l2", timeout=timeout_s) as container:
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                detail = f"{stream.codec_context.width}x{stream.codec_context.height}" + (
                    f" at {float(rate):g} fps" if rate else "")
        except (av.FFmpegError, OSError, IndexError) as exc:
            detail = f"cannot open: {av_reason(exc)}"  # metadata nodes of a webcam, or in use elsewhere
        found.append(CaptureDevice("camera", str(path), name, detail))
    return found


def _sysfs_name(node: str) -> str:
    try:
        return Path(f"/sys/class/video4linux/{node}/name").read_text().strip()
    except OSError:
        return node


def microphones(pcm_list: Path = Path("/proc/asound/pcm")) -> list[CaptureDevice]:
    """ALSA devices that capture, as ``hw:CARD,DEVICE``."""
    try:
        lines = pcm_list.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        match = _PCM_LINE.match(line)
        if match:
            card, device, name = int(match.group(1)), int(match.group(2)), match.group(3)
            found.append(CaptureDevice("microphone", f"hw:{card},{device}", name, "ALSA"))
    return found
