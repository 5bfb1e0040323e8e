"""YOLOv3-tiny objects and embeddings, the objects analyzer and the motion gate, on real images and generated video."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image
from skimage import data

from mediagen import still_room, write_video
from watchkeeper.analyzers.base import AnalysisContext
from watchkeeper.analyzers.gate import GateAnalyzer
from watchkeeper.analyzers.objects import ObjectsAnalyzer, ObjectsOutput
from watchkeeper.config import Settings
from watchkeeper.errors import ConfigError, MediaError
from watchkeeper.media import load_media
from watchkeeper.models.registry import ModelRegistry
from watchkeeper.models.yolo import EMBEDDING_DIM, YoloV3Tiny


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry()


@pytest.fixture(scope="module")
def model(registry) -> YoloV3Tiny:
    return registry.get("yolov3-tiny")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="module")
def objects(settings, registry) -> ObjectsAnalyzer:
    return ObjectsAnalyzer(settings, registry)


def grace_hopper_path():
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        return handle.name


def analyze_image(objects: ObjectsAnalyzer, path) -> ObjectsOutput:
    media = load_media(path)
    return objects.analyze(media, AnalysisContext(objects.settings))


def labels(output: ObjectsOutput) -> list[str]:
    return [d.label for d in output.detections]


def test_finds_the_astronaut(objects, tmp_path):
    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    out = analyze_image(objects, path)
    person = [d for d in out.detections if d.label == "person"]
    assert person and person[0].score > 0.5
    x, y, w, h = person[0].box_xywh_norm
    # She fills the left two thirds of the picture.
    assert x < 0.2 and w > 0.5 and h > 0.7
    assert person[0].frame_index == 0 and person[0].modality == "visual" and person[0].model_id == "yolov3-tiny"


def test_finds_grace_hopper(objects):
    out = analyze_image(objects, grace_hopper_path())
    assert "person" in labels(out)
    frame = out.data["frames"][0]
    assert frame["index"] == 0 and frame["t_s"] == 0.0
    assert {o["label"] for o in frame["objects"]} == set(labels(out))


def test_cat_is_a_cat_not_a_person(model, objects, tmp_path):
    found = model.detect([data.chelsea()], zoom_out=True)[0]
    assert "cat" in [o.label for o in found.objects]
    assert "person" not in [o.label for o in found.objects]
    # Cats are not among the classes the analyzer reports by default.
    path = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(path)
    assert labels(analyze_image(objects, path)) == []


def test_empty_room_has_no_person(objects, tmp_path):
    path = tmp_path / "room.png"
    Image.fromarray(still_room(640, 480)).save(path)
    assert "person" not in labels(analyze_image(objects, path))


def test_close_ups_need_the_zoomed_out_pass(model):
    """YOLOv3-tiny misses a subject that fills the frame; the zoomed-out pass finds and maps it back."""
    plain = model.detect([data.astronaut()])[0]
    zoomed = model.detect([data.astronaut()], zoom_out=True)[0]
    assert "person" not in [o.label for o in plain.objects]
    person = next(o for o in zoomed.objects if o.label == "person")
    assert all(0.0 <= v <= 1.0 for v in person.box_xywh_norm)
    assert np.array_equal(plain.embedding, zoomed.embedding)


def test_embedding_is_a_deterministic_1024_vector(model):
    before = model.forward_passes
    first, cat = model.detect([data.astronaut(), data.chelsea()])
    again = model.detect([data.astronaut()])[0]
    assert first.embedding.shape == (EMBEDDING_DIM,) and first.embedding.dtype == np.float32
    assert np.array_equal(first.embedding, again.embedding)
    assert not np.allclose(first.embedding, cat.embedding)
    assert model.forward_passes == before + 3


def test_batched_passes_match_single_ones(model):
    images = [data.astronaut(), data.coffee()]
    single = model.detect(images, batch_size=1)
    batched = model.detect(images, batch_size=2)
    for a, b in zip(single, batched):
        assert np.allclose(a.embedding, b.embedding, atol=1e-4)
        assert [o.label for o in a.objects] == [o.label for o in b.objects]


def test_passes_of_other_outputs_agree(model):
    """Each set of outputs asked for has its own session (running only the layers it needs): the feature maps of
    a feature-only pass are those of a whole-network pass."""
    image = cv2.resize(data.coffee(), (384, 256))
    for _ in range(2):
        maps, _ = model.feature_maps_and_objects(image, [10])
        assert np.allclose(model.feature_maps(image, [10])[0], maps[0], atol=1e-4)


def test_objects_found_at_the_images_own_shape_match_the_square_pass(model):
    """``feature_maps_and_objects`` decodes its boxes as ``detect`` does: on a 416-pixel square they agree."""
    image = np.ascontiguousarray(cv2.resize(data.astronaut(), (416, 416)))
    zoomed = np.full((416, 416, 3), 114, np.uint8)
    zoomed[104:312, 104:312] = cv2.resize(image, (208, 208))  # small enough for YOLOv3-tiny to find
    [maps], objects = model.feature_maps_and_objects(zoomed, [10])
    square = model.detect([zoomed])[0].objects
    assert maps.shape == (512, 13, 13)
    assert "person" in [o.label for o in objects]
    assert [(o.label, o.box_xywh_norm) for o in objects] == [(o.label, o.box_xywh_norm) for o in square]


def test_embeddings_stay_out_of_the_json(objects, tmp_path):
    path = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(path)
    out = analyze_image(objects, path)
    assert out.embeddings.shape == (1, EMBEDDING_DIM)
    assert len(json.dumps(out.data)) < 2000


def test_bad_input_is_a_media_error(model):
    with pytest.raises(MediaError):
        model.detect([np.zeros((64, 64), np.uint8)])


def test_unknown_label_setting_is_a_config_error(registry):
    settings = Settings()
    settings.analyzers.objects.labels = ["person", "lightsaber"]
    with pytest.raises(ConfigError, match="lightsaber"):
        ObjectsAnalyzer(settings, registry)


def test_motion_gate_reuses_objects_on_still_frames(settings, registry, model, objects, tmp_path):
    scene = still_room(640, 480)
    scene[200:440, 420:560] = cv2.resize(data.astronaut(), (140, 240))  # someone standing still by the door
    path = write_video(tmp_path / "standing.mp4", [scene] * 60, fps=15)
    media = load_media(path)
    assert len(media.frames) == 4
    context = AnalysisContext(settings)
    context.outputs["gate"] = GateAnalyzer(settings, registry).analyze(media, context)
    assert context.outputs["gate"].data["still_frames"] == [1, 2, 3]

    before = model.images_processed
    out = objects.analyze(media, context)
    assert model.images_processed == before + 1
    frames = out.data["frames"]
    assert [f["reused"] for f in frames] == [False, True, True, True]
    assert all(f["objects"] == frames[0]["objects"] for f in frames)
    people = [d for d in out.detections if d.label == "person"]
    assert [d.frame_index for d in people] == [f.index for f in media.frames]
    assert [d.t_start_s for d in people] == [f.t_s for f in media.frames]
    assert np.array_equal(out.embeddings[3], out.embeddings[0])

    # Without the motion analyzer every frame runs.
    before = model.images_processed
    objects.analyze(media, AnalysisContext(settings))
    assert model.images_processed == before + 4
