"""Pictures of the evidence: frames with the detections' boxes and labels drawn, for snapshots, live views
and reports."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..domain import Incident

BOX_COLOUR = (230, 30, 30)


def draw_boxes(rgb: np.ndarray, boxes: Iterable[tuple[str, Sequence[float]]], title: str | None = None) -> Image.Image:
    """The picture with each (label, normalised x, y, w, h) box outlined and labelled, and a title at the top."""
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    width, height = image.size
    line = max(2, width // 320)
    for label, (x, y, w, h) in boxes:
        corners = (x * width, y * height, (x + w) * width, (y + h) * height)
        draw.rectangle(corners, outline=BOX_COLOUR, width=line)
        draw.text((corners[0] + line, max(0, corners[1] - 12)), label, fill=BOX_COLOUR)
    if title:
        draw.rectangle((0, 0, min(width, 8 + 7 * len(title)), 16), fill=(0, 0, 0))
        draw.text((4, 2), title, fill=(255, 255, 255))
    return image


def draw_incident(rgb: np.ndarray, incident: Incident) -> Image.Image:
    """The snapshot: the incident's boxes, and the incident named at the top."""
    boxes = ((str(b["label"]), b["box_xywh_norm"]) for b in incident.boxes)
    return draw_boxes(rgb, boxes, f"{incident.category_name} (severity {incident.severity}, {incident.confidence:.0%})")


def incident_jpeg(rgb: np.ndarray, incident: Incident, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    draw_incident(rgb, incident).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


WEAPON_LABEL_PREFIX = "weapon:"
CROP_MIN_SIDE = 256


def weapon_crop(rgb: np.ndarray, incident: Incident) -> Image.Image | None:
    """The weapon close up: the incident's strongest weapon box with as much again around it, enlarged."""
    weapons = [e.detection for e in incident.evidence
               if e.detection.label.startswith(WEAPON_LABEL_PREFIX) and e.detection.box_xywh_norm is not None]
    if not weapons:
        return None
    x, y, w, h = max(weapons, key=lambda d: d.score).box_xywh_norm  # type: ignore[misc]
    height, width = rgb.shape[:2]
    side = max(w * width, h * height) * 2
    cx, cy = (x + w / 2) * width, (y + h / 2) * height
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x1, y1 = int(min(width, cx + side / 2)), int(min(height, cy + side / 2))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    crop = Image.fromarray(rgb[y0:y1, x0:x1])
    grow = max(1.0, CROP_MIN_SIDE / max(crop.size))
    return crop.resize((round(crop.width * grow), round(crop.height * grow)), Image.Resampling.LANCZOS)


def weapon_jpeg(rgb: np.ndarray, incident: Incident, quality: int = 90) -> bytes | None:
    close_up = weapon_crop(rgb, incident)
    if close_up is None:
        return None
    buffer = io.BytesIO()
    close_up.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
