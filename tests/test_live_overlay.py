"""A camera's live view is encoded once per picture and analysis, whatever the number of viewers."""

from __future__ import annotations

import io
import threading
from types import SimpleNamespace

import numpy as np
from PIL import Image

from watchkeeper.domain import Detection
from watchkeeper.live.overlay import OverlayView


class Ring:
    def __init__(self) -> None:
        self.latest: tuple[float, np.ndarray] | None = None

    def latest_rgb(self) -> tuple[float, np.ndarray] | None:
        return self.latest


def test_viewers_share_one_encode_until_the_picture_or_the_analysis_changes():
    ring = Ring()
    camera = SimpleNamespace(name="hall", capture=SimpleNamespace(ring=ring), last_result=None)
    view = OverlayView(camera)
    assert view.jpeg() is None  # before the first picture
    ring.latest = (1.0, np.full((120, 160, 3), 90, np.uint8))
    pictures: list[bytes] = []
    viewers = [threading.Thread(target=lambda: pictures.append(view.jpeg())) for _ in range(8)]
    for viewer in viewers:
        viewer.start()
    for viewer in viewers:
        viewer.join(5)
    assert len(pictures) == 8 and len(set(pictures)) == 1 and view.encodes == 1

    ring.latest = (1.2, ring.latest[1])
    view.jpeg()
    assert view.encodes == 2  # a new picture
    person = Detection(analyzer="objects", modality="visual", label="person", score=0.9,
                       box_xywh_norm=(0.25, 0.25, 0.5, 0.5))
    camera.last_result = SimpleNamespace(detections=[person], incidents=[])
    boxed = Image.open(io.BytesIO(view.jpeg())).convert("RGB")
    assert view.encodes == 3  # a new analysis on the same picture
    assert np.abs(np.asarray(boxed, np.int16)[30, 40:120] - 90).max() > 60  # the box's top edge is drawn
