"""YOLOv3-tiny's image embedding (Darknet layer 12, average-pooled), averaged over a window's sampled frames.

The objects analyzer keeps one embedding per frame from the pass that found
the objects (``ObjectsOutput.embeddings``), so no network runs here.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ...analyzers.base import AnalyzerOutput
from ...analyzers.objects import ObjectsOutput
from ...domain import Media
from ...errors import AnalysisError
from ..features import FeatureExtractor, register_extractor
from .windows import required_output, samples_in_window


def window_embedding(outputs: dict[str, AnalyzerOutput], extractor: str, t_start_s: float, t_end_s: float) -> np.ndarray:
    """Mean embedding of the frames sampled in the window (the nearest frame when none is)."""
    objects = required_output(outputs, "objects", extractor)
    if not isinstance(objects, ObjectsOutput):
        raise AnalysisError(f"extractor '{extractor}' needs the objects analyzer's embeddings")
    times = np.array([f["t_s"] for f in objects.data.get("frames", [])], np.float64)
    chosen = samples_in_window(times, t_start_s, t_end_s)
    if not chosen.size or len(objects.embeddings) != len(times):
        raise AnalysisError(f"extractor '{extractor}': the objects analyzer kept no embedding for this media")
    return objects.embeddings[chosen].mean(axis=0).astype(np.float32)


@register_extractor
class YoloEmbeddingExtractor(FeatureExtractor):
    """The 1024-d mean embedding of the window's frames."""

    name = "yolo_embedding"
    version = "yolo_embedding-1"
    media_types = frozenset({"image", "video"})
    requires: ClassVar[tuple[str, ...]] = ("objects",)
    window_s = 2.0

    def extract(self, media: Media, outputs: dict[str, AnalyzerOutput], t_start_s: float, t_end_s: float) -> np.ndarray:
        return window_embedding(outputs, self.name, t_start_s, t_end_s)
