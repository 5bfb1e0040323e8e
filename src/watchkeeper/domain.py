"""Domain types shared by every layer.

Bulk data (pixels, samples) lives in numpy arrays inside plain dataclasses;
everything that leaves the process (detections, incidents, results) is a
pydantic model so the CLI, the API and the store serialise it the same way.
Units are in the field names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

MediaType = Literal["image", "audio", "video"]
# Coarse modalities: agreement between them is what makes evidence strong.
Modality = Literal["visual", "audio", "speech"]

AUDIO_SAMPLE_RATE_HZ = 16_000


@dataclass
class Frame:
    """One decoded RGB frame (H x W x 3, uint8) at a time in the media."""

    index: int
    t_s: float
    rgb: np.ndarray


@dataclass
class MotionFrames:
    """Small greyscale frames decoded densely (``fps``) for optical flow."""

    fps: float
    times_s: np.ndarray  # (N,) float64
    gray: np.ndarray  # (N, H, W) uint8


class MediaInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_type: MediaType
    source: str
    format: str
    sha256: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    has_audio: bool = False
    audio_sample_rate_hz: int | None = None
    audio_channels: int | None = None
    frames_sampled: int = 0
    frame_interval_s: float | None = None
    # Where a chunk of a long video sits (media.chunk_s): it spans [chunk_start_s, chunk_end_s) of the file;
    # chunk_end_s is None when the Media holds the whole file. duration_s stays the whole file's.
    chunk_index: int = 0
    chunk_start_s: float = 0.0
    chunk_end_s: float | None = None


@dataclass
class Media:
    """Decoded media ready for the analyzers.

    An image is one frame at t=0; a video is its sampled frames, its dense
    small greyscale frames for motion and its audio track; audio is samples only.
    ``audio`` is always float32 mono at 16 kHz.
    """

    info: MediaInfo
    frames: list[Frame] = field(default_factory=list)
    audio: np.ndarray | None = None
    motion: MotionFrames | None = None

    @property
    def duration_s(self) -> float:
        if self.info.duration_s is not None:
            return self.info.duration_s
        if self.audio is not None:
            return len(self.audio) / AUDIO_SAMPLE_RATE_HZ
        return 0.0

    @property
    def t_start_s(self) -> float:
        """Start of the span this Media covers, in seconds from the start of the file."""
        return self.info.chunk_start_s

    @property
    def t_end_s(self) -> float:
        """End of the span this Media covers: its chunk's end, or the whole file's duration."""
        return self.info.chunk_end_s if self.info.chunk_end_s is not None else self.duration_s


class Detection(BaseModel):
    """One piece of evidence from one analyzer.

    ``label`` is in the analyzer's own vocabulary (``knife``, ``gunshot``,
    ``posture:lying``, ``text:robbery``...); fusion maps labels to categories.
    """

    model_config = ConfigDict(extra="forbid")

    analyzer: str
    modality: Modality
    label: str
    score: float = Field(ge=0.0, le=1.0)
    t_start_s: float = 0.0
    t_end_s: float = 0.0
    frame_index: int | None = None
    box_xywh_norm: tuple[float, float, float, float] | None = None
    model_id: str = ""
    attributes: dict[str, Any] = Field(default_factory=dict)


class Evidence(BaseModel):
    """A detection as it supports one incident, with its weighted contribution."""

    model_config = ConfigDict(extra="forbid")

    detection: Detection
    weight: float
    contribution: float


class Incident(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str
    category_name: str
    severity: int = Field(ge=1, le=5)
    severity_label: str
    # The fused category score at its peak; the incident exists because it reached ``threshold``.
    confidence: float = Field(ge=0.0, le=1.0)
    threshold: float
    status: str = "open"
    t_start_s: float
    t_end_s: float
    modalities: list[Modality]
    modality_agreement: int
    evidence: list[Evidence]
    boxes: list[dict[str, Any]] = Field(default_factory=list)
    summary: str
    requires_immediate_action: bool
    threat_severity_index: float
    camera: str | None = None
    zone: str | None = None


class TranscriptSegment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    t_start_s: float
    t_end_s: float
    text: str
    avg_logprob: float | None = None
    words: list[dict[str, Any]] = Field(default_factory=list)


class Assessment(BaseModel):
    """A judgement of one analysis: what happened, how bad, and how well the modalities agree.

    Computed locally from the fused evidence, or returned by a model provider
    as JSON validated against this schema (seed 001's tier-2 fields included).
    """

    model_config = ConfigDict(extra="forbid")

    crime_detected: bool
    category: str | None = Field(None, description="A taxonomy id; null when nothing happened.")
    severity: int = Field(ge=1, le=5)
    confidence: float = Field(ge=0.0, le=1.0)
    evidence_description: str
    location: str = Field("", description="Where in the frame (or the recording) the evidence is.")
    visual_score: float = Field(ge=0.0, le=1.0)
    audio_score: float = Field(ge=0.0, le=1.0)
    text_alignment_score: float = Field(ge=0.0, le=1.0)
    multimodal_agreement: float = Field(ge=0.0, le=1.0)
    reasoning_summary: str
    threat_severity_index: float = Field(ge=0.0, le=1.0)
    source: str = Field("local", description="'local', or the provider and model that wrote it.")


class ProviderUsage(BaseModel):
    """What one provider call cost: tokens, money where the price is known, time and attempts."""

    model_config = ConfigDict(extra="forbid")

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    latency_ms: float = 0.0
    attempts: int = 1


class ProviderResult(BaseModel):
    """One provider's answer (or its failure) for one analysis."""

    model_config = ConfigDict(extra="forbid")

    provider: str
    model: str
    role: Literal["assessment", "verification", "report"]
    ok: bool
    assessment: Assessment | None = None
    error: str | None = None
    usage: ProviderUsage = Field(default_factory=ProviderUsage)
    cached: bool = False


class Verification(BaseModel):
    """A second opinion on the finding, and the rule that made the final decision."""

    model_config = ConfigDict(extra="forbid")

    verifier: str = Field(description="'local', or the provider that re-judged.")
    verdict: Literal["confirmed", "disputed", "unverified"]
    agrees: bool | None = None
    checks: list[str] = Field(default_factory=list, description="What was checked, and what was found.")
    rule: str = Field("", description="The decision rule that applied.")
    decision: str = Field("", description="What the rule did to the finding.")
    final_category: str | None = None
    final_severity: int | None = Field(None, ge=1, le=5)


class AnalysisResult(BaseModel):
    """Everything one analysis found, plus seed 000's flat fields."""

    model_config = ConfigDict(extra="forbid")

    media: MediaInfo
    scores: dict[str, float]
    # Per category that scored at all: (window middle in seconds, score) over the media, for charts.
    score_timeline: dict[str, list[tuple[float, float]]] = Field(default_factory=dict)
    incidents: list[Incident]
    detections: list[Detection]
    frames: list[dict[str, Any]] = Field(default_factory=list)
    audio_events: list[dict[str, Any]] = Field(default_factory=list)
    transcript: list[TranscriptSegment] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    # Analyzers that failed on this media (the rest of the analysis still stands).
    analyzer_errors: dict[str, dict[str, str]] = Field(default_factory=dict)
    cache_hit: bool = False
    config_hash: str = ""
    # Seed 000's flat fields, kept so its clients work unchanged.
    crime_detected: bool
    crime_type: str | None
    confidence: Literal["low", "medium", "high"]
    evidence_description: str
    timestamp: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    provider: str = "local"
    # The reasoning layer: the final judgement, the local one, each provider's answer, and the second opinion.
    assessment: Assessment | None = None
    local_analysis: Assessment | None = None
    provider_results: list[ProviderResult] = Field(default_factory=list)
    cross_verification: Verification | None = None

    @property
    def transcript_text(self) -> str:
        return " ".join(s.text.strip() for s in self.transcript).strip()
