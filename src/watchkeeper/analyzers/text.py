"""Text semantics: transcript and on-screen text compared with every category's meaning.

Each category is represented by its description sentence plus, for built-in
categories, the example utterances in ``data/text_examples.yaml``; a text's
similarity to a category is its best cosine similarity over those sentences
(MiniLM embeddings). Similarity becomes a score linearly:
``clip((sim - min_similarity) / (full_similarity - min_similarity), 0, 1)``.
The defaults (0.40 and 0.70) come from two sets of held-out sentences (not
the examples): ordinary talk and spoken digits peak at a median 0.26
and a 90th percentile 0.42 over all categories, while incident sentences
reach a median 0.62 (10th percentile 0.40-0.46) on their own category.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from ..config import Settings
from ..domain import Detection, Media, Modality
from ..models.minilm import MiniLmBackend
from ..models.registry import ModelRegistry
from ..taxonomy import BUILTIN_CATEGORIES
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer

MODEL_NAME = MiniLmBackend.name
MAX_CATEGORIES_PER_TEXT = 3
TOP_IN_DATA = 3
# OCR fragments shorter than this many letters ("A1", "EX") carry no meaning to embed.
MIN_LETTERS = 3


@lru_cache(maxsize=1)
def builtin_examples() -> dict[str, list[str]]:
    text = resources.files("watchkeeper").joinpath("data/text_examples.yaml").read_text(encoding="utf-8")
    return {key: list(value) for key, value in (yaml.safe_load(text) or {}).items()}


@dataclass
class TextItem:
    """One piece of text to classify, with where it came from."""

    text: str
    modality: Modality
    source: str
    t_start_s: float
    t_end_s: float
    frame_index: int | None = None
    box_xywh_norm: tuple[float, float, float, float] | None = None


def transcript_items(speech_data: dict[str, Any]) -> list[TextItem]:
    return [TextItem(seg["text"], "speech", "speech", seg["t_start_s"], seg["t_end_s"])
            for seg in speech_data.get("segments", ()) if seg.get("text", "").strip()]


def visual_text_items(data: dict[str, Any], source: str) -> list[TextItem]:
    """Texts read from frames (OCR, captions), one item per distinct text (a sign seen in many frames is one)."""
    by_text: dict[str, TextItem] = {}
    for entry in data.get("texts", ()):
        text = " ".join(str(entry.get("text", "")).split())
        if sum(ch.isalpha() for ch in text) < MIN_LETTERS:
            continue
        t_s = float(entry.get("t_s", 0.0))
        item = by_text.get(text.lower())
        if item is None:
            box = entry.get("box_xywh_norm")
            by_text[text.lower()] = TextItem(text, "visual", source, t_s, t_s, entry.get("frame_index"),
                                             tuple(box) if box else None)
        else:
            item.t_start_s, item.t_end_s = min(item.t_start_s, t_s), max(item.t_end_s, t_s)
    return list(by_text.values())


@register_analyzer
class TextAnalyzer(Analyzer):
    name = "text"
    requires = ("speech", "ocr", "caption")
    media_types = frozenset({"image", "audio", "video"})

    def __init__(self, settings: Settings, models: ModelRegistry) -> None:
        super().__init__(settings, models)
        self._references: tuple[list[str], np.ndarray, np.ndarray] | None = None
        self._lock = threading.Lock()

    def categories(self) -> dict[str, list[str]]:
        """Category id -> its reference sentences; a user category with a built-in id replaces it."""
        examples = builtin_examples()
        refs = {c.id: [c.description, *examples.get(c.id, [])] for c in BUILTIN_CATEGORIES}
        for category in self.settings.categories:
            refs[category.id] = [category.description]
        return refs

    def references(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Category ids, embeddings of all reference sentences, and where each category's rows start."""
        with self._lock:
            if self._references is None:
                refs = self.categories()
                sentences = [s for rows in refs.values() for s in rows]
                starts = np.cumsum([0] + [len(rows) for rows in refs.values()])[:-1]
                self._references = (list(refs), self.models.get(MODEL_NAME).embed(sentences), starts)
            return self._references

    def similarities(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """Category ids and a (len(texts), categories) matrix of best cosine similarities."""
        ids, ref_vectors, starts = self.references()
        vectors = self.models.get(MODEL_NAME).embed(texts)
        return ids, np.maximum.reduceat(vectors @ ref_vectors.T, starts, axis=1)

    def score(self, similarity: np.ndarray) -> np.ndarray:
        settings = self.settings.analyzers.text
        span = settings.full_similarity - settings.min_similarity
        return np.clip((similarity - settings.min_similarity) / span, 0.0, 1.0)

    def analyze(self, media: Media, context: AnalysisContext) -> AnalyzerOutput:
        items: list[TextItem] = []
        for source in ("speech", "ocr", "caption"):
            output = context.outputs.get(source)
            if output is not None:
                items.extend(transcript_items(output.data) if source == "speech"
                             else visual_text_items(output.data, source))
        if not items:
            return AnalyzerOutput(data={"items": []})
        ids, sims = self.similarities([item.text for item in items])
        scores = self.score(sims)
        detections, summaries = [], []
        for item, row_sims, row_scores in zip(items, sims, scores):
            order = np.argsort(-row_sims)
            summaries.append({
                "source": item.source, "text": item.text, "t_start_s": item.t_start_s, "t_end_s": item.t_end_s,
                "top": [{"category": ids[j], "similarity": round(float(row_sims[j]), 4)} for j in order[:TOP_IN_DATA]],
            })
            for j in order[:MAX_CATEGORIES_PER_TEXT]:
                if row_scores[j] <= 0:
                    break
                detections.append(Detection(
                    analyzer=self.name, modality=item.modality, label=f"text:{ids[j]}",
                    score=round(float(row_scores[j]), 4), t_start_s=item.t_start_s, t_end_s=item.t_end_s,
                    frame_index=item.frame_index, box_xywh_norm=item.box_xywh_norm, model_id=MODEL_NAME,
                    attributes={"text": item.text, "similarity": round(float(row_sims[j]), 4), "source": item.source},
                ))
        return AnalyzerOutput(detections=detections, data={"items": summaries})
