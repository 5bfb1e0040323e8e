"""YAMNet's 1024-d embedding of a window's audio, mean- and max-pooled over its 0.96 s YAMNet windows.

The audio events analyzer keeps the per-window embeddings from the pass that
scored its events (``AudioEventsOutput.embeddings``), so YAMNet runs once. On
UrbanSound8K the 521 class scores added nothing to the embedding for gunshots
or sirens (grouped CV), so they stay out.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ...analyzers.audio_events import AudioEventsOutput
from ...analyzers.base import AnalyzerOutput
from ...audio_features import PATCH_SECONDS
from ...domain import Media
from ...errors import AnalysisError
from ..features import FeatureExtractor, register_extractor
from .windows import required_output, samples_in_window


@register_extractor
class YamnetEmbeddingExtractor(FeatureExtractor):
    """Mean then max of the embeddings of the YAMNet windows centred in the window (2048 values)."""

    name = "yamnet_embedding"
    version = "yamnet_embedding-1"
    media_types = frozenset({"audio", "video"})
    requires: ClassVar[tuple[str, ...]] = ("audio_events",)
    window_s = 2.0
    modality = "audio"

    def extract(self, media: Media, outputs: dict[str, AnalyzerOutput], t_start_s: float, t_end_s: float) -> np.ndarray:
        if media.audio is None or not len(media.audio):
            raise AnalysisError(f"extractor '{self.name}': this media has no sound track")
        events = required_output(outputs, "audio_events", self.name)
        if not isinstance(events, AudioEventsOutput) or not len(events.embeddings):
            raise AnalysisError(f"extractor '{self.name}' needs the audio events analyzer's YAMNet embeddings")
        centres = events.window_times_s + PATCH_SECONDS / 2
        embeddings = events.embeddings[samples_in_window(centres, t_start_s, t_end_s)]
        return np.concatenate([embeddings.mean(axis=0), embeddings.max(axis=0)]).astype(np.float32)
