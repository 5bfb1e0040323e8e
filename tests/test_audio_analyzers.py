"""The audio_events, speech and text analyzers on generated media and real models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mediagen import SR, noise, speak
from watchkeeper.analyzers.audio_events import AudioEventsAnalyzer, audio_groups
from watchkeeper.analyzers.base import AnalysisContext, AnalyzerOutput
from watchkeeper.analyzers.speech import SpeechAnalyzer, distress_detection, drop_reason
from watchkeeper.analyzers.text import TextAnalyzer, builtin_examples
from watchkeeper.config import CategoryDef, Settings
from watchkeeper.domain import Media, MediaInfo
from watchkeeper.models.registry import ModelRegistry
from watchkeeper.models.whisper import RecognisedSegment
from watchkeeper.taxonomy import BUILTIN_IDS
from watchkeeper.media import load_media


def load_wav(path) -> np.ndarray:
    return load_media(path).audio


def audio_media(samples: np.ndarray) -> Media:
    samples = np.asarray(samples, np.float32)
    info = MediaInfo(media_type="audio", source="generated", format="wav", sha256="0" * 64,
                     size_bytes=samples.nbytes, duration_s=len(samples) / SR, has_audio=True,
                     audio_sample_rate_hz=SR, audio_channels=1)
    return Media(info=info, audio=samples)


def siren_sweep(seconds: float = 6.0, period_s: float = 4.0) -> np.ndarray:
    """A wailing siren: a tone gliding between 1 and 3 kHz and back."""
    t = np.arange(int(seconds * SR)) / SR
    freq = 1000 + 2000 * (0.5 - 0.5 * np.cos(2 * np.pi * t / period_s))
    return (0.3 * np.sin(2 * np.pi * np.cumsum(freq) / SR)).astype(np.float32)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    # whisper-base writes its joined model.bin under the cache folder.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WATCHKEEPER_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield ModelRegistry()


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(categories=[
        CategoryDef(id="drone", name="Drone", description="A drone is flying over the stadium crowd."),
    ])


@pytest.fixture(scope="module")
def speech_clips(tmp_path_factory) -> dict[str, np.ndarray]:
    folder = tmp_path_factory.mktemp("speech")
    pad = np.zeros(SR // 2, np.float32)
    lines = {"help": "Help me, he has a gun", "calm": "The weather is nice today, let's get coffee."}
    return {key: np.concatenate([pad, load_wav(speak(text, folder / f"{key}.wav")), pad])
            for key, text in lines.items()}


def run(analyzer, samples: np.ndarray, settings: Settings) -> AnalyzerOutput:
    output = analyzer.analyze(audio_media(samples), AnalysisContext(settings=settings))
    json.dumps(output.data)  # data must be JSON-serialisable
    return output


# --- audio_events ---------------------------------------------------------------

def test_every_mapped_class_exists_in_yamnet(registry):
    names = set(registry.get("yamnet").class_names)
    for group in audio_groups():
        assert group.label.startswith("audio:")
        assert set(group.classes) <= names, group.label


def test_siren_sweep_is_a_siren_or_alarm(registry, settings):
    output = run(AudioEventsAnalyzer(settings, registry), siren_sweep(), settings)
    labels = {d.label: d.score for d in output.detections}
    assert max(labels.get("audio:siren", 0), labels.get("audio:alarm", 0)) >= 0.5, labels
    assert "audio:gunshot" not in labels and "audio:scream" not in labels
    for event in output.data["timeline"]:
        assert 0 <= event["t_start_s"] < event["t_end_s"] <= 6.0
        assert event["top_classes"] and event["score"] >= settings.analyzers.audio_events.min_score


@pytest.mark.parametrize("samples", [np.zeros(4 * SR, np.float32), noise(4.0, amplitude=0.05)],
                         ids=["silence", "white-noise"])
def test_plain_sounds_raise_no_events(registry, settings, samples):
    output = run(AudioEventsAnalyzer(settings, registry), samples, settings)
    assert output.detections == [] and output.data["timeline"] == []


def test_audio_events_data_is_compact(registry, settings, speech_clips):
    clip = speech_clips["help"]
    output = run(AudioEventsAnalyzer(settings, registry), clip, settings)
    data = output.data
    assert len(data["embedding_mean"]) == 1024
    assert data["speech_ratio"] > 0.5
    assert all(len(w["top_classes"]) <= 3 for w in data["windows"])
    assert len(json.dumps(data)) < 40_000
    silent = run(AudioEventsAnalyzer(settings, registry), np.zeros(2 * SR, np.float32), settings)
    assert silent.data["speech_ratio"] == 0


# --- speech -------------------------------------------------------------------

def test_spoken_call_for_help_is_distress(registry, settings, speech_clips):
    output = run(SpeechAnalyzer(settings, registry), speech_clips["help"], settings)
    assert "help" in output.data["text"].lower()
    assert output.data["language"] == "en" and output.data["model"] == "whisper-tiny.en"
    distress = [d for d in output.detections if d.label == "speech:distress"]
    assert len(distress) == 1
    detection = distress[0]
    assert "help" in detection.attributes["keyword"] and detection.modality == "speech"
    assert 0.3 < detection.score <= 0.9
    # The span is the keyword's words: after the 0.5 s of leading silence, give or take
    # Whisper's word-time error, and before the end of the clip.
    assert 0.0 <= detection.t_start_s < detection.t_end_s <= len(speech_clips["help"]) / SR
    assert detection.t_end_s > 0.6


def test_whisper_base_hears_the_gun(registry, speech_clips):
    settings = Settings.model_validate({"analyzers": {"speech": {"model": "base"}}})
    output = run(SpeechAnalyzer(settings, registry), speech_clips["help"], settings)
    assert output.data["model"] == "whisper-base"
    assert "gun" in output.data["text"].lower(), output.data["text"]
    assert {"help me", "gun"} <= set(output.detections[0].attributes["keywords"])


def test_calm_speech_is_not_distress(registry, settings, speech_clips):
    output = run(SpeechAnalyzer(settings, registry), speech_clips["calm"], settings)
    assert output.data["segments"], "the calm sentence is transcribed"
    assert output.detections == []


def test_no_speech_means_no_whisper(settings):
    fresh = ModelRegistry()
    output = run(SpeechAnalyzer(settings, fresh), noise(3.0, amplitude=0.02), settings)
    assert output.detections == [] and output.data["segments"] == [] and output.data["model"] is None
    assert not any(name.startswith("whisper") for name in fresh.loaded())


def _segment(text: str, **overrides) -> RecognisedSegment:
    fields = {"t_start_s": 1.0, "t_end_s": 3.0, "text": text, "avg_logprob": -0.2,
              "compression_ratio": 1.2, "no_speech_prob": 0.05, "words": []}
    return RecognisedSegment(**{**fields, **overrides})


def test_keywords_match_whole_words_only():
    keywords = Settings().analyzers.speech.distress_keywords
    assert distress_detection(_segment("That was a helpful gunsmith."), keywords, "m") is None
    found = distress_detection(_segment("Don\u2019t shoot!"), keywords, "m")
    assert found is not None and found.attributes["keyword"] == "don't shoot"
    assert found.score == pytest.approx(0.9 * np.exp(-0.2), abs=1e-3)


def test_suspect_segments_are_dropped():
    speech = Settings().analyzers.speech
    assert drop_reason(_segment("help help help help help", compression_ratio=3.1), speech) == "compression_ratio"
    assert drop_reason(_segment("help", avg_logprob=-1.4), speech) == "avg_logprob"
    assert drop_reason(_segment("help", no_speech_prob=0.9), speech) == "no_speech_prob"
    assert drop_reason(_segment("help"), speech) is None


# --- text ---------------------------------------------------------------------

def transcript_context(settings: Settings, *lines: str) -> AnalysisContext:
    segments = [{"t_start_s": 2.0 * i, "t_end_s": 2.0 * i + 1.5, "text": line, "avg_logprob": -0.3, "words": []}
                for i, line in enumerate(lines)]
    return AnalysisContext(settings=settings, outputs={"speech": AnalyzerOutput(data={"segments": segments})})


@pytest.fixture(scope="module")
def text_analyzer(registry, settings) -> TextAnalyzer:
    return TextAnalyzer(settings, registry)


def test_threat_ranks_robbery_and_weapon_first(text_analyzer):
    ids, sims = text_analyzer.similarities(["give me your wallet or I will stab you"])
    top2 = {ids[i] for i in np.argsort(-sims[0])[:2]}
    assert top2 == {"robbery", "weapon"}


def test_threats_score_high_and_calm_talk_low(text_analyzer, settings):
    media = audio_media(np.zeros(SR, np.float32))
    threats = text_analyzer.analyze(media, transcript_context(
        settings, "help me, he has a gun", "give me your wallet or I will stab you"))
    best = {}
    for d in threats.detections:
        best[d.label] = max(best.get(d.label, 0), d.score)
    assert best.get("text:weapon", 0) >= 0.6, best
    calm = text_analyzer.analyze(media, transcript_context(
        settings, "the weather is nice today, let's get coffee", "one two three four", "see you at the station at nine"))
    assert max([d.score for d in calm.detections] + [0]) < 0.3


def test_user_category_is_detected(text_analyzer, settings):
    output = text_analyzer.analyze(audio_media(np.zeros(SR, np.float32)), transcript_context(
        settings, "look, there is a drone flying over the crowd"))
    drone = [d for d in output.detections if d.label == "text:drone"]
    assert drone and drone[0].score > 0.5 and drone[0].modality == "speech"
    assert drone[0].attributes["text"] == "look, there is a drone flying over the crowd"
    assert output.data["items"][0]["top"][0]["category"] == "drone"


def test_examples_belong_to_builtin_categories():
    examples = builtin_examples()
    assert set(examples) <= set(BUILTIN_IDS)
    assert all(isinstance(line, str) and len(line) > 3 for lines in examples.values() for line in lines)


def test_user_category_replaces_builtin_text(registry):
    override = CategoryDef(id="weapon", name="Weapon", description="Someone carries a sword or an axe.")
    analyzer = TextAnalyzer(Settings(categories=[override]), registry)
    categories = analyzer.categories()
    assert categories["weapon"] == [override.description]
    assert set(BUILTIN_IDS) <= set(categories)


def test_ocr_text_is_visual_evidence(text_analyzer, settings):
    ocr = AnalyzerOutput(data={"texts": [
        {"text": "ROBBERY IN PROGRESS", "box_xywh_norm": [0.1, 0.2, 0.5, 0.1], "frame_index": 3, "t_s": 3.0},
        {"text": "ROBBERY IN PROGRESS", "box_xywh_norm": [0.1, 0.2, 0.5, 0.1], "frame_index": 4, "t_s": 4.0},
        {"text": "A1", "frame_index": 3, "t_s": 3.0},
    ]})
    media = Media(info=MediaInfo(media_type="image", source="generated", format="png", sha256="0" * 64, size_bytes=1))
    output = text_analyzer.analyze(media, AnalysisContext(settings=settings, outputs={"ocr": ocr}))
    robbery = [d for d in output.detections if d.label == "text:robbery"]
    assert len(robbery) == 1 and robbery[0].modality == "visual"
    assert robbery[0].box_xywh_norm == (0.1, 0.2, 0.5, 0.1) and robbery[0].frame_index == 3
    assert (robbery[0].t_start_s, robbery[0].t_end_s) == (3.0, 4.0)
    assert len(output.data["items"]) == 1, "repeated and letter-less texts are merged or skipped"


def test_no_text_means_no_model(settings):
    fresh = ModelRegistry()
    output = TextAnalyzer(settings, fresh).analyze(audio_media(np.zeros(SR, np.float32)),
                                                   AnalysisContext(settings=settings))
    assert output.detections == [] and output.data == {"items": []}
    assert "minilm" not in fresh.loaded()
