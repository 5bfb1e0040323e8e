"""The reasoning layer without a provider: the local assessment, the local verifier, the decision rules,
the parsing of provider answers, and the template-written report sections."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from watchkeeper.config import DecisionRules, Settings
from watchkeeper.domain import AnalysisResult, Assessment, Detection, MediaInfo, TranscriptSegment, Verification
from watchkeeper.fusion import FusionEngine, build_rules
from watchkeeper.reasoning.assessor import Reasoner, decide, parse_assessment
from watchkeeper.reasoning.local import local_assessment, local_verification
from watchkeeper.reasoning.reports import ReportWriter, template_sections

SETTINGS = Settings()
RULES = build_rules(SETTINGS)


def analysed(detections: list[Detection], *, media_type: str = "video", has_audio: bool = True,
             transcript: str = "", duration_s: float = 4.0) -> AnalysisResult:
    """What the pipeline would make of these detections: the real fusion engine, a result around it."""
    fused = FusionEngine(SETTINGS, RULES).fuse(detections, duration_s, when=datetime(2026, 12, 4, 14, 0))
    segments = [TranscriptSegment(t_start_s=0.5, t_end_s=1.5, text=transcript)] if transcript else []
    top = fused.incidents[0] if fused.incidents else None
    return AnalysisResult(
        media=MediaInfo(media_type=media_type, source="scene.mp4", format="mp4", sha256="0" * 64, size_bytes=1,
                        duration_s=duration_s, has_audio=has_audio),
        scores=fused.scores, incidents=fused.incidents, detections=detections, transcript=segments,
        crime_detected=top is not None, crime_type=top.category_name if top else None, confidence="high",
        evidence_description=" ".join(i.summary for i in fused.incidents) or "Nothing of note.")


def det(label: str, modality: str, score: float, t: float = 1.0, analyzer: str = "test", **extra) -> Detection:
    return Detection(analyzer=analyzer, modality=modality, label=label, score=score, t_start_s=t, t_end_s=t + 0.5,
                     **extra)


@pytest.fixture
def cry_and_scream() -> AnalysisResult:
    """A call for help, and a scream in the sound at the same moment: two modalities agree."""
    return analysed([det("speech:distress", "speech", 0.9, analyzer="speech"),
                     det("audio:scream", "audio", 0.8, analyzer="audio_events")], transcript="Help me!")


def test_the_local_assessment_has_every_field_from_the_fused_evidence(cry_and_scream):
    assessment = local_assessment(cry_and_scream)
    assert assessment.crime_detected and assessment.category == "distress" and assessment.source == "local"
    assert assessment.audio_score > 0.5 and assessment.text_alignment_score > 0.5 and assessment.visual_score == 0
    # Agreement is the mean over the modalities the media has (picture, sound, speech): the picture said nothing.
    expected = (assessment.audio_score + assessment.text_alignment_score) / 3
    assert assessment.multimodal_agreement == pytest.approx(expected, abs=0.002)
    assert assessment.threat_severity_index == pytest.approx((assessment.severity - 1) / 4 * assessment.confidence,
                                                             abs=1e-3)
    assert "Screaming" in assessment.reasoning_summary or "audio:scream" in assessment.reasoning_summary


def test_the_local_verifier_confirms_a_distress_call_with_a_scream_and_not_a_lone_transcript(cry_and_scream):
    confirmed = local_verification(cry_and_scream)
    assert confirmed.verdict == "confirmed" and confirmed.agrees and confirmed.verifier == "local"
    assert any("sound" in c for c in confirmed.checks) and any("speech" in c for c in confirmed.checks)
    alone = local_verification(analysed([det("speech:distress", "speech", 0.95, analyzer="speech"),
                                         det("text:distress", "speech", 0.9, analyzer="text")],
                                        transcript="Help me!"))
    # Speech and text semantics read the same words: one modality, however many analyzers.
    assert alone.verdict == "unverified" and alone.agrees is None
    assert any("no supporting evidence in the picture or sound" in c for c in alone.checks)


def test_a_quiet_scene_is_judged_quiet_with_no_verification():
    quiet = analysed([det("person", "visual", 0.9, box_xywh_norm=(0.1, 0.1, 0.2, 0.5))])
    assessment = local_assessment(quiet)
    assert not assessment.crime_detected and assessment.category is None and assessment.threat_severity_index == 0
    assert local_verification(quiet) is None
    refined = Reasoner(SETTINGS, RULES.categories, providers={}).refine(quiet)
    assert refined.assessment == refined.local_analysis and refined.provider_results == []


def test_without_a_provider_refine_fills_the_seed_fields_and_changes_nothing_else(cry_and_scream):
    before = cry_and_scream.model_copy(deep=True)
    refined = Reasoner(SETTINGS, RULES.categories, providers={}).refine(cry_and_scream)
    assert refined.cross_verification.verdict == "confirmed" and refined.provider == "local"
    assert (refined.crime_detected, refined.crime_type, refined.incidents) == (
        before.crime_detected, before.crime_type, before.incidents)


def _finding(severity: int) -> Assessment:
    return Assessment(crime_detected=True, category="shooting", severity=severity, confidence=0.9,
                      evidence_description="shots", visual_score=0, audio_score=0.9, text_alignment_score=0,
                      multimodal_agreement=0.3, reasoning_summary="two shots", threat_severity_index=0.9,
                      source="gemini:gemini-2.0-flash")


@pytest.mark.parametrize("rule, severity, final_severity, detected", [
    ("downgrade", 5, 4, True), ("dismiss", 5, 5, False), ("keep", 5, 5, True), ("downgrade", 3, 3, True)])
def test_the_decision_rules_act_on_disagreement_only_from_their_severity(rule, severity, final_severity, detected):
    disputed = Verification(verifier="openai", verdict="disputed", agrees=False)
    final, verification = decide(_finding(severity), disputed,
                                 DecisionRules(require_agreement_from_severity=4, on_disagreement=rule))
    assert (final.severity, final.crime_detected) == (final_severity, detected)
    assert "severity >= 4" in verification.rule and verification.decision
    agreed, _ = decide(_finding(5), Verification(verifier="openai", verdict="confirmed", agrees=True), DecisionRules())
    assert agreed == _finding(5)


def test_provider_answers_are_repaired_or_rejected_with_the_reason():
    good = _finding(5).model_dump(exclude={"source"})
    import json
    fenced = f"Sure! Here is my assessment:\n```json\n{json.dumps(good)}\n```"
    assessment, _ = parse_assessment(fenced, RULES.categories, "groq:llama")
    assert assessment is not None and assessment.source == "groq:llama"
    for text, reason in [("I cannot help with that.", "no JSON object"),
                         ('{"crime_detected": true, "category": "shooting",}', "invalid JSON"),
                         (json.dumps({**good, "category": "alien_invasion"}), "unknown category"),
                         (json.dumps({**good, "severity": 9}), "severity")]:
        assessment, problem = parse_assessment(text, RULES.categories, "groq:llama")
        assert assessment is None and reason in problem


def test_template_sections_speak_of_this_incidents_evidence(cry_and_scream):
    incident = cry_and_scream.incidents[0]
    sections = template_sections(cry_and_scream, incident)
    assert "Help me!" in sections.situation_overview and "audio:scream" in sections.situation_overview
    assert f"Severity {incident.severity}" in sections.severity_assessment
    assert sections.immediate_actions and sections.equipment_required and sections.resolution_method
    severe = analysed([det("audio:gunshot", "audio", 0.97, analyzer="audio_events")], media_type="audio")
    shooting = template_sections(severe, severe.incidents[0])
    plain = template_sections(cry_and_scream, incident)
    # Severity 4 and up adds the category's escalation steps.
    assert severe.incidents[0].severity >= 4 and len(shooting.immediate_actions) > 4
    assert plain.immediate_actions != shooting.immediate_actions


def test_an_analysis_report_has_one_part_per_incident_and_the_timeline(cry_and_scream):
    Reasoner(SETTINGS, RULES.categories, providers={}).refine(cry_and_scream)
    report = ReportWriter(SETTINGS, RULES.categories).for_analysis(cry_and_scream)
    assert report.written_by == "templates" and [p.category for p in report.incidents] == ["distress"]
    assert report.incidents[0].verification.verdict == "confirmed"
    assert any("Help me!" in e.what for e in report.timeline) and report.context["event_type"] == "general"


def test_seed_000s_local_llm_size_picks_the_on_premise_model_and_makes_it_the_verifier():
    settings = Settings(providers={"ollama": {"base_url": "http://127.0.0.1:11434"}, "gemini": {"api_key": "k"}},
                        default_provider="gemini", reasoning={"local_llm_size": "tiny"})
    reasoner = Reasoner(settings, RULES.categories)
    assert reasoner.providers["ollama"].model_for("detailed") == "ollama_chat/llama3.2:1b"
    assert reasoner.settings.reasoning.verifier == "ollama" and reasoner.order(None) == ["gemini", "ollama"]


@pytest.mark.parametrize("settings, message", [
    ({"default_provider": "gemini"}, "default_provider: unknown provider 'gemini'"),
    ({"providers": {"local": {}}}, "'local' is the built-in pipeline"),
    ({"providers": {"site": {"base_url": "http://x"}}}, "unknown provider type(s): site (type site)"),
    ({"reasoning": {"order": ["groq"]}}, "reasoning.order: unknown provider 'groq'"),
])
def test_provider_settings_errors_name_the_key(settings, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings(**settings)


def test_the_sound_sent_is_thirty_seconds_around_the_leading_incident():
    import numpy as np

    from watchkeeper.reasoning.prompt import excerpt

    late = analysed([det("audio:gunshot", "audio", 0.97, t=60.0, analyzer="audio_events")], media_type="audio",
                    duration_s=120.0)
    samples = np.arange(120 * 16000, dtype=np.float32)
    cut = excerpt(samples, late)
    middle = (late.incidents[0].t_start_s + late.incidents[0].t_end_s) / 2
    assert len(cut) == 30 * 16000 and cut[0] == pytest.approx((middle - 15) * 16000, abs=1)
    assert len(excerpt(samples[: 10 * 16000], late)) == 10 * 16000  # a short recording goes whole
