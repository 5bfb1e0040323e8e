"""Motion, fire/smoke and crowd analyzers on generated videos, drawn frames and real photos."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image
from skimage import data

from mediagen import still_room, write_video
from watchkeeper.analyzers.base import AnalysisContext, AnalyzerOutput
from watchkeeper.analyzers.crowd import CrowdAnalyzer
from watchkeeper.analyzers.fire import FireAnalyzer, colour_analysis, colour_head
from watchkeeper.analyzers.motion import MotionAnalyzer
from watchkeeper.analyzers.gate import GateAnalyzer
from watchkeeper.analyzers.objects import ObjectsAnalyzer
from watchkeeper.config import Settings
from watchkeeper.domain import Media
from watchkeeper.media import load_media
from watchkeeper.models.registry import ModelRegistry

FPS = 15


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """The generated videos, decoded once."""
    folder = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(7)
    clips = {
        "still": [still_room(320, 240, seed=i) for i in range(4 * FPS)],
        "jumping": [jumping_shape(i, rng) for i in range(4 * FPS)],
        "flame": [flame(still_room(320, 240), rng) for _ in range(4 * FPS)],
        "static_flame": [flame(still_room(320, 240), np.random.default_rng(3))] * (4 * FPS),
        "smoke": smoke(6 * FPS),
        "scatter": scattering_people(5 * FPS),
    }
    return {name: load_media(write_video(folder / f"{name}.mp4", frames, fps=FPS),
                             frame_interval_s=0.5 if name == "scatter" else None)
            for name, frames in clips.items()}


def jumping_shape(i: int, rng: np.random.Generator) -> np.ndarray:
    """A still room until just after 2 s, then a big block jumping to a random place every frame."""
    frame = still_room(320, 240)
    if i > 2 * FPS:
        x, y = rng.integers(0, 220), rng.integers(0, 140)
        cv2.rectangle(frame, (int(x), int(y)), (int(x) + 100, int(y) + 100), (20, 40, 200), -1)
    return frame


def flame(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A procedural flame on the floor: a turbulent heat field (hottest low on the axis) through a fire colour map.

    Each call draws new turbulence, sway and height, so consecutive frames flicker.
    """
    h, w = frame.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base, height, half_width = h * 0.92, h * 0.6 * (1 + 0.1 * rng.standard_normal()), w * 0.14
    up = np.clip((base - y) / height, 0, 1)  # 0 at the base, 1 at the tip
    turbulence = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 6) * 12
    sway = cv2.GaussianBlur(rng.standard_normal((h, 1)).astype(np.float32), (0, 0), 10) * 25
    across = np.abs(x - w / 2 - sway * up) / (half_width * (1 - 0.8 * up))
    heat = np.clip((1 - across) * (1 - up) * 1.6 + turbulence * (1 - up) * 0.1, 0, 1) * (y < base) * (up < 1)
    colours = colormaps["afmhot"](0.35 + 0.65 * heat)[..., :3] * 255
    alpha = np.clip(heat * 3, 0, 1)[..., None]
    return (frame * (1 - alpha) + colours * alpha).astype(np.uint8)


def smoke(n: int, w: int = 320, h: int = 240) -> list[np.ndarray]:
    """A grey, soft-edged cloud growing, rising and thickening over a brick wall."""
    wall = cv2.resize(data.brick(), (w, h))
    wall = (np.dstack([wall] * 3) * np.array([1.0, 0.85, 0.7])).astype(np.float32)
    frames = []
    for i in range(n):
        alpha = np.zeros((h, w), np.float32)
        cv2.circle(alpha, (w // 2, int(h * 0.8 - i * 1.2)), int(20 + i * 1.5), 1.0, -1)
        alpha = cv2.GaussianBlur(alpha, (0, 0), 8)[..., None] * min(0.85, 0.3 + i * 0.02)
        frames.append((wall * (1 - alpha) + 170.0 * alpha).astype(np.uint8))
    return frames


def scattering_people(n: int, w: int = 960, h: int = 540) -> list[np.ndarray]:
    """Six people standing in a ring for 2.5 s, then running outwards."""
    person = cv2.resize(data.astronaut(), (110, 110))
    directions = np.array([[np.cos(a), np.sin(a)] for a in np.linspace(0, 2 * np.pi, 7)[:-1]])
    frames = []
    for i in range(n):
        t = i / FPS
        frame = np.full((h, w, 3), 120, np.uint8)
        radius = 150 * (1 + max(0.0, t - 2.5) * 1.6)
        for d in directions:
            x, y = (np.array([w / 2, h / 2]) + d * radius - 55).astype(int)
            if 0 <= x < w - 110 and 0 <= y < h - 110:
                frame[y:y + 110, x:x + 110] = person
        frames.append(frame)
    return frames


def image_media(rgb: np.ndarray, tmp_path, name: str = "image.png") -> Media:
    path = tmp_path / name
    Image.fromarray(rgb).save(path)
    return load_media(path)


def run(media: Media, registry: ModelRegistry, *names: str, settings: Settings | None = None) -> AnalysisContext:
    """Run analyzers in the pipeline's order, each on the outputs of those before."""
    settings = settings or Settings()
    context = AnalysisContext(settings)
    for cls in (GateAnalyzer, MotionAnalyzer, ObjectsAnalyzer, FireAnalyzer, CrowdAnalyzer):
        analyzer = cls(settings, registry)
        if analyzer.name in names and analyzer.applies_to(media):
            context.outputs[analyzer.name] = analyzer.analyze(media, context)
    return context


def labels(output: AnalyzerOutput) -> list[str]:
    return [d.label for d in output.detections]


# -- motion ------------------------------------------------------------------------------------

def test_still_room_has_no_motion_and_every_later_frame_is_still(videos, registry):
    context = run(videos["still"], registry, "gate", "motion")
    out = context.outputs["motion"]
    assert labels(out) == []
    assert context.outputs["gate"].data["still_frames"] == list(range(1, len(videos["still"].frames)))
    assert all(w["burst"] < 0.1 and w["energy"] < 0.1 for w in out.data["windows"])
    json.dumps(out.data)


def test_jumping_shape_is_energy_and_a_burst(videos, registry):
    context = run(videos["jumping"], registry, "gate", "motion")
    out = context.outputs["motion"]
    windows = out.data["windows"]
    before = [w for w in windows if w["t_end_s"] <= 2.0]
    after = [w for w in windows if w["t_start_s"] >= 2.0]
    assert before and after
    assert max(w["energy"] for w in before) < 0.1
    assert max(w["energy"] for w in after) > 0.5
    bursts = [d for d in out.detections if d.label == "motion:burst"]
    assert bursts and all(d.t_start_s >= 2.0 for d in bursts)
    # Only the frames before the block appears are gated.
    assert context.outputs["gate"].data["still_frames"] == [1, 2]
    assert out.direction_grid.shape[:1] == (len(windows),)


# -- fire and smoke ----------------------------------------------------------------------------

def test_flickering_flame_is_fire(videos, registry):
    out = run(videos["flame"], registry, "motion", "fire").outputs["fire"]
    fires = [d for d in out.detections if d.label == "fire"]
    assert len(fires) == len(videos["flame"].frames)
    for det in fires:
        x, y, w, h = det.box_xywh_norm
        assert x < 0.5 < x + w and y + h > 0.8  # around the flame in the middle of the floor
    assert all(f["flicker"] > 6 and f["fire_area_ratio"] > 0.01 for f in out.data["frames"])
    assert "smoke" not in labels(out)


def test_a_flame_that_never_flickers_scores_lower(videos, registry):
    flickering = run(videos["flame"], registry, "fire").outputs["fire"].data["frames"]
    static = run(videos["static_flame"], registry, "fire").outputs["fire"].data["frames"]
    assert all(f["flicker"] < 2 for f in static)
    assert max(f["fire_score"] for f in static) < 0.6 * max(f["colour_score"] for f in static)
    assert np.mean([f["fire_score"] for f in flickering]) > np.mean([f["fire_score"] for f in static])


def test_still_room_has_no_fire_or_smoke(videos, registry):
    out = run(videos["still"], registry, "fire").outputs["fire"]
    assert labels(out) == []
    assert all(f["fire_score"] == 0 and f["smoke_score"] == 0 for f in out.data["frames"])


def test_growing_grey_cloud_is_smoke(videos, registry):
    out = run(videos["smoke"], registry, "fire").outputs["fire"]
    smokes = [d for d in out.detections if d.label == "smoke"]
    assert smokes and "fire" not in labels(out)
    # It must last before it counts.
    assert min(d.t_start_s for d in smokes) >= 2.0
    x, y, w, h = smokes[-1].box_xywh_norm
    assert x < 0.5 < x + w and y < 0.5 < y + h


@pytest.mark.parametrize("photo", ["astronaut", "coffee", "chelsea"])
def test_everyday_photos_score_low_for_fire(photo, registry, tmp_path):
    media = image_media(getattr(data, photo)(), tmp_path)
    out = run(media, registry, "fire").outputs["fire"]
    assert out.data["frames"][0]["fire_score"] < 0.5
    # Weak evidence may still be reported; it stays under fusion's decision threshold.
    assert all(d.score < 0.5 for d in out.detections)


def test_drawn_fire_in_a_photo_scores_high(registry, tmp_path):
    out = run(image_media(flame(still_room(320, 240), np.random.default_rng(0)), tmp_path), registry, "fire")
    fire = out.outputs["fire"]
    assert labels(fire) == ["fire"] and fire.detections[0].score > 0.6
    assert fire.data["frames"][0]["flicker"] is None  # a still image has no flicker


def test_fire_colour_head_matches_the_features():
    head = colour_head()
    features = colour_analysis(still_room()).features
    assert head.coef.shape == features.shape
    assert 0.0 <= head.probability(features) < 0.05


# -- crowd ---------------------------------------------------------------------------------------

def test_tiled_people_are_counted(registry, tmp_path):
    out = run(image_media(np.tile(data.astronaut(), (3, 3, 1)), tmp_path), registry, "objects", "crowd")
    crowd = out.outputs["crowd"]
    count = next(d for d in crowd.detections if d.label == "crowd:count")
    assert 7 <= count.attributes["count"] <= 9
    assert "crowd:density_high" not in labels(crowd)

    tight = Settings()
    tight.analyzers.crowd.capacity_per_view = 6
    tight.event.venue_capacity = 10_000
    crowd = run(image_media(np.tile(data.astronaut(), (3, 3, 1)), tmp_path), registry, "objects", "crowd",
                settings=tight).outputs["crowd"]
    dense = next(d for d in crowd.detections if d.label == "crowd:density_high")
    assert dense.score == 1.0 and dense.attributes["venue_fraction"] < 0.001


def test_no_count_without_people(videos, registry):
    out = run(videos["still"], registry, "gate", "motion", "objects", "crowd").outputs["crowd"]
    assert labels(out) == []
    assert all(f["count"] == 0 for f in out.data["frames"])


def test_motorcycle_next_to_a_person_is_a_vehicle_near_people(registry, tmp_path):
    motorcycle = data.stereo_motorcycle()[0]
    scene = np.concatenate([cv2.resize(data.astronaut(), (500, 500)), motorcycle], axis=1)
    crowd = run(image_media(scene, tmp_path), registry, "objects", "crowd").outputs["crowd"]
    near = next(d for d in crowd.detections if d.label == "vehicle:near_people")
    assert near.attributes["vehicle"] == "motorcycle" and near.box_xywh_norm[0] > 0.35


def objects_output(*objects: tuple[str, tuple[float, float, float, float]]) -> AnalyzerOutput:
    frame = {"index": 0, "t_s": 0.0, "reused": False,
             "objects": [{"label": label, "score": 0.8, "box_xywh_norm": list(box)} for label, box in objects]}
    return AnalyzerOutput(data={"frames": [frame]})


@pytest.mark.parametrize(("person_box", "near"), [
    ((0.52, 0.30, 0.08, 0.40), True),   # beside the car
    ((0.02, 0.45, 0.04, 0.20), False),  # across the street
    ((0.32, 0.40, 0.06, 0.15), False),  # the driver, inside the car's box
])
def test_vehicle_near_people_from_boxes(registry, tmp_path, person_box, near):
    media = image_media(still_room(640, 480), tmp_path)
    context = AnalysisContext(Settings())
    context.outputs["objects"] = objects_output(("car", (0.25, 0.35, 0.25, 0.3)), ("person", person_box))
    out = CrowdAnalyzer(context.settings, registry).analyze(media, context)
    assert ("vehicle:near_people" in labels(out)) is near


def test_part_boxes_are_not_counted_twice(registry, tmp_path):
    media = image_media(still_room(640, 480), tmp_path)
    context = AnalysisContext(Settings())
    whole, upper_body, neighbour = (0.1, 0.1, 0.2, 0.8), (0.12, 0.1, 0.15, 0.4), (0.5, 0.1, 0.2, 0.8)
    context.outputs["objects"] = objects_output(("person", whole), ("person", upper_body), ("person", neighbour))
    out = CrowdAnalyzer(context.settings, registry).analyze(media, context)
    assert out.data["frames"][0]["count"] == 2


def test_scattering_crowd_is_a_dispersal(videos, registry):
    out = run(videos["scatter"], registry, "gate", "motion", "objects", "crowd").outputs["crowd"]
    dispersals = [d for d in out.detections if d.label == "crowd:dispersal"]
    assert dispersals and all(d.t_start_s >= 2.0 for d in dispersals)
    assert dispersals[0].attributes["outwardness"] > 0.5
    calm = [w for w in out.data["windows"] if w["t_end_s"] <= 2.0]
    assert calm and all(w["dispersal"] < 0.1 for w in calm)
    counts = [d for d in out.detections if d.label == "crowd:count"]
    assert counts[0].attributes["count"] == 6 and counts[0].t_start_s == 0.0 and counts[0].t_end_s >= 2.0
