"""Feature extractors for learned heads, on the real analyzers' outputs for generated media and sample photos."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from matplotlib import colormaps
from mediagen import SR, noise, still_room, write_audio, write_video
from PIL import Image
from skimage import data

from watchkeeper.analyzers.audio_events import AudioEventsAnalyzer
from watchkeeper.analyzers.base import ANALYZERS, AnalysisContext
from watchkeeper.analyzers.gate import GateAnalyzer
from watchkeeper.analyzers.motion import PAIR_FEATURES, MotionAnalyzer
from watchkeeper.analyzers.objects import ObjectsAnalyzer
from watchkeeper.config import Settings
from watchkeeper.errors import AnalysisError
from watchkeeper.heads import EXTRACTORS, load_extractors
from watchkeeper.heads.extractors.flow import FLOW_DIM, pool_pairs
from watchkeeper.heads.extractors.windows import pairs_in_window, samples_in_window
from watchkeeper.media import load_media
from watchkeeper.models.registry import ModelRegistry
from watchkeeper.samples import siren

FPS = 15
SECONDS = 6
CALM_UNTIL_S = 3.0
DIMS = {"flow": 76, "flow_people": 90, "yolo_embedding": 1024, "fire_colour": 88, "fire_scene": 1112,
        "yamnet_embedding": 2048}


@pytest.fixture(scope="module")
def extractors():
    """The packaged extractors (other tests may register their own beside them)."""
    return {name: cls() for name, cls in load_extractors().items()
            if cls.__module__.startswith("watchkeeper.heads.extractors.")}


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry()


def analyse(media, registry):
    """The analyzers the extractors read, in the pipeline's order."""
    settings = Settings()
    context = AnalysisContext(settings)
    for cls in (GateAnalyzer, MotionAnalyzer, ObjectsAnalyzer, AudioEventsAnalyzer):
        analyzer = cls(settings, registry)
        if analyzer.applies_to(media):
            context.outputs[analyzer.name] = analyzer.analyze(media, context)
    return context.outputs


def calm_then_scuffle(i: int, rng: np.random.Generator) -> np.ndarray:
    """An empty room for 3 s; then a person (the astronaut photo) jerking about beside a block jumping around."""
    frame = still_room(320, 240)
    if i / FPS >= CALM_UNTIL_S:
        person = cv2.resize(data.astronaut(), (110, 110))
        x, y = 100 + int(rng.integers(-25, 26)), 60 + int(rng.integers(-20, 21))
        frame[y:y + 110, x:x + 110] = person
        bx, by = int(rng.integers(0, 260)), int(rng.integers(0, 180))
        cv2.rectangle(frame, (bx, by), (bx + 60, by + 60), (20, 40, 200), -1)
    return frame


@pytest.fixture(scope="module")
def video(tmp_path_factory, registry):
    """(media, outputs) of a 6 s video: calm and quiet, then a scuffle with a siren."""
    rng = np.random.default_rng(5)
    frames = [calm_then_scuffle(i, rng) for i in range(SECONDS * FPS)]
    half = int(CALM_UNTIL_S * SR)
    audio = np.concatenate([noise(CALM_UNTIL_S, amplitude=0.003), siren(SECONDS - CALM_UNTIL_S)])
    path = write_video(tmp_path_factory.mktemp("video") / "scuffle.mp4", frames, fps=FPS, audio=audio)
    media = load_media(path)
    assert media.audio is not None and len(media.audio) > half
    return media, analyse(media, registry)


@pytest.fixture(scope="module")
def image(tmp_path_factory, registry):
    path = tmp_path_factory.mktemp("image") / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(path)
    media = load_media(path)
    return media, analyse(media, registry)


@pytest.fixture(scope="module")
def sound(tmp_path_factory, registry):
    audio = np.concatenate([noise(2.0, amplitude=0.003), siren(3.0)])
    media = load_media(write_audio(tmp_path_factory.mktemp("audio") / "siren.wav", audio))
    return media, analyse(media, registry)


def applicable(extractors, media_type):
    return {name: e for name, e in extractors.items() if media_type in e.media_types}


def test_every_extractor_is_registered_with_a_version_and_its_analyzers(extractors):
    assert set(extractors) == set(DIMS) and set(DIMS) <= set(EXTRACTORS)
    for name, extractor in extractors.items():
        assert extractor.name == name
        assert isinstance(extractor.version, str) and extractor.version.startswith(name)
        assert extractor.media_types and extractor.media_types <= {"image", "audio", "video"}
        assert extractor.window_s is None or extractor.window_s > 0
        assert extractor.modality in ("visual", "audio")
        for analyzer in extractor.requires:
            __import__(f"watchkeeper.analyzers.{analyzer}")
            assert analyzer in ANALYZERS
    assert extractors["yamnet_embedding"].modality == "audio"
    assert extractors["flow"].version != extractors["flow_people"].version


@pytest.mark.parametrize("fixture", ["video", "image", "sound"])
def test_fixed_length_finite_float32_vectors_for_any_window(fixture, extractors, request):
    media, outputs = request.getfixturevalue(fixture)
    spans = [(0.0, media.t_end_s), (0.0, 2.0), (1.0, 3.0), (2.2, 2.4), (media.t_end_s - 2, media.t_end_s)]
    found = applicable(extractors, media.info.media_type)
    assert found
    for name, extractor in found.items():
        for t0, t1 in spans:
            vector = extractor.extract(media, outputs, t0, t1)
            assert vector.dtype == np.float32 and vector.shape == (DIMS[name],), (name, t0, t1)
            assert np.isfinite(vector).all(), (name, t0, t1)


@pytest.mark.parametrize("fixture", ["video", "image", "sound"])
def test_windows_extracted_together_equal_windows_extracted_alone(fixture, extractors, request):
    media, outputs = request.getfixturevalue(fixture)
    spans = [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (media.t_end_s - 2, media.t_end_s)]
    for name, extractor in applicable(extractors, media.info.media_type).items():
        together = extractor.extract_windows(media, outputs, spans)
        for (t0, t1), vector in zip(spans, together, strict=True):
            assert np.array_equal(vector, extractor.extract(media, outputs, t0, t1)), (name, t0, t1)


def test_extraction_is_deterministic(video, extractors, registry):
    media, outputs = video
    again = analyse(media, registry)
    for name, extractor in applicable(extractors, "video").items():
        first = extractor.extract(media, outputs, 2.0, 4.0)
        assert np.array_equal(first, extractor.extract(media, outputs, 2.0, 4.0)), name
        assert np.array_equal(first, extractor.extract(media, again, 2.0, 4.0)), name


def test_motion_keeps_one_descriptor_per_frame_pair(video):
    media, outputs = video
    pairs = outputs["motion"].pairs
    assert len(pairs.times_s) == len(media.motion.times_s) - 1
    assert pairs.features.shape == (len(pairs.times_s), len(PAIR_FEATURES))
    assert pairs.speed_grid.shape == pairs.accel_grid.shape == (len(pairs.times_s), *outputs["motion"].direction_grid.shape[1:3])
    calm = pairs.times_s <= CALM_UNTIL_S - 0.2
    speed = pairs.features[:, PAIR_FEATURES.index("speed_p99")]
    assert speed[calm].max() < 0.01 < speed[~calm].mean()


def test_window_boundaries_decide_which_samples_count():
    times = np.array([0.0, 1.0, 2.0, 3.0])
    assert samples_in_window(times, 1.0, 3.0).tolist() == [1, 2]  # [start, end)
    assert samples_in_window(times, 1.2, 1.4).tolist() == [1]  # none inside: the nearest to the middle
    assert samples_in_window(np.zeros(0), 0.0, 1.0).tolist() == []
    assert pairs_in_window(times, 1.0, 3.0).tolist() == [2, 3]  # pairs ending in (start, end]


def test_flow_reads_only_the_pairs_inside_its_window(video, extractors):
    media, outputs = video
    motion = outputs["motion"]
    inside = pairs_in_window(motion.pairs.times_s, 1.0, 3.0)
    disturbed = motion.pairs.features.copy()
    disturbed[np.setdiff1d(np.arange(len(disturbed)), inside)] = 5.0
    tampered = {**outputs, "motion": dataclasses.replace(
        motion, pairs=dataclasses.replace(motion.pairs, features=disturbed))}
    for name in ("flow", "flow_people"):
        extractor = extractors[name]
        assert np.array_equal(extractor.extract(media, outputs, 1.0, 3.0), extractor.extract(media, tampered, 1.0, 3.0))
        assert not np.array_equal(extractor.extract(media, outputs, 3.0, 5.0),
                                  extractor.extract(media, tampered, 3.0, 5.0))
    assert np.array_equal(extractors["flow"].extract(media, outputs, 1.0, 3.0), pool_pairs(motion.pairs.features[inside]))


def test_calm_and_scuffle_windows_differ_where_they_should(video, extractors):
    media, outputs = video
    calm = extractors["flow_people"].extract(media, outputs, 0.5, 2.5)
    scuffle = extractors["flow_people"].extract(media, outputs, 3.5, 5.5)
    speed_mean = 1  # log of the mean speed over the window's pairs
    assert scuffle[speed_mean] > calm[speed_mean] + 2
    people = scuffle[FLOW_DIM:]
    assert people[0] > 0 and calm[FLOW_DIM] == 0  # log1p(mean person count): the astronaut, then nobody
    assert people[6] > np.log(0.01)  # mean of the fastest flow in the person boxes


def test_yolo_embedding_is_the_objects_analyzer_embedding(video, image, extractors):
    media, outputs = image
    assert np.array_equal(extractors["yolo_embedding"].extract(media, outputs, 0.0, 0.0), outputs["objects"].embeddings[0])
    media, outputs = video
    times = np.array([f["t_s"] for f in outputs["objects"].data["frames"]])
    rows = (times >= 3.0) & (times < 5.0)
    expected = outputs["objects"].embeddings[rows].mean(axis=0)
    assert np.allclose(extractors["yolo_embedding"].extract(media, outputs, 3.0, 5.0), expected)


def test_fire_colour_sees_fire_colours_and_no_flicker_on_images(extractors, tmp_path):
    room = still_room(320, 240)
    y, x = np.mgrid[0:240, 0:320].astype(np.float32)
    heat = np.clip(1 - np.hypot((x - 160) / 50, (y - 170) / 70), 0, 1)[..., None]  # a blob of flame on the floor
    colours = colormaps["afmhot"](0.35 + 0.65 * heat[..., 0])[..., :3] * 255
    flame = (room * (1 - np.minimum(heat * 3, 1)) + colours * np.minimum(heat * 3, 1)).astype(np.uint8)
    vectors = []
    for name, rgb in (("room", room), ("flame", flame)):
        Image.fromarray(rgb).save(tmp_path / f"{name}.png")
        vectors.append(extractors["fire_colour"].extract(load_media(tmp_path / f"{name}.png"), {}, 0, 0))
    plain, hot = vectors
    fire_share = 0  # the fire analyzer's sqrt(fire-pixel ratio) comes first
    assert hot[fire_share] > 0.2 and plain[fire_share] == 0
    assert hot[-2:].tolist() == plain[-2:].tolist() == [0.0, 0.0]  # no flicker without motion frames


def test_yamnet_embedding_pools_the_windows_centred_inside(sound, extractors):
    media, outputs = sound
    events = outputs["audio_events"]
    vector = extractors["yamnet_embedding"].extract(media, outputs, 2.0, 4.0)
    centres = events.window_times_s + 0.48
    rows = events.embeddings[(centres >= 2.0) & (centres < 4.0)]
    assert np.allclose(vector[:1024], rows.mean(axis=0)) and np.allclose(vector[1024:], rows.max(axis=0))
    quiet = extractors["yamnet_embedding"].extract(media, outputs, 0.0, 2.0)
    assert not np.allclose(quiet, vector)


def test_missing_analyzer_output_is_a_typed_error(video, sound, extractors):
    media, outputs = video
    for name in ("flow", "flow_people", "yolo_embedding", "fire_scene", "yamnet_embedding"):
        with pytest.raises(AnalysisError, match=name):
            extractors[name].extract(media, {}, 0.0, 2.0)
    silent = dataclasses.replace(media, audio=None)
    with pytest.raises(AnalysisError, match="sound track"):
        extractors["yamnet_embedding"].extract(silent, outputs, 0.0, 2.0)
