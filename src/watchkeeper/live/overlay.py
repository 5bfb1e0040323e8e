"""A camera's live view: its newest picture with the latest analysis drawn on it, encoded once for every viewer."""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING

from ..reasoning.pictures import draw_boxes

if TYPE_CHECKING:
    import numpy as np

    from ..domain import AnalysisResult
    from .monitor import Monitor

OVERLAY_QUALITY = 75


class OverlayView:
    """The JPEG of the newest picture, made again only when the picture or the analysis changes:
    ten viewers of one camera cost one encode per picture, not ten."""

    def __init__(self, monitor: Monitor, quality: int = OVERLAY_QUALITY) -> None:
        self.monitor = monitor
        self.quality = quality
        self._lock = threading.Lock()
        self._made_of: tuple[float, AnalysisResult | None] | None = None  # the picture's time and the analysis
        self._jpeg: bytes | None = None
        self.encodes = 0

    def jpeg(self) -> bytes | None:
        """The overlay picture, or None before the camera's first picture."""
        with self._lock:  # viewers asking together wait for one encode instead of each making their own
            latest = self.monitor.capture.ring.latest_rgb()
            if latest is None:
                return None
            t, rgb = latest
            result = self.monitor.last_result
            if self._made_of is None or self._made_of[0] != t or self._made_of[1] is not result:
                self._jpeg, self._made_of = self._encode(rgb, result), (t, result)
            return self._jpeg

    def _encode(self, rgb: np.ndarray, result: AnalysisResult | None) -> bytes:
        title = self.monitor.name
        boxes = []
        if result is not None:
            boxes = [(d.label, d.box_xywh_norm) for d in result.detections if d.box_xywh_norm is not None]
            if result.incidents:
                top = max(result.incidents, key=lambda i: i.confidence)
                title = f"{self.monitor.name}: {top.category_name} {top.confidence:.0%}"
        buffer = io.BytesIO()
        draw_boxes(rgb, boxes, title).save(buffer, format="JPEG", quality=self.quality)
        self.encodes += 1
        return buffer.getvalue()
