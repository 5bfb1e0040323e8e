"""The reasoning stage with real providers: OpenAI-compatible servers on loopback answering in the
recorded llama.cpp format. Fallback, repair, the second opinion and its rule, caching, accounting, and the
pipeline and reports using them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from loopback_http import LoopbackServer, Reply
from mediagen import doom_sound, noise, write_audio
from watchkeeper import Pipeline
from watchkeeper.config import Settings
from watchkeeper.reasoning.reports import ReportWriter

RECORDED = json.loads((Path(__file__).parent / "data" / "provider_replies" / "llamacpp_chat.json").read_text())
CHAT = "/v1/chat/completions"


def chat(content: str, status: int = 200) -> Reply:
    """A llama.cpp server's chat completion carrying ``content``."""
    body = {**RECORDED, "choices": [{**RECORDED["choices"][0], "message": {"role": "assistant", "content": content}}]}
    return Reply(status, json.dumps(body).encode(), {"Content-Type": "application/json"})


def judgement(category: str | None, severity: int, confidence: float = 0.9) -> str:
    return json.dumps({
        "crime_detected": category is not None, "category": category, "severity": severity,
        "confidence": confidence, "evidence_description": f"{category or 'nothing'} heard", "location": "audio track",
        "visual_score": 0.0, "audio_score": 0.95, "text_alignment_score": 0.0, "multimodal_agreement": 0.5,
        "reasoning_summary": "Two sharp reports with the envelope of gunfire.", "threat_severity_index": 0.9})


@pytest.fixture(scope="module")
def gunshot(tmp_path_factory) -> Path:
    quiet = noise(1.0, amplitude=0.003)
    shot = doom_sound("DSPISTOL")
    return write_audio(tmp_path_factory.mktemp("shots") / "gunshot.wav", np.concatenate([quiet, shot, quiet, shot, quiet]))


def settings_for(tmp_path: Path, servers: dict[str, LoopbackServer], **reasoning) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        providers={name: {"type": "openai_compatible", "base_url": f"{server.url}/v1", "model": f"{name}-7b",
                          "max_retries": 1, "timeout_s": 10}
                   for name, server in servers.items()},
        default_provider=next(iter(servers)), reasoning=reasoning)


def test_a_failing_provider_hands_over_and_the_verifier_downgrades_a_disputed_finding(gunshot, tmp_path):
    with LoopbackServer() as primary, LoopbackServer() as backup, LoopbackServer() as checker:
        primary.replies[CHAT] = Reply(503, b'{"error": "loading model"}', {"Content-Type": "application/json"})
        backup.replies[CHAT] = chat(judgement("shooting", 5))
        checker.replies[CHAT] = chat(judgement("explosion", 5))
        settings = settings_for(tmp_path, {"primary": primary, "backup": backup, "checker": checker},
                                order=["primary", "backup"], verifier="checker")
        result = Pipeline(settings).analyze(gunshot)

    failed, answered, verified = result.provider_results
    assert (failed.provider, failed.ok, failed.role) == ("primary", False, "assessment") and "503" in failed.error
    assert (answered.provider, answered.ok, answered.model) == ("backup", True, "openai/backup-7b")
    assert answered.usage.input_tokens == 812 and answered.usage.attempts == 1
    assert (verified.provider, verified.role, verified.assessment.category) == ("checker", "verification", "explosion")
    assert len(primary.received) == 2  # the first try and its one retry
    # The checker disagreed on a severity-5 finding: the rule downgrades it by one.
    verification = result.cross_verification
    assert verification.verdict == "disputed" and verification.agrees is False
    assert "downgraded from severity 5 to 4" in verification.decision and "severity >= 4" in verification.rule
    assert result.assessment.severity == 4 and result.assessment.source == "backup:openai/backup-7b"
    assert result.provider == "backup" and result.crime_type == "Gunfire" and result.crime_detected
    assert result.local_analysis.category == "shooting" and result.local_analysis.source == "local"
    # The provider saw the local evidence and the site's context, as text (no pictures for sound).
    prompt = json.loads(backup.received[0].body)["messages"]
    assert "audio:gunshot" in prompt[1]["content"] and "security_level" in prompt[0]["content"]


def test_a_malformed_answer_is_asked_again_once_then_cached_with_the_analysis(gunshot, tmp_path):
    with LoopbackServer() as site:
        site.replies[CHAT] = [chat("Here you go: {crime_detected: yes"), chat("```json\n" + judgement("shooting", 5)
                                                                          + "\n```")]
        settings = settings_for(tmp_path, {"site": site}, verifier="local")
        first = Pipeline(settings).analyze(gunshot)
        assert len(site.received) == 2
        [answer] = first.provider_results
        assert answer.ok and answer.usage.attempts == 2 and answer.usage.output_tokens == 78
        assert "rejected" in json.loads(site.received[1].body)["messages"][1]["content"]
        # The local evidence agrees (shooting): confirmed, kept.
        assert first.cross_verification.verifier == "local" and first.cross_verification.verdict == "confirmed"
        again = Pipeline(settings).analyze(gunshot)
        assert len(site.received) == 2 and again.provider_results[0].cached
        assert again.assessment == first.assessment


def test_when_every_provider_fails_the_local_judgement_stands(gunshot, tmp_path):
    with LoopbackServer() as site:
        site.replies[CHAT] = chat("I am sorry, I cannot assess security footage.")
        result = Pipeline(settings_for(tmp_path, {"site": site})).analyze(gunshot, use_cache=False)
    [failed] = result.provider_results
    assert not failed.ok and "did not match the schema twice" in failed.error and failed.usage.attempts == 2
    assert result.assessment == result.local_analysis and result.provider == "local"
    assert result.crime_detected and result.crime_type == "Gunfire"


def test_the_provider_writes_the_report_sections_and_the_templates_stand_in_when_it_cannot(gunshot, tmp_path):
    sections = {"situation_overview": "Two pistol shots near the gate.", "severity_assessment": "Emergency.",
                "hazard_analysis": "More shots may follow.", "immediate_actions": ["Call the police."],
                "equipment_required": ["Radios"], "de_escalation_strategy": "Nobody approaches.",
                "resolution_method": "Police clear the scene."}
    with LoopbackServer() as site:
        site.replies[CHAT] = [chat(judgement("shooting", 5)), chat(json.dumps(sections))]
        settings = settings_for(tmp_path, {"site": site}, verifier=None)
        pipeline = Pipeline(settings)
        result = pipeline.analyze(gunshot, use_cache=False)
        writer = ReportWriter(settings, pipeline.fusion.rules.categories, pipeline.reasoner)
        report = writer.for_analysis(result)
        assert report.written_by == "site:openai/site-7b"
        assert report.incidents[0].sections.situation_overview == "Two pistol shots near the gate."
        asked = len(site.received)
        again = writer.for_analysis(result)  # opened again: the sections come from the cache
        assert again.incidents[0].sections == report.incidents[0].sections and len(site.received) == asked
        site.replies[CHAT] = Reply(400, b'{"error": "context too long"}', {"Content-Type": "application/json"})
        uncached = settings.model_copy(update={"cache": settings.cache.model_copy(update={"enabled": False})})
        fresh = Pipeline(uncached)
        fallback = ReportWriter(uncached, fresh.fusion.rules.categories, fresh.reasoner).for_analysis(result)
    assert fallback.written_by == "templates" and "audio:gunshot" in fallback.incidents[0].sections.situation_overview


def test_a_vision_model_is_shown_the_picture_a_text_model_is_not(tmp_path):
    from PIL import Image
    from skimage import data as skdata

    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skdata.astronaut()).save(photo)
    with LoopbackServer() as seeing, LoopbackServer() as blind:
        seeing.replies[CHAT] = blind.replies[CHAT] = chat(judgement(None, 1, 0.95))
        settings = settings_for(tmp_path, {"seeing": seeing, "blind": blind}, verifier=None)
        settings.providers["seeing"].vision = True
        pipeline = Pipeline(settings)
        pipeline.analyze(photo, provider="seeing")
        pipeline.analyze(photo, provider="blind")
    shown = json.loads(seeing.received[0].body)["messages"][1]["content"]
    assert shown[0]["type"] == "text" and shown[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert isinstance(json.loads(blind.received[0].body)["messages"][1]["content"], str)


def test_a_model_that_listens_hears_the_sound_around_the_incident(gunshot, tmp_path):
    import base64
    import io
    import wave

    with LoopbackServer() as listening:
        listening.replies[CHAT] = chat(judgement("shooting", 5))
        settings = settings_for(tmp_path, {"listening": listening}, verifier=None)
        settings.providers["listening"].audio = True
        Pipeline(settings).analyze(gunshot, use_cache=False)
    content = json.loads(listening.received[0].body)["messages"][1]["content"]
    [sound] = [part for part in content if part["type"] == "input_audio"]
    with wave.open(io.BytesIO(base64.b64decode(sound["input_audio"]["data"]))) as heard:
        assert (heard.getframerate(), heard.getnchannels()) == (16000, 1)
        assert heard.getnframes() / 16000 == pytest.approx(load_seconds(gunshot), abs=0.1)  # short: all of it


def load_seconds(path: Path) -> float:
    from watchkeeper.media import load_media

    return load_media(path).duration_s
