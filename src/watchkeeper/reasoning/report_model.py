"""What a report says, before it is rendered: one model for incident, analysis and live-session reports.

``reasoning.reports`` builds it (from category templates filled with the evidence, or from a provider);
``reasoning.render`` turns it into JSON, Markdown, HTML or PDF. Pictures travel as base64 JPEG so the
JSON form is complete on its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..domain import Assessment, Verification


class Sections(BaseModel):
    """Seed 004's seven sections."""

    model_config = ConfigDict(extra="forbid")

    situation_overview: str
    severity_assessment: str
    hazard_analysis: str
    immediate_actions: list[str]
    equipment_required: list[str]
    de_escalation_strategy: str
    resolution_method: str


SECTION_TITLES: dict[str, str] = {
    "situation_overview": "Situation overview",
    "severity_assessment": "Severity assessment",
    "hazard_analysis": "Hazard analysis",
    "immediate_actions": "Immediate actions",
    "equipment_required": "Equipment required",
    "de_escalation_strategy": "De-escalation strategy",
    "resolution_method": "Resolution method",
}


class EvidenceLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modality: str
    label: str
    score: float
    t_start_s: float
    t_end_s: float
    analyzer: str = ""
    contribution: float | None = None


class Picture(BaseModel):
    model_config = ConfigDict(extra="forbid")

    caption: str
    jpeg_base64: str


class TimelineEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    t_s: float = Field(description="Seconds into the media (or the camera's stream).")
    what: str


class IncidentPart(BaseModel):
    """One incident of the report, with its sections and its own evidence."""

    model_config = ConfigDict(extra="forbid")

    incident_id: str | None = None
    category: str
    category_name: str
    severity: int
    severity_label: str
    severity_color: str
    confidence: float
    status: str = "open"
    t_start_s: float
    t_end_s: float
    camera: str | None = None
    zone: str | None = None
    location: str = ""
    summary: str
    requires_immediate_action: bool
    sections: Sections
    evidence: list[EvidenceLine] = Field(default_factory=list)
    transcript_excerpts: list[str] = Field(default_factory=list)
    pictures: list[Picture] = Field(default_factory=list)
    links: dict[str, str] = Field(default_factory=dict, description="snapshot, clip, audio: where to get them.")
    verification: Verification | None = None


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["incident", "analysis", "session"]
    title: str
    generated_at: datetime
    written_by: str = Field(description="'templates', or the provider and model that wrote the sections.")
    subject: dict[str, str] = Field(default_factory=dict, description="Source, analysis id, camera, period...")
    context: dict[str, str] = Field(default_factory=dict, description="Seed 004's event settings, the site's notes.")
    incidents: list[IncidentPart] = Field(default_factory=list)
    assessment: Assessment | None = None
    scores: dict[str, float] = Field(default_factory=dict, description="Peak score per category id.")
    category_names: dict[str, str] = Field(default_factory=dict)
    score_timeline: dict[str, list[tuple[float, float]]] = Field(default_factory=dict)
    category_breakdown: dict[str, int] = Field(default_factory=dict, description="Incidents per category name.")
    statistics: dict[str, str | int | float | None] = Field(default_factory=dict)
    transcript: list[TimelineEntry] = Field(default_factory=list)
    audio_events: list[TimelineEntry] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="What the report could not include, and why.")
