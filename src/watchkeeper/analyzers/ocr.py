"""Scene text (signs, plates, captions) with RapidOCR, for the text-semantics analyzer to read.

Off by default (about half a second per 720p frame on two cores). On video it
reads every ``frame_step``-th sampled frame, and skips those where nothing
changed since the last read (the motion gate). The same text read on
consecutive reads is one entry spanning its time.
"""

from __future__ import annotations

import logging
from typing import Any

from ..domain import Detection, Media
from ..models.ocr import TextReader
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer, still_frame_positions

log = logging.getLogger(__name__)

MODEL_NAME = "rapidocr"


def _normalise(text: str) -> str:
    return " ".join(text.casefold().split())


def _is_words(text: str) -> bool:
    """The recogniser reads texture as runs of symbols ("★★"); real text has a letter or digit."""
    return any(ch.isalnum() for ch in text)


@register_analyzer
class OcrAnalyzer(Analyzer):
    name = "ocr"
    requires = ("gate",)
    media_types = frozenset({"image", "video"})
    needs_frames = True

    def analyze(self, media: Media, context: AnalysisContext) -> AnalyzerOutput:
        settings = self.settings.analyzers.ocr
        reader: TextReader = self.models.get(MODEL_NAME)
        still = still_frame_positions(context)
        texts: list[dict[str, Any]] = []
        showing: dict[str, dict[str, Any]] = {}  # text on screen at the last read, by normalised text
        changed_since_read = True
        runs = 0
        for position, frame in enumerate(media.frames):
            changed_since_read = changed_since_read or position not in still
            if position % settings.frame_step:
                continue
            if not changed_since_read:
                for entry in showing.values():
                    entry["t_end_s"] = round(frame.t_s, 3)
                continue
            changed_since_read = False
            runs += 1
            now_showing: dict[str, dict[str, Any]] = {}
            for line in reader.read(frame.rgb, min_score=settings.min_score):
                if not _is_words(line.text):
                    continue
                key = _normalise(line.text)
                entry = showing.get(key) or now_showing.get(key)
                if entry is None:
                    entry = {
                        "text": line.text, "score": round(line.score, 4),
                        "box_xywh_norm": [round(v, 4) for v in line.box_xywh_norm],
                        "frame_index": frame.index, "t_s": round(frame.t_s, 3),
                    }
                    texts.append(entry)
                entry["score"] = max(entry["score"], round(line.score, 4))
                entry["t_end_s"] = round(frame.t_s, 3)
                now_showing[key] = entry
            showing = now_showing
        detections = [
            Detection(
                analyzer=self.name, modality="visual", label="ocr:text", score=entry["score"],
                t_start_s=entry["t_s"], t_end_s=entry["t_end_s"], frame_index=entry["frame_index"],
                box_xywh_norm=tuple(entry["box_xywh_norm"]), model_id=reader.model_id,
                attributes={"text": entry["text"]},
            )
            for entry in texts
        ]
        log.debug("ocr analysed", extra={"frames": len(media.frames), "model_runs": runs, "texts": len(texts)})
        data = {"model": reader.model_id, "frames_run": runs, "texts": texts}
        return AnalyzerOutput(detections=detections, data=data)
