"""Pose: MediaPipe on real photographs, and the posture, fall and movement logic on skeletons built here."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from watchkeeper.analyzers.base import AnalysisContext, AnalyzerOutput
from watchkeeper.analyzers.pose import FramePoses, PersonPose, PoseAnalyzer, PoseEvents, classify_posture
from watchkeeper.config import PoseSettings, Settings
from watchkeeper.domain import Frame, Media, MediaInfo
from watchkeeper.models.registry import ModelRegistry

WIDTH, HEIGHT = 640, 480

# A person 300 px tall facing the camera, feet at y=400: MediaPipe's 33 landmarks in pixels.
STANDING_PX = {
    0: (320, 125), 11: (345, 160), 12: (295, 160), 13: (355, 210), 14: (285, 210), 15: (358, 255),
    16: (282, 255), 23: (335, 250), 24: (305, 250), 25: (335, 325), 26: (305, 325), 27: (335, 400),
    28: (305, 400),
}
# Face points 1-10 sit around the nose, hands 17-22 at the wrists, feet 29-32 at the ankles.
NEAR = {**{i: 0 for i in range(1, 11)}, 17: 15, 19: 15, 21: 15, 18: 16, 20: 16, 22: 16,
        29: 27, 31: 27, 30: 28, 32: 28}


def skeleton(points_px: dict[int, tuple[float, float]], visibility: float = 0.95) -> np.ndarray:
    """(33, 3) normalised keypoints from the main landmarks' pixel positions."""
    keypoints = np.zeros((33, 3))
    for index in range(33):
        x, y = points_px[index] if index in points_px else points_px[NEAR[index]]
        keypoints[index] = (x / WIDTH, y / HEIGHT, visibility)
    return keypoints


def moved(points_px: dict, changes: dict[int, tuple[float, float]]) -> dict:
    return {i: (x + changes.get(i, (0, 0))[0], y + changes.get(i, (0, 0))[1]) for i, (x, y) in points_px.items()}


def rotated(points_px: dict, degrees: float, centre: tuple[float, float]) -> dict:
    angle = np.radians(degrees)
    cos, sin = np.cos(angle), np.sin(angle)
    cx, cy = centre
    return {i: (cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos)
            for i, (x, y) in points_px.items()}


# The same person after falling sideways: pivoted about the feet onto the floor.
LYING_PX = rotated(STANDING_PX, 90, (320, 400))
CROUCHING_PX = moved(STANDING_PX, {
    0: (0, 125), 11: (0, 125), 12: (0, 125), 13: (0, 110), 14: (0, 110), 15: (0, 90), 16: (0, 90),
    23: (-15, 120), 24: (15, 120), 25: (35, 15), 26: (-35, 15),
})
ARMS_UP_PX = moved(STANDING_PX, {13: (5, -90), 14: (-5, -90), 15: (0, -185), 16: (0, -185)})


def box_of(points_px: dict) -> tuple[float, float, float, float]:
    xy = np.array(list(points_px.values()))
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    return (x0 / WIDTH, y0 / HEIGHT, (x1 - x0) / WIDTH, (y1 - y0) / HEIGHT)


def frame_poses(index: int, t_s: float, points_px: dict) -> FramePoses:
    keypoints = skeleton(points_px)
    person = PersonPose(keypoints, box_of(points_px), classify_posture(keypoints, WIDTH, HEIGHT))
    return FramePoses(index, t_s, WIDTH, HEIGHT, [person])


def labels(detections) -> list[str]:
    return [d.label for d in detections]


# --- posture geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize(("points", "expected"), [
    (STANDING_PX, "standing"), (LYING_PX, "lying"), (rotated(STANDING_PX, -90, (320, 400)), "lying"),
    (CROUCHING_PX, "crouching"), (rotated(STANDING_PX, 40, (320, 400)), "bending"),
])
def test_posture_from_geometry(points, expected):
    posture = classify_posture(skeleton(points), WIDTH, HEIGHT)
    assert posture.name == expected
    assert 0.5 <= posture.score <= 1.0


def test_bending_over_is_not_lying():
    pivot = rotated(STANDING_PX, 90, (320, 250))  # the upper body folds forward about the hips
    bent = {i: (pivot[i] if i <= 22 else STANDING_PX[i]) for i in STANDING_PX}
    assert classify_posture(skeleton(bent), WIDTH, HEIGHT).name == "bending"


def test_flat_body_is_lying_even_with_a_steep_torso_line():
    # Lying on the side seen from the feet: the shoulder-hip line is short and tilted, the body wide and low.
    flat = {i: (x, 400 - (y - 400) * 0.1) for i, (x, y) in LYING_PX.items()}
    assert classify_posture(skeleton(flat), WIDTH, HEIGHT).name == "lying"


def test_a_tall_person_box_contradicts_a_lying_skeleton():
    keypoints = skeleton(LYING_PX)
    assert classify_posture(keypoints, WIDTH, HEIGHT, box_aspect=0.4).name == "lying"
    assert classify_posture(keypoints, WIDTH, HEIGHT, box_aspect=2.5).name == "unknown"


def test_unseen_torso_is_unknown_and_unseen_legs_upright():
    assert classify_posture(skeleton(STANDING_PX, visibility=0.2), WIDTH, HEIGHT).name == "unknown"
    keypoints = skeleton(STANDING_PX)
    keypoints[25:33, 2] = 0.1  # a portrait: legs out of the picture
    assert classify_posture(keypoints, WIDTH, HEIGHT).name == "upright"


def test_arms_raised():
    posture = classify_posture(skeleton(ARMS_UP_PX), WIDTH, HEIGHT)
    assert posture.arms_raised == "both" and posture.arms_raised_score >= 0.5
    assert classify_posture(skeleton(STANDING_PX), WIDTH, HEIGHT).arms_raised is None


# --- fall and movement across frames -------------------------------------------------------------


def test_fall_standing_to_lying_within_a_second():
    events = PoseEvents(PoseSettings()).run([frame_poses(0, 0.0, STANDING_PX), frame_poses(1, 1.0, LYING_PX)])
    falls = [d for d in events if d.label == "pose:fall"]
    assert len(falls) == 1
    assert (falls[0].t_start_s, falls[0].t_end_s) == (0.0, 1.0)
    assert falls[0].score >= 0.5 and falls[0].attributes["drop_speed_bh_per_s"] > 0.3


def test_fall_seen_through_an_intermediate_frame_and_reported_once():
    halfway = rotated(STANDING_PX, 45, (320, 400))
    frames = [frame_poses(i, t, p) for i, (t, p) in enumerate(
        [(0.0, STANDING_PX), (0.5, halfway), (1.0, LYING_PX), (1.5, LYING_PX), (2.0, LYING_PX)])]
    assert labels(PoseEvents(PoseSettings()).run(frames)).count("pose:fall") == 1


def test_no_fall_when_standing_still_or_lying_down_slowly():
    still = [frame_poses(i, float(i), STANDING_PX) for i in range(3)]
    assert PoseEvents(PoseSettings()).run(still) == []
    slow = [frame_poses(0, 0.0, STANDING_PX), frame_poses(1, 2.0, rotated(STANDING_PX, 45, (320, 400))),
            frame_poses(2, 4.0, LYING_PX)]
    assert "pose:fall" not in labels(PoseEvents(PoseSettings()).run(slow))


def wrist_sequence(speed_bh_per_s: float, interval_s: float, duration_s: float = 1.0) -> list[FramePoses]:
    """The right wrist moving sideways at a constant speed relative to the body (300 px tall)."""
    times = np.arange(0.0, duration_s + 1e-9, interval_s)
    return [frame_poses(i, float(t), moved(STANDING_PX, {16: (-speed_bh_per_s * 300 * t, 0)}))
            for i, t in enumerate(times)]


@pytest.mark.parametrize("interval_s", [0.5, 1.0])
def test_fast_limbs_decision_does_not_depend_on_frame_interval(interval_s):
    settings = PoseSettings()
    threshold = settings.wrist_speed_threshold
    fast = PoseEvents(settings).run(wrist_sequence(2 * threshold, interval_s))
    assert set(labels(fast)) == {"pose:fast_limbs"}
    assert all(d.attributes["speed_bh_per_s"] == pytest.approx(2 * threshold, rel=0.02) for d in fast)
    assert PoseEvents(settings).run(wrist_sequence(threshold / 2, interval_s)) == []


def test_sudden_head_and_torso():
    settings = PoseSettings()
    head_turn = moved(STANDING_PX, {i: (settings.head_movement_threshold * 2 * 300, 0) for i in range(11)})
    found = labels(PoseEvents(settings).run([frame_poses(0, 0.0, STANDING_PX), frame_poses(1, 1.0, head_turn)]))
    assert found == ["pose:sudden_head"]
    lean = rotated(STANDING_PX, 60, (320, 250))  # the upper body pivots about the hips
    lean = {i: (lean[i] if i <= 22 else STANDING_PX[i]) for i in STANDING_PX}
    found = labels(PoseEvents(settings).run([frame_poses(0, 0.0, STANDING_PX), frame_poses(1, 0.5, lean)]))
    assert "pose:sudden_torso" in found


def test_tracks_follow_two_people():
    right = {i: (x + 200, y) for i, (x, y) in STANDING_PX.items()}
    frames = []
    for i in range(3):
        first, second = frame_poses(i, float(i), STANDING_PX), frame_poses(i, float(i), right)
        frames.append(FramePoses(i, float(i), WIDTH, HEIGHT, second.people + first.people))
    PoseEvents(PoseSettings()).run(frames)
    assert [[p.track for p in f.people] for f in frames] == [[0, 1]] * 3


# --- the real model -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def analyzer():
    return PoseAnalyzer(Settings(), ModelRegistry())


def image_media(rgb: np.ndarray) -> Media:
    return video_media([rgb], [0.0], media_type="image")


def video_media(frames: list[np.ndarray], times: list[float], media_type: str = "video") -> Media:
    height, width = frames[0].shape[:2]
    info = MediaInfo(media_type=media_type, source="test", format="raw", sha256="0" * 64, size_bytes=0,
                     width=width, height=height, frames_sampled=len(frames))
    pairs = enumerate(zip(frames, times, strict=True))
    return Media(info=info, frames=[Frame(i, t, np.ascontiguousarray(f)) for i, (f, t) in pairs])


def camera_rgb() -> np.ndarray:
    return cv2.cvtColor(skdata.camera(), cv2.COLOR_GRAY2RGB)


@pytest.mark.parametrize("image", [skdata.astronaut, camera_rgb], ids=["astronaut", "cameraman"])
def test_real_upright_people_are_not_lying(analyzer, image):
    rgb = image()
    output = analyzer.analyze(image_media(rgb), AnalysisContext(Settings()))
    (person,) = output.data["frames"][0]["people"]
    # Portraits: the legs are out of the picture, so "upright" (torso vertical), not "standing".
    assert person["posture"] == "upright"
    assert len(person["keypoints"]) == 33 and all(len(k) == 3 for k in person["keypoints"])
    _, nose_y, nose_visibility = person["keypoints"][0]
    assert nose_visibility > 0.9 and nose_y < 0.5
    assert not any(d.label == "posture:lying" for d in output.detections)


@pytest.mark.parametrize("rotation", [cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE])
@pytest.mark.parametrize("image", [skdata.astronaut, camera_rgb], ids=["astronaut", "cameraman"])
def test_real_people_turned_on_their_side_are_lying(analyzer, image, rotation):
    output = analyzer.analyze(image_media(cv2.rotate(image(), rotation)), AnalysisContext(Settings()))
    assert [d.label for d in output.detections] == ["posture:lying"]
    assert output.data["frames"][0]["people"][0]["posture"] == "lying"


def test_real_fall_in_a_video(analyzer):
    """The astronaut upright near the top of the frame, then on her side lower down half a second later."""
    upright, lying = np.zeros((720, 1280, 3), np.uint8), np.zeros((720, 1280, 3), np.uint8)
    upright[:512, 384:896] = skdata.astronaut()
    lying[208:, 384:896] = cv2.rotate(skdata.astronaut(), cv2.ROTATE_90_CLOCKWISE)
    output = analyzer.analyze(video_media([upright, lying], [0.0, 0.5]), AnalysisContext(Settings()))
    postures = [f["people"][0]["posture"] for f in output.data["frames"]]
    assert postures == ["upright", "lying"]
    falls = [d for d in output.detections if d.label == "pose:fall"]
    assert len(falls) == 1 and (falls[0].t_start_s, falls[0].t_end_s) == (0.0, 0.5)


def two_people_canvas() -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    canvas = np.full((720, 1280, 3), 90, np.uint8)
    canvas[100:612, 60:572] = skdata.astronaut()
    canvas[150:662, 700:1212] = camera_rgb()
    # Where the people are (from the images): the objects analyzer's contract, not a model output.
    boxes = [(60 / 1280, 120 / 720, 420 / 1280, 490 / 720), (700 / 1280, 210 / 720, 330 / 1280, 450 / 720)]
    return canvas, boxes


def objects_output(boxes: list[tuple[float, float, float, float]], n_frames: int = 1) -> AnalyzerOutput:
    objects = [{"label": "person", "score": 0.9, "box_xywh_norm": list(b)} for b in boxes]
    return AnalyzerOutput(data={"frames": [{"index": i, "t_s": float(i), "objects": objects} for i in range(n_frames)]})


def test_real_model_runs_once_per_person_box(analyzer):
    canvas, boxes = two_people_canvas()
    context = AnalysisContext(Settings(), outputs={"objects": objects_output(boxes)})
    output = analyzer.analyze(image_media(canvas), context)
    people = output.data["frames"][0]["people"]
    assert output.data["model_runs"] == 2
    assert [p["box_xywh_norm"] for p in people] == [list(np.round(b, 4)) for b in boxes]
    for person, (x, y, w, h) in zip(people, boxes, strict=True):
        nose_x, nose_y, _ = person["keypoints"][0]
        assert x < nose_x < x + w and y < nose_y < y + h
        assert person["posture"] == "upright"

    settings = Settings()
    settings.analyzers.pose.max_people = 1
    one = PoseAnalyzer(settings, analyzer.models).analyze(image_media(canvas), context)
    assert one.data["model_runs"] == 1
    assert one.data["frames"][0]["people"][0]["box_xywh_norm"] == people[0]["box_xywh_norm"]


def test_whole_frame_without_person_boxes_and_motion_gate(analyzer):
    canvas, _ = two_people_canvas()
    media = video_media([canvas, canvas, canvas], [0.0, 1.0, 2.0])
    motion = AnalyzerOutput(data={"still_frames": [1, 2]})
    context = AnalysisContext(Settings(), outputs={"objects": objects_output([], 3), "gate": motion})
    output = analyzer.analyze(media, context)
    frames = output.data["frames"]
    assert output.data["model_runs"] == 1  # frames 1 and 2 reuse frame 0's poses
    assert [f["reused"] for f in frames] == [False, True, True]
    assert len(frames[0]["people"]) == 1  # one person per image without boxes
    assert frames[1]["people"] == frames[0]["people"] == frames[2]["people"]
    assert not any(d.label.startswith("pose:") for d in output.detections)
