"""Frame captions from a BLIP-style model (optional; seed 001's visual descriptions).

Captions are evidence in words: ``data["texts"]`` has the same shape as the
OCR analyzer's, so the text-semantics analyzer scores them against the
category sentences like any other visual text.
"""

from __future__ import annotations

import numpy as np

from ..domain import Frame, Media
from ..models.transformers_models import BlipCaptionBackend
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer, still_frame_positions


def spread(frames: list[Frame], limit: int) -> list[Frame]:
    """At most ``limit`` frames, evenly spaced, first and last included."""
    if len(frames) <= limit:
        return frames
    return [frames[i] for i in sorted(set(np.linspace(0, len(frames) - 1, limit).round().astype(int).tolist()))]


@register_analyzer
class CaptionAnalyzer(Analyzer):
    name = "caption"
    requires = ("gate",)
    media_types = frozenset({"image", "video"})
    needs_frames = True

    def analyze(self, media: Media, context: AnalysisContext) -> AnalyzerOutput:
        cfg = self.settings.analyzers.caption
        captioner = self.models.get(BlipCaptionBackend.name, cfg.model)
        # A frame the motion gate found unchanged would only repeat the previous caption.
        still = still_frame_positions(context) - {0}
        chosen = spread([f for pos, f in enumerate(media.frames) if pos not in still], cfg.max_frames)
        results = captioner.caption([f.rgb for f in chosen], max_new_tokens=cfg.max_new_tokens, device=cfg.device)

        pairs = list(zip(chosen, results, strict=True))
        captions = [{"index": f.index, "t_s": f.t_s, "text": text} for f, (text, _) in pairs]
        texts = [
            {"text": text, "score": round(confidence, 4), "box_xywh_norm": None, "frame_index": f.index, "t_s": f.t_s}
            for f, (text, confidence) in pairs
            if text
        ]
        return AnalyzerOutput(data={"model_id": captioner.model_id, "captions": captions, "texts": texts})
