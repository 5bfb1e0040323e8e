"""Learned heads: each scores its category on windows of the media from one extractor's features.

A head's window is ``window_s`` long and windows start every half window
over the media (a chunk of a long video: over the chunk), the last one
ending at the end, so every window is full length; media shorter than a
window, images, and heads without a window length get one window over
everything. Every window whose probability reaches
``analyzers.heads.min_score`` becomes a ``head:<category>`` detection;
fusion decides, at the head's own threshold unless the settings set one.

The same code records feature vectors for ``watchkeeper train``
(``analyzers.heads.capture``), so a head sees at run time exactly the
windows and features it was trained on.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ..config import Settings
from ..domain import Detection, Media, MediaType
from ..errors import AnalysisError, WatchkeeperError
from ..fusion.rules import base_thresholds
from ..heads.features import FeatureExtractor
from ..heads.head import extractor_class, load_heads
from ..models.registry import ModelRegistry
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer

log = logging.getLogger(__name__)

# Significant digits of recorded features: float32 precision, half the JSON of Python's repr.
CAPTURE_DIGITS = 7


def windows(t_start_s: float, t_end_s: float, window_s: float | None) -> list[tuple[float, float]]:
    """Windows of ``window_s`` at half-window hops over [t_start_s, t_end_s), the last one ending at t_end_s."""
    span = t_end_s - t_start_s
    if window_s is None or span <= window_s:
        return [(t_start_s, t_end_s)]
    hop = window_s / 2
    count = math.ceil((span - window_s) / hop - 1e-9) + 1
    starts = [t_start_s + k * hop for k in range(count - 1)] + [t_end_s - window_s]
    return [(round(s, 6), round(s + window_s, 6)) for s in starts]


def on_category_scale(probability: float, head_threshold: float, category_threshold: float) -> float:
    """Map a probability piecewise-linearly so that ``head_threshold`` lands on ``category_threshold``."""
    if probability <= head_threshold:
        return probability * category_threshold / head_threshold
    return category_threshold + (probability - head_threshold) * (1 - category_threshold) / (1 - head_threshold)


class _Features:
    """Feature vectors of one media, computed once per extractor and window length."""

    def __init__(self, media: Media, context: AnalysisContext) -> None:
        self.media = media
        self.context = context
        self.cache: dict[tuple[str, float | None], tuple[list[tuple[float, float]], np.ndarray, np.ndarray]] = {}

    def get(self, extractor: FeatureExtractor,
            window_s: float | None) -> tuple[list[tuple[float, float]], np.ndarray, np.ndarray]:
        """The windows, their feature vectors, and which of them are quiet (``FeatureExtractor.quiet_windows``)."""
        key = (extractor.name, window_s)
        if key not in self.cache:
            media = self.media
            spans = windows(media.t_start_s, media.t_end_s, window_s if media.info.media_type != "image" else None)
            rows = [np.asarray(row) for row in extractor.extract_windows(media, self.context.outputs, spans)]
            shapes = {row.shape for row in rows}
            if len(shapes) != 1 or len(next(iter(shapes))) != 1:
                raise AnalysisError(f"extractor '{extractor.name}' gave feature vectors of shapes {sorted(shapes)}")
            matrix = np.stack(rows).astype(np.float32)
            if not np.isfinite(matrix).all():
                raise AnalysisError(f"extractor '{extractor.name}' gave non-finite features")
            quiet = np.asarray(extractor.quiet_windows(media, self.context.outputs, spans), bool)
            self.cache[key] = (spans, matrix, quiet)
        return self.cache[key]


@register_analyzer
class HeadsAnalyzer(Analyzer):
    name = "heads"
    media_types = frozenset({"image", "audio", "video"})

    def __init__(self, settings: Settings, models: ModelRegistry) -> None:
        super().__init__(settings, models)
        self.config = settings.analyzers.heads
        self.head_set = load_heads(settings)
        names = {h.extractor.name for h in self.head_set.all()}
        if self.config.capture is not None:
            names.add(self.config.capture.extractor)
        self.extractors = {n: extractor_class(n, self.config.extractor_modules)() for n in names}
        # The scheduler reads the instance's ``requires``: the analyzers these heads' extractors read.
        self.requires = tuple(sorted({r for e in self.extractors.values() for r in e.requires}))
        disabled = [r for r in self.requires if not getattr(getattr(settings.analyzers, r, None), "enabled", False)]
        if disabled:
            log.warning("learned heads read analyzers %s, which are disabled: their features will differ from "
                        "training and their scores will not mean what their model cards say", disabled)
        self.category_thresholds = base_thresholds(settings)
        self.handled_types: set[MediaType] = {t for h in self.head_set.all() for t in h.media_types}
        if self.config.capture is not None:
            self.handled_types |= self.extractors[self.config.capture.extractor].media_types

    def applies_to(self, media: Media) -> bool:
        return media.info.media_type in self.handled_types

    def analyze(self, media: Media, context: AnalysisContext) -> AnalyzerOutput:
        features = _Features(media, context)
        heads = self.head_set.for_camera(context.camera)
        site = self.head_set.site
        detections: list[Detection] = []
        scored: list[dict[str, Any]] = []
        errors: dict[str, dict[str, str]] = {}
        for category, head in heads.items():
            if media.info.media_type not in head.media_types:
                continue
            extractor = self.extractors[head.extractor.name]
            if extractor.modality == "audio" and (media.audio is None or len(media.audio) == 0):
                continue  # a silent video (or a chunk past the end of its sound): nothing to hear
            try:
                spans, matrix, quiet = features.get(extractor, head.window_s)
                probabilities = np.where(quiet, 0.0, head.predict_proba(matrix))
            except WatchkeeperError as exc:
                # One head's failure leaves the others standing; it is reported in the output and the log.
                errors[head.name] = exc.to_dict()
                log.warning("head failed", extra={"head": head.name, "error": str(exc)})
                continue
            camera_head = site.get(category) is not head
            scored.append({
                "name": head.name, "category": category, "extractor": f"{extractor.name}@{extractor.version}",
                "threshold": head.threshold, "camera_head": camera_head,
                "windows": [[t0, t1, round(float(p), 4)] for (t0, t1), p in zip(spans, probabilities)],
            })
            for (t0, t1), p in zip(spans, probabilities):
                if p < self.config.min_score:
                    continue
                # The head decides at its own model-card threshold, on the scale fusion judges the category by.
                score = on_category_scale(p, head.threshold, self.category_thresholds[category])
                detections.append(Detection(
                    analyzer=self.name, modality=extractor.modality, label=f"head:{category}",
                    score=round(float(min(1.0, score)), 4), t_start_s=t0, t_end_s=t1, model_id=head.id,
                    attributes={"head": head.name, "threshold": head.threshold, "probability": round(float(p), 4)},
                ))
        data: dict[str, Any] = {"heads": scored}
        if errors:
            data["errors"] = errors
        if self.config.capture is not None:
            data["capture"] = self._capture(media, features)
        return AnalyzerOutput(detections=detections, data=data)

    def _capture(self, media: Media, features: _Features) -> dict[str, Any]:
        capture = self.config.capture
        assert capture is not None
        extractor = self.extractors[capture.extractor]
        window_s = capture.window_s or extractor.window_s
        record: dict[str, Any] = {"extractor": extractor.name, "version": extractor.version, "window_s": window_s}
        if media.info.media_type not in extractor.media_types:
            return {**record, "windows": [], "features": []}
        spans, matrix, _ = features.get(extractor, window_s)
        return {
            **record,
            "windows": [list(span) for span in spans],
            "features": [[float(f"{v:.{CAPTURE_DIGITS}g}") for v in row] for row in matrix.tolist()],
        }
