"""Audio events (gunshots, screams, sirens, glass...) from YAMNet over the whole clip.

YAMNet scores 521 AudioSet classes per 0.96 s window (0.48 s hop). Classes
are pooled into our labels by ``data/yamnet_groups.yaml``, with a per-group
logit shift that calibrates the int8 model's low scores (see the YAML).
Each run of consecutive windows whose group score reaches
``min_score`` becomes one detection. The per-window probabilities and
embeddings ride along on ``AudioEventsOutput`` for learned heads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np
import yaml
from scipy.special import expit, logit

from ..audio_features import PATCH_SECONDS
from ..domain import AUDIO_SAMPLE_RATE_HZ, Detection, Media
from ..errors import ModelError
from ..models.yamnet import EMBEDDING_SIZE, YamNetBackend
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer

MODEL_NAME = YamNetBackend.name
SPEECH_CLASS = "Speech"
SPEECH_MIN_SCORE = 0.5
TOP_CLASSES = 3
# Class lists in the output skip classes less likely than this, to stay compact.
LISTED_CLASS_MIN_SCORE = 0.01


@dataclass(frozen=True)
class AudioGroup:
    label: str
    classes: tuple[str, ...]
    logit_shift: float


@lru_cache(maxsize=1)
def audio_groups() -> tuple[AudioGroup, ...]:
    text = resources.files("watchkeeper").joinpath("data/yamnet_groups.yaml").read_text(encoding="utf-8")
    spec = yaml.safe_load(text)
    default_shift = float(spec.get("default_logit_shift", 0.0))
    return tuple(
        AudioGroup(f"audio:{name}", tuple(group["classes"]), float(group.get("logit_shift", default_shift)))
        for name, group in spec["groups"].items()
    )


@dataclass
class AudioEventsOutput(AnalyzerOutput):
    """Not JSON: per YAMNet window, its start (absolute seconds), 521 class probabilities and 1024-d embedding."""

    window_times_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, EMBEDDING_SIZE), np.float32))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) indices of each run of True values."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


@register_analyzer
class AudioEventsAnalyzer(Analyzer):
    name = "audio_events"
    media_types = frozenset({"audio", "video"})
    needs_audio = True

    def analyze(self, media: Media, context: AnalysisContext) -> AudioEventsOutput:
        model = self.models.get(MODEL_NAME)
        min_score = self.settings.analyzers.audio_events.min_score
        times_s, probabilities, embeddings = model.scores(media.audio)
        times_s = times_s + media.t_start_s  # a chunk of a long video: times from the start of the file
        logits = logit(probabilities.astype(np.float64))
        end_s = media.t_start_s + len(media.audio) / AUDIO_SAMPLE_RATE_HZ
        detections, timeline = [], []
        for group in audio_groups():
            columns = self._class_indices(model, group)
            group_scores = expit(logits[:, columns].max(axis=1) + group.logit_shift)
            for first, last in _runs(group_scores >= min_score):
                window_slice = slice(first, last + 1)
                run_max = probabilities[window_slice][:, columns].max(axis=0)
                top = [{"class": group.classes[i], "score": round(float(run_max[i]), 4)}
                       for i in np.argsort(-run_max)[:TOP_CLASSES] if run_max[i] >= LISTED_CLASS_MIN_SCORE]
                event = {
                    "t_start_s": round(float(times_s[first]), 3),
                    "t_end_s": round(float(min(times_s[last] + PATCH_SECONDS, end_s)), 3),
                    "label": group.label,
                    "score": round(float(group_scores[window_slice].max()), 4),
                    "top_classes": top,
                }
                timeline.append(event)
                detections.append(Detection(
                    analyzer=self.name, modality="audio", label=group.label, score=event["score"],
                    t_start_s=event["t_start_s"], t_end_s=event["t_end_s"], model_id=MODEL_NAME,
                    attributes={"top_classes": top, "windows": int(last - first + 1)},
                ))
        timeline.sort(key=lambda e: (e["t_start_s"], -e["score"]))
        speech = probabilities[:, model.class_index(SPEECH_CLASS)] >= SPEECH_MIN_SCORE
        return AudioEventsOutput(detections=detections, data={
            "timeline": timeline,
            "windows": self._window_summaries(model.class_names, times_s, probabilities),
            "speech_ratio": round(float(speech.mean()), 4),
            "embedding_mean": [round(float(v), 5) for v in embeddings.mean(axis=0)],
            "window_s": PATCH_SECONDS,
        }, window_times_s=times_s, probabilities=probabilities.astype(np.float32),
            embeddings=embeddings.astype(np.float32))

    @staticmethod
    def _class_indices(model, group: AudioGroup) -> list[int]:
        try:
            return [model.class_names.index(name) for name in group.classes]
        except ValueError as exc:
            raise ModelError(f"yamnet_groups.yaml, group {group.label}: {exc}") from exc

    @staticmethod
    def _window_summaries(class_names: list[str], times_s: np.ndarray, probabilities: np.ndarray) -> list[dict]:
        """Each window's most likely classes: enough to explain an event without the 521-wide matrix."""
        summaries = []
        for t_s, row in zip(times_s, probabilities):
            top = np.argsort(-row)[:TOP_CLASSES]
            summaries.append({
                "t_start_s": round(float(t_s), 3),
                "top_classes": [{"class": class_names[i], "score": round(float(row[i]), 4)}
                                for i in top if row[i] >= LISTED_CLASS_MIN_SCORE],
            })
        return summaries
