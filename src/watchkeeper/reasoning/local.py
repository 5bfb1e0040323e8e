"""The judgement and the second opinion that need no model provider: both read the fused local evidence.

The assessment's fields follow TAXONOMY.md: per modality, the strongest
contribution that modality makes to the finding; ``multimodal_agreement`` the
mean of those over the modalities the media has; ``threat_severity_index``
``(severity - 1) / 4 x confidence``. The verifier looks for support from a
second, independent modality (the analyzers of one modality share their
input) and says what it found; it never changes the finding by itself.
"""

from __future__ import annotations

from ..domain import AnalysisResult, Assessment, Incident, Modality, Verification
from ..taxonomy import threat_severity_index

MODALITY_WORDS: dict[Modality, str] = {"visual": "picture", "audio": "sound", "speech": "speech"}


def modalities_present(result: AnalysisResult) -> list[Modality]:
    """The modalities the media could have spoken through: pictures, sound, words."""
    present: list[Modality] = []
    if result.media.media_type in ("image", "video"):
        present.append("visual")
    if result.media.has_audio:
        present.append("audio")
    if result.transcript:
        present.append("speech")
    return present


def modality_scores(incident: Incident | None) -> dict[Modality, float]:
    scores: dict[Modality, float] = {"visual": 0.0, "audio": 0.0, "speech": 0.0}
    for evidence in incident.evidence if incident else []:
        modality = evidence.detection.modality
        scores[modality] = max(scores[modality], min(1.0, evidence.contribution))
    return scores


def where_in_frame(incident: Incident) -> str:
    """Words for where the incident's boxes are, its zone and camera ("" when the evidence has no place)."""
    parts = []
    if incident.boxes:
        x, y, w, h = incident.boxes[0]["box_xywh_norm"]
        cx, cy = x + w / 2, y + h / 2
        column = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
        row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
        parts.append(f"{row} {column} of the frame ({incident.boxes[0]['label']})")
    if incident.zone:
        parts.append(f"zone {incident.zone}")
    if incident.camera:
        parts.append(f"camera {incident.camera}")
    return ", ".join(parts)


def local_assessment(result: AnalysisResult) -> Assessment:
    top = top_incident(result)
    scores = modality_scores(top)
    present = modalities_present(result)
    agreement = sum(scores[m] for m in present) / len(present) if present else 0.0
    if top is None:
        highest = max(result.scores.values(), default=0.0)
        return Assessment(
            crime_detected=False, category=None, severity=1, confidence=round(1.0 - highest, 3),
            evidence_description=result.evidence_description, location="",
            visual_score=0.0, audio_score=0.0, text_alignment_score=0.0, multimodal_agreement=0.0,
            reasoning_summary=f"No category reached its threshold; the highest score was {highest:.2f}. "
                              f"Checked: {', '.join(MODALITY_WORDS[m] for m in present) or 'nothing decodable'}.",
            threat_severity_index=0.0,
        )
    return Assessment(
        crime_detected=True, category=top.category, severity=top.severity, confidence=round(top.confidence, 3),
        evidence_description=result.evidence_description,
        location=where_in_frame(top) or f"{top.t_start_s:.1f}-{top.t_end_s:.1f} s into the media",
        visual_score=round(scores["visual"], 3), audio_score=round(scores["audio"], 3),
        text_alignment_score=round(scores["speech"], 3), multimodal_agreement=round(agreement, 3),
        reasoning_summary=_summary(top, scores, present),
        threat_severity_index=threat_severity_index(top.severity, top.confidence),
    )


def top_incident(result: AnalysisResult) -> Incident | None:
    """The finding a report leads with: the most severe, then the most confident."""
    return max(result.incidents, key=lambda i: (i.severity, i.confidence), default=None)


def _summary(top: Incident, scores: dict[Modality, float], present: list[Modality]) -> str:
    strongest = sorted(top.evidence, key=lambda e: e.contribution, reverse=True)[:3]
    found = "; ".join(f"{e.detection.label} ({MODALITY_WORDS[e.detection.modality]}, {e.detection.score:.2f}, "
                      f"{e.detection.t_start_s:.1f} s)" for e in strongest)
    supporting = [m for m in present if scores[m] > 0]
    silent = [MODALITY_WORDS[m] for m in present if scores[m] == 0]
    text = (f"{top.category_name} at {top.confidence:.0%} confidence, severity {top.severity} "
            f"({top.severity_label}). Strongest evidence: {found}. "
            f"{len(supporting)} of {len(present)} available modalities support it")
    return text + (f"; nothing in the {' or '.join(silent)}." if silent else ".")


def local_verification(result: AnalysisResult) -> Verification | None:
    """Checks the leading finding against independent local evidence; None when there is no finding."""
    top = top_incident(result)
    if top is None:
        return None
    by_modality: dict[str, set[str]] = {}
    for evidence in top.evidence:
        by_modality.setdefault(evidence.detection.modality, set()).add(evidence.detection.analyzer)
    checks = [f"{MODALITY_WORDS[m]}: {', '.join(sorted({e.detection.label for e in top.evidence if e.detection.modality == m}))}"
              f" (from {', '.join(sorted(a))})" for m, a in sorted(by_modality.items())]
    missing = [MODALITY_WORDS[m] for m in modalities_present(result) if m not in by_modality]
    if missing:
        checks.append(f"no supporting evidence in the {' or '.join(missing)}")
    # Modalities, not analyzers: the text analyzer reads the speech analyzer's transcript, the learned sound
    # heads read the sound model's embedding; only another modality is independent evidence.
    confirmed = len(by_modality) >= 2
    return Verification(
        verifier="local",
        verdict="confirmed" if confirmed else "unverified",
        agrees=True if confirmed else None,
        checks=checks,
        rule="local check: confirmed when a second, independent modality supports the finding",
        decision=("confirmed by independent local evidence" if confirmed
                  else "kept as found: one modality supports it; review the evidence"),
        final_category=top.category, final_severity=top.severity,
    )
