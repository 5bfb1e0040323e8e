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
