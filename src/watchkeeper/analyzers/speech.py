"""Speech: voice activity, Whisper on the speech only, and distress keywords in the transcript.

Whisper invents text on screams, music and noise, so it only runs on what
Silero VAD calls speech, and segments that look invented (repetitive text,
low log-probability, likely no speech) are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..config import SpeechSettings
from ..domain import Detection, Media
from ..models.whisper import RecognisedSegment, WhisperBaseBackend, WhisperTinyEnBackend, speech_regions
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer

MODEL_NAMES = {"tiny.en": WhisperTinyEnBackend.name, "base": WhisperBaseBackend.name}
# A distress keyword heard with full confidence scores this much. A phrase
# ("he has a gun") is rarely said in passing; a single word ("stop", "fire",
# "police") often is, so it counts for less.
PHRASE_SCORE = 0.9
WORD_SCORE = 0.7


def normalise(text: str) -> list[str]:
    """Lower-case word tokens, apostrophes kept (``don't``), punctuation dropped."""
    return re.findall(r"[a-z0-9]+(?:'[a-z0-9]+)*", text.lower().replace("\u2019", "'"))


@dataclass(frozen=True)
class Token:
    text: str
    t_start_s: float
    t_end_s: float
    probability: float


def segment_tokens(segment: RecognisedSegment) -> list[Token]:
    """The segment's tokens with times and ASR confidence; word-level where Whisper gave words."""
    if segment.words:
        return [Token(tok, w["t_start_s"], w["t_end_s"], w["probability"])
                for w in segment.words for tok in normalise(w["word"])]
    confidence = float(np.exp(segment.avg_logprob))
    return [Token(tok, segment.t_start_s, segment.t_end_s, confidence) for tok in normalise(segment.text)]


def find_phrase(tokens: list[Token], phrase: list[str]) -> list[Token] | None:
    """The first run of tokens that spells ``phrase`` word for word."""
    words = [t.text for t in tokens]
    for start in range(len(words) - len(phrase) + 1):
        if words[start:start + len(phrase)] == phrase:
            return tokens[start:start + len(phrase)]
    return None


def distress_detection(segment: RecognisedSegment, keywords: list[str], model_id: str) -> Detection | None:
    """One detection for a segment that contains distress keywords, scored by its best keyword."""
    tokens = segment_tokens(segment)
    matches: dict[str, tuple[float, list[Token]]] = {}
    for keyword in keywords:
        phrase = normalise(keyword)
        found = find_phrase(tokens, phrase) if phrase else None
        if found:
            base = PHRASE_SCORE if len(phrase) > 1 else WORD_SCORE
            matches[keyword] = (base * float(np.mean([t.probability for t in found])), found)
    if not matches:
        return None
    best = max(matches, key=lambda k: matches[k][0])
    matched = [t for _, found in matches.values() for t in found]
    return Detection(
        analyzer="speech", modality="speech", label="speech:distress", score=round(matches[best][0], 4),
        t_start_s=min(t.t_start_s for t in matched), t_end_s=max(t.t_end_s for t in matched), model_id=model_id,
        attributes={"keyword": best, "keywords": sorted(matches), "text": segment.text},
    )


def drop_reason(segment: RecognisedSegment, settings: SpeechSettings) -> str | None:
    if segment.compression_ratio > settings.max_compression_ratio:
        return "compression_ratio"
    if segment.avg_logprob < settings.min_avg_logprob:
        return "avg_logprob"
    if segment.no_speech_prob > settings.max_no_speech_prob:
        return "no_speech_prob"
    return None if segment.text else "empty"


@register_analyzer
class SpeechAnalyzer(Analyzer):
    name = "speech"
    media_types = frozenset({"audio", "video"})
    needs_audio = True

    def analyze(self, media: Media, context: AnalysisContext) -> AnalyzerOutput:
        settings = self.settings.analyzers.speech
        regions = speech_regions(media.audio, threshold=settings.vad_threshold)
        data: dict = {
            "segments": [], "text": "", "language": None, "model": None, "dropped": [],
            "speech_regions": [[round(media.t_start_s + a, 3), round(media.t_start_s + b, 3)] for a, b in regions],
            "speech_s": round(sum(b - a for a, b in regions), 3),
        }
        if not regions:
            return AnalyzerOutput(data=data)
        model_id = MODEL_NAMES[settings.model]
        segments, language = self.models.get(model_id).transcribe(
            media.audio, regions, language=settings.language, beam_size=settings.beam_size
        )
        if media.t_start_s:  # a chunk of a long video: times from the start of the file
            segments = [s.shifted(media.t_start_s) for s in segments]
        kept, detections = [], []
        for segment in segments:
            reason = drop_reason(segment, settings)
            if reason:
                data["dropped"].append({"t_start_s": segment.t_start_s, "t_end_s": segment.t_end_s,
                                        "text": segment.text, "reason": reason})
                continue
            kept.append(segment)
            detection = distress_detection(segment, settings.distress_keywords, model_id)
            if detection:
                detections.append(detection)
        data.update(
            model=model_id,
            language=language,
            text=" ".join(s.text for s in kept),
            segments=[{"t_start_s": s.t_start_s, "t_end_s": s.t_end_s, "text": s.text,
                       "avg_logprob": round(s.avg_logprob, 4), "words": s.words} for s in kept],
        )
        return AnalyzerOutput(detections=detections, data=data)
