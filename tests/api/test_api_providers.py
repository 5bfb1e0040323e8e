"""A server with a model provider: a real OpenAI-compatible server on loopback judges what the local models
found, through seed 000's paths and /api/v1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apiserver import assert_problem, base_settings
from loopback_http import LoopbackServer, Reply

RECORDED = json.loads((Path(__file__).parents[1] / "data" / "provider_replies" / "llamacpp_chat.json").read_text())
ALARM = {"crime_detected": True, "category": "alarm", "severity": 2, "confidence": 0.88,
         "evidence_description": "A siren is sounding.", "location": "audio track", "visual_score": 0.0,
         "audio_score": 0.9, "text_alignment_score": 0.0, "multimodal_agreement": 0.45,
         "reasoning_summary": "A rising and falling tone typical of a siren.", "threat_severity_index": 0.22}


@pytest.fixture(scope="module")
def site_llm():
    with LoopbackServer() as server:
        choice = {**RECORDED["choices"][0], "message": {"role": "assistant", "content": json.dumps(ALARM)}}
        server.replies["/v1/chat/completions"] = Reply(200, json.dumps({**RECORDED, "choices": [choice]}).encode(),
                                                       {"Content-Type": "application/json"})
        yield server


@pytest.fixture(scope="module")
def provider_server(start_server, media_root, site_llm):
    settings = base_settings(media_root)
    settings["providers"] = {"site": {"type": "openai_compatible", "base_url": f"{site_llm.url}/v1",
                                      "model": "qwen2.5-7b-instruct"}}
    server = start_server("providers", settings)
    yield server
    server.stop()  # its cameras and workers would otherwise run on through the other modules' tests


def test_providers_are_listed_with_their_models(provider_server):
    with provider_server.client(provider_server.admin_key) as client:
        assert client.get("/providers").json() == {"providers": ["local", "site"], "default_provider": "local"}
        listed = client.get("/api/v1/providers").json()
    assert [p["name"] for p in listed["providers"]] == ["local", "site"] and listed["verifier"] == "local"
    site = listed["providers"][1]
    assert site["type"] == "openai_compatible" and site["fast_model"] == "openai/qwen2.5-7b-instruct"
    assert site["vision"] is False and listed["order"] == ["local"]


def test_an_analysis_names_its_provider_and_carries_its_answer(provider_server, media_root, site_llm):
    with provider_server.client(provider_server.admin_key) as client:
        body = client.post("/analyze/audio", json={"audio_path": str(media_root / "siren.wav"), "provider": "site"})
        assert body.status_code == 200, body.text
        result = body.json()
        assert result["provider"] == "site" and result["crime_type"] == "Alarm or siren"
        [answer] = result["provider_results"]
        assert answer["ok"] and answer["usage"]["input_tokens"] == 812
        assert result["assessment"]["source"] == "site:openai/qwen2.5-7b-instruct"
        assert result["local_analysis"]["source"] == "local" and result["local_analysis"]["category"] == "alarm"
        assert result["cross_verification"]["verifier"] == "local"
        assert result["cross_validation_results"] == result["cross_verification"]
        assert "siren" in json.loads(site_llm.received[-1].body)["messages"][1]["content"]
        # Without one named, the default (local) judges alone.
        local = client.post("/analyze/audio", json={"audio_path": str(media_root / "siren.wav")}).json()
        assert local["provider"] == "local" and local["provider_results"] == []
        assert_problem(client.post("/analyze/audio", json={"audio_path": str(media_root / "siren.wav"),
                                                           "provider": "nope"}), 400)
