"""Learned heads: file format and validation, data sets, training rules, and heads in the analysis path.

Two small real extractors live here (the CLI tests import this module by
name through ``analyzers.heads.extractor_modules``): frame brightness and
motion for video, and spectral texture for audio.
"""

import json
import shutil

import numpy as np
import pytest

from mediagen import SR, noise, still_room, tone, write_audio, write_video
from watchkeeper.analyzers.heads import on_category_scale, windows
from watchkeeper.config import Settings
from watchkeeper.errors import ConfigError, ModelError, ModelIntegrityError, ModelUnavailableError
from watchkeeper.heads import FeatureExtractor, Head, load_heads, register_extractor
from watchkeeper.heads.dataset import load_dataset
from watchkeeper.heads.training import (
    TrainOptions, choose_threshold, sample_weights, train_head, training_settings,
)


@register_extractor
class FrameMotion(FeatureExtractor):
    """Brightness of the window's sampled frames, grey change between its motion frames, the gate's still share."""

    name = "test_frame_motion"
    version = "1"
    media_types = frozenset({"image", "video"})
    requires = ("gate",)
    window_s = 1.0

    def extract(self, media, outputs, t_start_s, t_end_s):
        inside = [i for i, f in enumerate(media.frames) if t_start_s <= f.t_s < t_end_s] or [0]
        grey = np.stack([media.frames[i].rgb.mean(axis=2) for i in inside])
        gate = outputs.get("gate")
        still = set(gate.data["still_frames"]) if gate else set()
        change = 0.0
        if media.motion is not None:
            near = (media.motion.times_s >= t_start_s) & (media.motion.times_s <= t_end_s)
            small = media.motion.gray[near].astype(np.float32)
            change = float(np.abs(np.diff(small, axis=0)).mean()) if len(small) > 1 else 0.0
        return np.array([grey.mean() / 255, grey.std() / 255, change, np.mean([i in still for i in inside])],
                        np.float32)


@register_extractor
class AudioTexture(FeatureExtractor):
    """Loudness, spectral flatness, spectral centroid and zero-crossing rate of the window's samples."""

    name = "test_audio_texture"
    version = "1"
    media_types = frozenset({"audio", "video"})
    modality = "audio"
    window_s = 1.0

    def extract(self, media, outputs, t_start_s, t_end_s):
        first = int((t_start_s - media.t_start_s) * SR)
        samples = media.audio[first:max(first + 1, int((t_end_s - media.t_start_s) * SR))].astype(np.float64)
        power = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2 + 1e-12
        freqs = np.fft.rfftfreq(len(samples), 1 / SR)
        flatness = np.exp(np.mean(np.log(power))) / np.mean(power)
        centroid = float((freqs * power).sum() / power.sum())
        crossings = float(np.mean(np.abs(np.diff(np.sign(samples))) > 0))
        return np.array([np.log10(np.sqrt(np.mean(samples**2)) + 1e-6), flatness, centroid / 8000, crossings],
                        np.float32)


CATEGORY = {"id": "test_motion", "name": "Test motion", "description": "A square slides across an empty room."}


def moving_square(seed: int, moving: bool, seconds: float = 3.0, fps: int = 10) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    room = still_room(seed=seed)
    x0, y0, speed = rng.integers(10, 60), rng.integers(40, 150), rng.uniform(40, 80)
    frames = []
    for i in range(int(seconds * fps)):
        frame = room.copy()
        x = int(x0 + (speed * i / fps if moving else 0)) % 280
        frame[y0:y0 + 40, x:x + 40] = (240, 240, 240)
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def video_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("video-set")
    for label, moving in (("moving", True), ("still", False)):
        (root / label).mkdir()
        for seed in range(6):
            write_video(root / label / f"{label}{seed}.mp4", moving_square(seed + 10 * moving, moving), fps=10)
    return root


def settings_for(tmp_path, **heads):
    return Settings(data_dir=tmp_path / "data", categories=[CATEGORY], cache={"enabled": False},
                    analyzers={"heads": {"builtin": False, **heads}})


@pytest.fixture(scope="module")
def video_head(video_set, tmp_path_factory):
    folder = tmp_path_factory.mktemp("video-head")
    settings = settings_for(folder)
    dataset = load_dataset(video_set, ["moving"])
    report = train_head(dataset, settings, TrainOptions(category="test_motion", extractor="test_frame_motion",
                                                        folds=3, workers=1, use_cache=False))
    return report, report.head.save(folder / "motion.head.json")


# -- windows and scales ------------------------------------------------------------------------
def test_windows_are_full_length_at_half_hops_and_end_at_the_end():
    assert windows(0.0, 4.0, 1.0) == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0), (1.5, 2.5), (2.0, 3.0), (2.5, 3.5),
                                      (3.0, 4.0)]
    assert windows(0.0, 4.2, 2.0)[-1] == (2.2, 4.2) and len(windows(0.0, 4.2, 2.0)) == 4
    assert windows(60.0, 61.5, 2.0) == [(60.0, 61.5)]  # shorter than a window: one window
    assert windows(0.0, 9.0, None) == [(0.0, 9.0)]
    assert windows(60.0, 63.0, 2.0) == [(60.0, 62.0), (61.0, 63.0)]  # a chunk keeps absolute times


def test_camera_scale_maps_the_head_threshold_onto_the_category_threshold():
    assert on_category_scale(0.8, 0.8, 0.5) == pytest.approx(0.5)
    assert on_category_scale(0.4, 0.8, 0.5) == pytest.approx(0.25)
    assert on_category_scale(0.9, 0.8, 0.5) == pytest.approx(0.75)
    assert on_category_scale(1.0, 0.8, 0.5) == pytest.approx(1.0)


# -- training rules ----------------------------------------------------------------------------
def test_threshold_rule_allows_at_most_the_target_share_of_negative_files():
    negatives = np.linspace(0.0, 0.5, 100)  # highest 0.5, 0.4949...
    positives = np.array([0.45, 0.7, 0.9])
    scores = np.concatenate([negatives, positives])
    labels = np.concatenate([np.zeros(100), np.ones(3)])
    threshold, far, recall = choose_threshold(scores, labels, 0.01)  # one negative file may pass
    assert negatives[-2] < threshold <= negatives[-1] and far == 0.01
    assert recall == pytest.approx(2 / 3)
    threshold, far, recall = choose_threshold(scores, labels, 0.001)  # none may pass: halfway to the next score
    assert threshold == pytest.approx(0.6) and far == 0 and recall == pytest.approx(2 / 3)


def test_every_file_and_both_classes_weigh_the_same():
    labels = np.array([1, 1, 1, 1, 0, 0, 0])
    files = np.array([0, 0, 0, 1, 2, 3, 4])
    weights = sample_weights(labels, files)
    assert weights[:3].sum() == pytest.approx(weights[3])
    assert weights[labels == 1].sum() == pytest.approx(weights[labels == 0].sum())


def test_training_settings_enable_only_what_the_extractor_reads():
    trained = training_settings(Settings(), FrameMotion, 1.0)
    enabled = {name for name, section in trained.analyzers if getattr(section, "enabled", False)}
    assert enabled == {"gate", "heads"}
    assert trained.analyzers.heads.capture.extractor == "test_frame_motion"
    assert not trained.analyzers.heads.builtin


# -- data sets ---------------------------------------------------------------------------------
@pytest.fixture
def audio_set(tmp_path):
    for label, make in (("tone", lambda i: tone(400 + 50 * i, 1.0)), ("noise", lambda i: noise(1.0, seed=i))):
        (tmp_path / "set" / label).mkdir(parents=True)
        for i in range(3):
            write_audio(tmp_path / "set" / label / f"{label}{i}.wav", make(i))
    return tmp_path / "set"


def test_duplicates_are_refused_or_dropped(audio_set):
    shutil.copy(audio_set / "tone" / "tone0.wav", audio_set / "tone" / "again.wav")
    shutil.copy(audio_set / "noise" / "noise1.wav", audio_set / "tone" / "mislabelled.wav")
    with pytest.raises(ConfigError, match="2 set") as refused:
        load_dataset(audio_set, ["tone"])
    assert "tone/again.wav = tone/tone0.wav" in str(refused.value) and "mislabelled.wav" in str(refused.value)
    dataset = load_dataset(audio_set, ["tone"], duplicates="drop")
    names = sorted(s.path.name for s in dataset.samples)
    # Same class: the first copy by path stays; copies on both sides: every copy goes.
    assert names == ["again.wav", "noise0.wav", "noise2.wav", "tone1.wav", "tone2.wav"]
    assert {d.name for d, _ in dataset.dropped_duplicates} == {"tone0.wav", "mislabelled.wav", "noise1.wav"}


def test_groups_from_a_file_a_pattern_or_the_content(audio_set, tmp_path):
    plain = load_dataset(audio_set, ["tone"])
    assert len({s.group for s in plain.samples}) == 6 and all(s.media_type == "audio" for s in plain.samples)
    assert {s.label for s in plain.samples if s.positive} == {"tone"} and plain.negative_labels == ["noise"]
    groups = tmp_path / "groups.tsv"
    groups.write_text("path\tgroup\ntone/tone0.wav\tsession-a\ntone/tone1.wav\tsession-a\nnoise/gone.wav\tx\n")
    grouped = load_dataset(audio_set, ["tone"], group_file=groups)
    by_name = {s.path.name: s.group for s in grouped.samples}
    assert by_name["tone0.wav"] == by_name["tone1.wav"] != by_name["tone2.wav"]
    patterned = load_dataset(audio_set, ["tone"], group_pattern=r"^([a-z]+)")
    assert len({s.group for s in patterned.samples}) == 2


def test_unusable_data_sets_are_config_errors(audio_set):
    with pytest.raises(ConfigError, match="no folder for positive label"):
        load_dataset(audio_set, ["siren"])
    with pytest.raises(ConfigError, match="every label is positive"):
        load_dataset(audio_set, ["tone", "noise"])
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        load_dataset(audio_set, ["tone"], group_pattern="(")


# -- head files --------------------------------------------------------------------------------
def test_trained_head_file_and_card(video_head):
    _, path = video_head
    data = json.loads(path.read_text())
    assert data["format"] == "watchkeeper-head" and data["extractor"] == {"name": "test_frame_motion", "version": "1"}
    assert data["feature_dim"] == 4 and data["window_s"] == 1.0 and data["media_types"] == ["video"]
    card = data["card"]
    assert card["data"]["positive_files"] == 6 and card["data"]["negative_files"] == 6
    assert card["data"]["positive_windows"] >= 6 * 4  # 3 s clips: 5 windows each
    assert card["cross_validation"]["folds"] == 3 and len(card["cross_validation"]["file_roc_auc"]["folds"]) == 3
    assert card["cross_validation"]["file_roc_auc"]["mean"] >= 0.9
    assert card["threshold"]["value"] == data["threshold"] and "floor(target" in card["threshold"]["rule"]
    head = Head.load(path)
    assert head.predict_proba(np.zeros((3, 4))).shape == (3,)


def test_version_mismatch_and_broken_files_are_refused(video_head, tmp_path):
    _, path = video_head
    data = json.loads(path.read_text())
    bad = tmp_path / "old.json"
    bad.write_text(json.dumps({**data, "extractor": {"name": "test_frame_motion", "version": "0"}}))
    with pytest.raises(ModelIntegrityError, match="version 0, but version 1 is installed"):
        Head.load(bad)
    bad.write_text(json.dumps({**data, "extractor": {"name": "no_such_features", "version": "1"}}))
    with pytest.raises(ModelUnavailableError, match="'no_such_features' is not installed"):
        Head.load(bad)
    bad.write_text(json.dumps({**data, "model": {**data["model"], "coef": [1.0]}}))
    with pytest.raises(ModelError, match="model.coef has 1 values; feature_dim is 4"):
        Head.load(bad)
    bad.write_text(json.dumps({k: v for k, v in data.items() if k != "threshold"}))
    with pytest.raises(ModelError, match="threshold: Field required"):
        Head.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        Head.load(bad)
    with pytest.raises(ModelUnavailableError, match="cannot read"):
        Head.load(tmp_path / "missing.json")


def test_head_sets_refuse_two_heads_for_one_category_and_unknown_categories(video_head, tmp_path):
    _, path = video_head
    with pytest.raises(ConfigError, match="two heads for category 'test_motion'"):
        load_heads(settings_for(tmp_path, files=[path, path]))
    with pytest.raises(ConfigError, match="unknown category 'test_motion'"):
        load_heads(Settings(analyzers={"heads": {"builtin": False, "files": [path]}}))


# -- heads in the analysis path ----------------------------------------------------------------
@pytest.fixture(scope="module")
def analysed(video_head, tmp_path_factory):
    """Fresh clips through the whole pipeline with the head, site-wide and as a stricter camera head."""
    from watchkeeper import Pipeline

    _, path = video_head
    folder = tmp_path_factory.mktemp("analysed")
    pipeline = Pipeline(settings_for(folder, files=[path]))
    moving = write_video(folder / "moving.mp4", moving_square(99, True), fps=10)
    still = write_video(folder / "still.mp4", moving_square(98, False), fps=10)
    results = {"moving": pipeline.analyze(moving), "still": pipeline.analyze(still)}
    # A camera head that no window of the moving clip reaches.
    best = max(w[2] for w in results["moving"].outputs["heads"]["heads"][0]["windows"])
    strict = Head.load(path).model_copy(update={"threshold": (1 + best) / 2}).save(folder / "strict.json")
    with_camera = Pipeline(settings_for(folder, files=[path], cameras={"gate-cam": [strict]}), models=pipeline.models)
    results["moving_strict"] = with_camera.analyze(moving, camera="gate-cam")
    results["moving_other_camera"] = with_camera.analyze(moving, camera="lobby")
    return pipeline, results


def test_head_decides_at_its_card_threshold_on_the_category_scale(analysed, video_head):
    pipeline, results = analysed
    head = video_head[0].head
    head_threshold = head.threshold
    category_threshold = pipeline.fusion.rules.thresholds["test_motion"]
    detections = [d for key in ("moving", "still") for d in results[key].detections if d.label == "head:test_motion"]
    assert detections
    for det in detections:
        probability = det.attributes["probability"]
        assert det.score == pytest.approx(on_category_scale(probability, head_threshold, category_threshold), abs=1e-3)
        if abs(probability - head_threshold) > 1e-3:
            assert (probability > head_threshold) == (det.score > category_threshold)
    overridden = settings_for(video_head[1].parent, files=[video_head[1]])
    overridden.fusion.thresholds = {"test_motion": 0.7}
    from watchkeeper import Pipeline

    assert Pipeline(overridden).fusion.rules.thresholds["test_motion"] == pytest.approx(0.7)


def test_a_moving_clip_gets_the_heads_incident_and_a_still_one_does_not(analysed):
    pipeline, results = analysed
    assert next(a for a in pipeline.analyzers if a.name == "heads").requires == ("gate",)
    moving, still = results["moving"], results["still"]
    heads = [d for d in moving.detections if d.label == "head:test_motion"]
    assert heads and all(d.analyzer == "heads" and d.modality == "visual" for d in heads)
    assert heads[0].attributes["head"] == "test_motion-test_frame_motion"
    assert max(d.t_end_s - d.t_start_s for d in heads) == pytest.approx(1.0)
    incident = next(i for i in moving.incidents if i.category == "test_motion")
    assert "the learned test motion detector" in incident.summary.lower()
    assert moving.outputs["heads"]["heads"][0]["windows"]  # every window's probability is recorded
    assert not any(i.category == "test_motion" for i in still.incidents)
    assert still.scores["test_motion"] < moving.scores["test_motion"]


def test_a_cameras_own_head_decides_at_its_own_threshold(analysed):
    _, results = analysed
    strict = results["moving_strict"]
    record = strict.outputs["heads"]["heads"][0]
    assert record["camera_head"] and record["threshold"] > max(w[2] for w in record["windows"])
    assert not any(i.category == "test_motion" for i in strict.incidents)
    # Its scores sit on the category's scale: below the category threshold, the raw probability kept beside.
    evidence = [d for d in strict.detections if d.label == "head:test_motion"]
    assert evidence and all(d.score < d.attributes["probability"] for d in evidence)
    assert any(i.category == "test_motion" for i in results["moving_other_camera"].incidents)


def test_a_still_window_is_no_fight_whoever_stands_in_it(tmp_path, pipeline):
    """The assault head is a linear model on motion: where nothing moves it is not asked (it would extrapolate)."""
    from skimage import data as skdata

    person = np.ascontiguousarray(skdata.astronaut()[::2, ::2])  # a close-up person, perfectly still
    clip = write_video(tmp_path / "still-person.mp4", (person for _ in range(4 * 15)), fps=15)
    result = pipeline.analyze(clip)
    windows = next(h for h in result.outputs["heads"]["heads"] if h["category"] == "assault")["windows"]
    assert windows and all(p == 0.0 for _, _, p in windows)
    assert result.scores["assault"] == 0.0
