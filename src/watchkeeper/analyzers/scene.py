"""Zero-shot scene scores from a CLIP-style model (optional; seed 001's scene anomaly probability).

Each frame is compared with one sentence per incident category and a few
sentences that describe a normal scene. A softmax over all of them, at the
model's own logit scale, gives every category a probability; the normal
sentences take the mass when nothing is wrong, and one minus their share is
seed 001's "scene anomaly probability".
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from ..config import Settings
from ..domain import Detection, Media
from ..models.transformers_models import ClipBackend
from ..taxonomy import BUILTIN_CATEGORIES
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer, still_frame_positions

TOP_PER_FRAME = 3


def category_prompts(settings: Settings) -> dict[str, str]:
    """One sentence per category id, built-ins first; ``settings.categories`` adds or rewrites them."""
    descriptions = {c.id: c.description for c in BUILTIN_CATEGORIES}
    descriptions.update({c.id: c.description for c in settings.categories})
    return {cid: f"A photo: {text}" for cid, text in descriptions.items()}


@register_analyzer
class SceneAnalyzer(Analyzer):
    name = "scene"
    requires = ("gate",)
    media_types = frozenset({"image", "video"})
    needs_frames = True

    def analyze(self, media: Media, context: AnalysisContext) -> AnalyzerOutput:
        cfg = self.settings.analyzers.scene
        scorer = self.models.get(ClipBackend.name, cfg.model)
        prompts = category_prompts(self.settings)
        category_ids = list(prompts)
        text = scorer.embed_texts([*prompts.values(), *cfg.normal_prompts], cfg.device)

        # A frame the motion gate found unchanged keeps the previous frame's scores.
        still = still_frame_positions(context) - {0}
        fresh = [pos for pos in range(len(media.frames)) if pos not in still]
        images = scorer.embed_images([media.frames[pos].rgb for pos in fresh], cfg.device)
        fresh_probs = softmax(scorer.logit_scale * images @ text.T, axis=1)
        latest_fresh = np.searchsorted(fresh, np.arange(len(media.frames)), side="right") - 1
        category_probs = fresh_probs[latest_fresh, : len(category_ids)].astype(float)
        # Plain floats from here on: the output is JSON.
        anomaly = category_probs.sum(axis=1).round(4).tolist()
        scores = category_probs.round(4).tolist()

        detections: list[Detection] = []
        frames: list[dict] = []
        for pos, frame in enumerate(media.frames):
            top = np.argsort(-category_probs[pos])[:TOP_PER_FRAME].tolist()
            frames.append({
                "index": frame.index, "t_s": frame.t_s, "anomaly_probability": anomaly[pos], "reused": pos in still,
                "top": [{"category": category_ids[i], "score": scores[pos][i]} for i in top],
            })
            detections += [
                Detection(
                    analyzer=self.name, modality="visual", label=f"scene:{cid}", score=p,
                    t_start_s=frame.t_s, t_end_s=frame.t_s, frame_index=frame.index, model_id=scorer.model_id,
                    attributes={"anomaly_probability": anomaly[pos]},
                )
                for cid, p in zip(category_ids, scores[pos], strict=True)
                if p >= cfg.min_score
            ]
        return AnalyzerOutput(detections=detections, data={
            "model_id": scorer.model_id,
            "anomaly_probability": max(anomaly),
            "max_scores": dict(zip(category_ids, category_probs.max(axis=0).round(4).tolist(), strict=True)),
            "frames": frames,
        })
