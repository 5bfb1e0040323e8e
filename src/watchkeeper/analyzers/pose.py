"""Body pose per person: posture (standing, lying, crouching, arms raised); across video frames, falls and sudden moves.

MediaPipe's pose model finds one person per image, so it runs on each person
box from the objects analyzer (largest first), or on the whole frame when
there is none. Posture comes from the skeleton's geometry in pixels. Across
sampled video frames people are tracked by their boxes, and the wrist, head
and torso cues of seed 001 are measured relative to the body in body heights
per second: a steady movement gives the same speed whatever the frame
interval or the person's size in the image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..config import PoseSettings
from ..domain import Detection, Frame, Media
from ..geometry import xywh_iou
from ..models.mediapipe_models import PoseEstimator
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer, still_frame_positions

log = logging.getLogger(__name__)

MODEL_NAME = "mediapipe-pose"

# MediaPipe Pose landmark indices.
NOSE = 0
LEFT_SHOULDER, RIGHT_SHOULDER = 11, 12
LEFT_WRIST, RIGHT_WRIST = 15, 16
LEFT_HIP, RIGHT_HIP = 23, 24
LEFT_KNEE, RIGHT_KNEE = 25, 26
LEFT_ANKLE, RIGHT_ANKLE = 27, 28
SHOULDERS, HIPS = (LEFT_SHOULDER, RIGHT_SHOULDER), (LEFT_HIP, RIGHT_HIP)
LEGS = ((LEFT_HIP, LEFT_KNEE, LEFT_ANKLE), (RIGHT_HIP, RIGHT_KNEE, RIGHT_ANKLE))
ARMS = (("left", LEFT_SHOULDER, LEFT_WRIST), ("right", RIGHT_SHOULDER, RIGHT_WRIST))

# Body proportions (fractions of standing height) that turn segment lengths into a body height.
TORSO_FRACTION = 0.30  # shoulder line to hip line
SHOULDER_WIDTH_FRACTION = 0.25
LEG_FRACTION = 0.50  # hip to knee to ankle

# Posture geometry, degrees and fractions.
LYING_TILT_DEG = 60.0  # torso this far from vertical is lying ...
LYING_LEGS_TILT_DEG = 45.0  # ... unless the legs, when seen, go down nearer vertical than this
UPRIGHT_TILT_DEG = 30.0
LYING_MAX_BOX_ASPECT = 1.2  # person box height / width above which nobody is lying
FLAT_BODY_ASPECT = 1.5  # visible skeleton this much wider than tall ...
FLAT_HEAD_HIP_GAP = 0.25  # ... with the head this close (body heights) to hip height is lying
STANDING_KNEE_DEG = 150.0
STANDING_DROP = 0.8  # hip-to-ankle height / leg length when the leg is straight under the hip
CROUCH_KNEE_DEG = 100.0
CROUCH_DROP = 0.45

# Box centres this far apart (in box lengths) can still be the same person in the next frame.
MAX_MATCH_DISTANCE = 0.8

UPRIGHT_POSTURES = frozenset({"standing", "upright"})
# Postures that become detections; "upright" (legs unseen), "bending" and "unknown" stay in the data.
REPORTED_POSTURES = frozenset({"standing", "lying", "crouching"})


def _margin(value: float, start: float, full: float) -> float:
    """0 at ``start``, 1 at ``full`` (either direction), clipped."""
    return float(np.clip((value - start) / (full - start), 0.0, 1.0))


def _confidence(visibility: float, margin: float) -> float:
    """Detection score: how well the model saw the keypoints times how clearly the geometry holds."""
    return round(float(np.clip(visibility, 0.0, 1.0)) * (0.5 + 0.5 * margin), 4)


@dataclass
class Skeleton:
    """One person's landmarks in frame pixels (x right, y down) with their visibilities."""

    xy: np.ndarray  # (33, 2)
    visibility: np.ndarray  # (33,)

    @classmethod
    def from_keypoints(cls, keypoints: np.ndarray, width: int, height: int) -> Skeleton:
        keypoints = np.asarray(keypoints, np.float64)
        return cls(keypoints[:, :2] * (width, height), keypoints[:, 2])

    def seen(self, index: int, min_visibility: float) -> bool:
        return bool(self.visibility[index] >= min_visibility)

    def mid(self, pair: tuple[int, int]) -> np.ndarray:
        return self.xy[list(pair)].mean(axis=0)

    def mean_visibility(self, indices: tuple[int, ...]) -> float:
        return float(self.visibility[list(indices)].mean())

    @property
    def torso(self) -> np.ndarray:
        """Hip centre to shoulder centre."""
        return self.mid(SHOULDERS) - self.mid(HIPS)

    def tilt_deg(self) -> float:
        """Torso angle from screen-up: 0 upright, 90 horizontal, 180 upside down."""
        torso = self.torso
        length = float(np.linalg.norm(torso))
        if length == 0:
            return 0.0
        return float(np.degrees(np.arccos(np.clip(-torso[1] / length, -1.0, 1.0))))

    def body_height(self) -> float:
        """Standing height in pixels from segment lengths, which do not change as the body turns or bends.

        MediaPipe places unseen landmarks too, so the estimate exists for a
        portrait as well; the largest estimate wins because foreshortening only
        ever shortens a segment.
        """
        estimates = [
            np.linalg.norm(self.torso) / TORSO_FRACTION,
            np.linalg.norm(self.xy[LEFT_SHOULDER] - self.xy[RIGHT_SHOULDER]) / SHOULDER_WIDTH_FRACTION,
        ]
        estimates += [
            (np.linalg.norm(self.xy[hip] - self.xy[knee]) + np.linalg.norm(self.xy[knee] - self.xy[ankle]))
            / LEG_FRACTION
            for hip, knee, ankle in LEGS
        ]
        return max(float(max(estimates)), 1.0)


@dataclass(frozen=True)
class Posture:
    name: str  # standing, upright, bending, crouching, lying, unknown
    score: float
    arms_raised: str | None = None  # "left", "right" or "both"
    arms_raised_score: float = 0.0


def _knee_angle_deg(skeleton: Skeleton, hip: int, knee: int, ankle: int) -> float:
    thigh, shin = skeleton.xy[hip] - skeleton.xy[knee], skeleton.xy[ankle] - skeleton.xy[knee]
    denominator = float(np.linalg.norm(thigh) * np.linalg.norm(shin)) or 1.0
    return float(np.degrees(np.arccos(np.clip(np.dot(thigh, shin) / denominator, -1.0, 1.0))))


def _legs_tilt_deg(skeleton: Skeleton, min_visibility: float) -> float | None:
    """Angle of hips-to-ankles from screen-down (0: legs straight down), or None when the legs are not seen."""
    ankles = [a for a in (LEFT_ANKLE, RIGHT_ANKLE) if skeleton.seen(a, min_visibility)]
    if not ankles or not any(skeleton.seen(h, min_visibility) for h in HIPS):
        return None
    legs = skeleton.xy[ankles].mean(axis=0) - skeleton.mid(HIPS)
    length = float(np.linalg.norm(legs))
    return float(np.degrees(np.arccos(np.clip(legs[1] / length, -1.0, 1.0)))) if length else None


def _lying_score(skeleton: Skeleton, tilt: float, visibility: float, min_visibility: float) -> float:
    scores = []
    legs_tilt = _legs_tilt_deg(skeleton, min_visibility)
    # A horizontal torso over legs that go straight down is someone bending over, not lying.
    if tilt >= LYING_TILT_DEG and (legs_tilt is None or legs_tilt >= LYING_LEGS_TILT_DEG):
        scores.append(_confidence(visibility, _margin(tilt, LYING_TILT_DEG, LYING_TILT_DEG + 20)))
    seen = skeleton.visibility >= min_visibility
    if seen.sum() >= 8 and skeleton.seen(NOSE, min_visibility):
        extent = skeleton.xy[seen].max(axis=0) - skeleton.xy[seen].min(axis=0)
        aspect = extent[0] / max(extent[1], 1.0)
        head_to_hip = abs(skeleton.xy[NOSE][1] - skeleton.mid(HIPS)[1]) / skeleton.body_height()
        if aspect >= FLAT_BODY_ASPECT and head_to_hip <= FLAT_HEAD_HIP_GAP:
            scores.append(_confidence(visibility, _margin(aspect, FLAT_BODY_ASPECT, FLAT_BODY_ASPECT + 1)))
    return max(scores, default=0.0)


def _leg_posture(skeleton: Skeleton, tilt: float, min_visibility: float) -> Posture | None:
    """Standing or crouching from the legs that are seen, or None."""
    legs = [leg for leg in LEGS if all(skeleton.seen(i, min_visibility) for i in leg)]
    if not legs:
        return None
    angles, drops = [], []
    for hip, knee, ankle in legs:
        thigh, shin = skeleton.xy[hip] - skeleton.xy[knee], skeleton.xy[ankle] - skeleton.xy[knee]
        length = np.linalg.norm(thigh) + np.linalg.norm(shin)
        angles.append(_knee_angle_deg(skeleton, hip, knee, ankle))
        drops.append((skeleton.xy[ankle][1] - skeleton.xy[hip][1]) / max(float(length), 1.0))
    visibility = skeleton.mean_visibility(SHOULDERS + HIPS + tuple(i for leg in legs for i in leg[1:]))
    # Crouching: every seen knee strongly bent and the hips low over the feet.
    if max(angles) < CROUCH_KNEE_DEG and max(drops) < CROUCH_DROP:
        margin = min(_margin(max(angles), CROUCH_KNEE_DEG, CROUCH_KNEE_DEG - 30),
                     _margin(max(drops), CROUCH_DROP, CROUCH_DROP - 0.2))
        return Posture("crouching", _confidence(visibility, margin))
    # Standing: torso vertical over at least one straight leg, hip above knee above ankle.
    best = int(np.argmax(angles))
    hip, knee, ankle = legs[best]
    ordered = skeleton.xy[hip][1] < skeleton.xy[knee][1] < skeleton.xy[ankle][1]
    if tilt <= UPRIGHT_TILT_DEG and ordered and angles[best] >= STANDING_KNEE_DEG and drops[best] >= STANDING_DROP:
        margin = min(_margin(tilt, UPRIGHT_TILT_DEG, UPRIGHT_TILT_DEG / 2),
                     _margin(angles[best], STANDING_KNEE_DEG, STANDING_KNEE_DEG + 20))
        return Posture("standing", _confidence(visibility, margin))
    return None


def _arms_raised(skeleton: Skeleton, min_visibility: float) -> tuple[str | None, float]:
    """Which wrists are above the head (screen up: only asked of people who are not lying)."""
    if not skeleton.seen(NOSE, min_visibility):
        return None, 0.0
    scale = skeleton.body_height()
    raised, scores = [], []
    for side, shoulder, wrist in ARMS:
        if skeleton.seen(wrist, min_visibility) and skeleton.seen(shoulder, min_visibility):
            above = (skeleton.xy[NOSE][1] - skeleton.xy[wrist][1]) / scale
            if above > 0:
                raised.append(side)
                visibility = skeleton.mean_visibility((NOSE, shoulder, wrist))
                scores.append(_confidence(visibility, _margin(above, 0.0, 0.15)))
    if not raised:
        return None, 0.0
    return ("both" if len(raised) == 2 else raised[0]), max(scores)


def classify_posture(
    keypoints: np.ndarray, width: int, height: int, min_visibility: float = 0.5, box_aspect: float | None = None
) -> Posture:
    """Posture of one skeleton: (33, 3) ``[x, y, visibility]`` keypoints normalised to a ``width`` x ``height`` frame.

    ``box_aspect`` is height / width (pixels) of the object detector's box
    around the person, when there is one: a clearly tall box contradicts a
    lying skeleton, which then says "unknown" (on CCTV footage MediaPipe
    returns tilted skeletons for small upright people).
    """
    skeleton = Skeleton.from_keypoints(keypoints, width, height)
    torso_visibility = skeleton.mean_visibility(SHOULDERS + HIPS)
    if torso_visibility < min_visibility:
        return Posture("unknown", 0.0)
    tilt = skeleton.tilt_deg()
    lying = _lying_score(skeleton, tilt, torso_visibility, min_visibility)
    if lying > 0:
        tall_box = box_aspect is not None and box_aspect > LYING_MAX_BOX_ASPECT
        return Posture("unknown", 0.0) if tall_box else Posture("lying", lying)
    posture = _leg_posture(skeleton, tilt, min_visibility)
    if posture is None and tilt <= UPRIGHT_TILT_DEG:
        margin = _margin(tilt, UPRIGHT_TILT_DEG, UPRIGHT_TILT_DEG / 2)
        posture = Posture("upright", _confidence(torso_visibility, margin))
    if posture is None:
        margin = _margin(tilt, UPRIGHT_TILT_DEG, LYING_TILT_DEG)
        posture = Posture("bending", _confidence(torso_visibility, margin))
    arms, arms_score = _arms_raised(skeleton, min_visibility)
    return replace(posture, arms_raised=arms, arms_raised_score=arms_score)


@dataclass
class PersonPose:
    keypoints: np.ndarray  # (33, 3) x, y normalised to the frame, visibility
    box_xywh_norm: tuple[float, float, float, float]
    posture: Posture
    track: int = -1
    # "person_box": found in an object detector's person box; "whole_frame": the frame had none.
    source: str = "person_box"

    def to_json(self) -> dict[str, Any]:
        return {
            "track": self.track,
            "source": self.source,
            "box_xywh_norm": [round(float(v), 4) for v in self.box_xywh_norm],
            "posture": self.posture.name,
            "score": self.posture.score,
            "arms_raised": self.posture.arms_raised,
            "keypoints": np.round(self.keypoints.astype(np.float64), 3).tolist(),
        }


@dataclass
class FramePoses:
    index: int
    t_s: float
    width: int
    height: int
    people: list[PersonPose] = field(default_factory=list)
    reused: bool = False

    def skeleton(self, person: PersonPose) -> Skeleton:
        return Skeleton.from_keypoints(person.keypoints, self.width, self.height)


def _centre_distance(a: tuple[float, ...], b: tuple[float, ...], aspect: float) -> float:
    """Distance between box centres over the longest side of either box, in a frame ``aspect`` wide per unit high.

    Longest side, because a person who falls turns a tall box into a wide one:
    pivoting about the feet moves the centre by about 0.7 of the body's length.
    """
    dx = ((a[0] + a[2] / 2) - (b[0] + b[2] / 2)) * aspect
    dy = (a[1] + a[3] / 2) - (b[1] + b[3] / 2)
    return float(np.hypot(dx, dy)) / max(a[2] * aspect, a[3], b[2] * aspect, b[3], 1e-6)


def match_people(
    previous: list[PersonPose], current: list[PersonPose], aspect: float = 1.0
) -> list[tuple[int, int]]:
    """Greedy one-to-one matches (previous index, current index), best overlap first; ``aspect`` is width / height."""
    candidates = []
    for i, before in enumerate(previous):
        for j, now in enumerate(current):
            iou = xywh_iou(before.box_xywh_norm, now.box_xywh_norm)
            distance = _centre_distance(before.box_xywh_norm, now.box_xywh_norm, aspect)
            if iou >= 0.2 or distance <= MAX_MATCH_DISTANCE:
                candidates.append((iou + MAX_MATCH_DISTANCE - distance, i, j))
    matches, used_previous, used_current = [], set(), set()
    for _affinity, i, j in sorted(candidates, reverse=True):
        if i not in used_previous and j not in used_current:
            matches.append((i, j))
            used_previous.add(i)
            used_current.add(j)
    return matches


@dataclass
class _TrackPoint:
    frame: FramePoses
    person: PersonPose


def _relative_speed(a: np.ndarray, b: np.ndarray, scale: float, dt: float) -> float:
    return float(np.linalg.norm(b - a)) / scale / dt


class PoseEvents:
    """Tracks people across sampled frames and turns their movement into ``pose:*`` detections."""

    def __init__(self, settings: PoseSettings, *, analyzer: str = "pose", model_id: str = "") -> None:
        self.settings = settings
        self.analyzer = analyzer
        self.model_id = model_id

    def run(self, frames: list[FramePoses]) -> list[Detection]:
        """Assign ``track`` ids in place and return the fall and movement detections.

        A person is matched against every track seen within ``max_pair_interval_s``,
        so one frame where the model missed them does not break their track.
        """
        detections: list[Detection] = []
        tracks: list[list[_TrackPoint]] = []
        window = self.settings.max_pair_interval_s
        for frame in frames:
            active = [k for k, history in enumerate(tracks) if frame.t_s - history[-1].frame.t_s <= window]
            latest = [tracks[k][-1].person for k in active]
            matches = match_people(latest, frame.people, frame.width / frame.height)
            matched = {j: active[i] for i, j in matches}
            for j, person in enumerate(frame.people):
                if j in matched:
                    person.track = matched[j]
                else:
                    person.track = len(tracks)
                    tracks.append([])
                history = tracks[person.track]
                now = _TrackPoint(frame, person)
                if history and not frame.reused:
                    detections += self._movement(history[-1], now)
                    fall = self._fall(history, now)
                    if fall is not None:
                        detections.append(fall)
                history.append(now)
        return detections

    def _detection(
        self, label: str, score: float, start: _TrackPoint, end: _TrackPoint, **attributes: Any
    ) -> Detection:
        return Detection(
            analyzer=self.analyzer, modality="visual", label=label, score=score,
            t_start_s=start.frame.t_s, t_end_s=end.frame.t_s, frame_index=end.frame.index,
            box_xywh_norm=end.person.box_xywh_norm, model_id=self.model_id,
            attributes={"track": end.person.track, **attributes},
        )

    def _fall(self, history: list[_TrackPoint], now: _TrackPoint) -> Detection | None:
        """Upright, then lying within the window, with the head or hips dropping fast."""
        if now.person.posture.name != "lying":
            return None
        for before in reversed(history):
            dt = now.frame.t_s - before.frame.t_s
            if dt > self.settings.max_pair_interval_s or before.person.posture.name == "lying":
                return None  # too long ago, or the fall was already reported
            if before.person.posture.name in UPRIGHT_POSTURES and dt > 0:
                break
        else:
            return None
        was, lies = before.frame.skeleton(before.person), now.frame.skeleton(now.person)
        scale = was.body_height()
        drop = max(lies.xy[NOSE][1] - was.xy[NOSE][1], lies.mid(HIPS)[1] - was.mid(HIPS)[1])
        speed = drop / scale / dt
        threshold = self.settings.fall_drop_speed
        if speed < threshold:
            return None
        postures = np.sqrt(before.person.posture.score * now.person.posture.score)
        score = round(float(postures) * (0.5 + 0.5 * _margin(speed, threshold, 2 * threshold)), 4)
        return self._detection("pose:fall", score, before, now, drop_speed_bh_per_s=round(speed, 3),
                               from_posture=before.person.posture.name)

    def _movement(self, before: _TrackPoint, now: _TrackPoint) -> list[Detection]:
        """Seed 001's cues: wrists against their shoulder, head against the shoulders, shoulders against the hips."""
        dt = now.frame.t_s - before.frame.t_s
        if dt <= 0 or dt > self.settings.max_pair_interval_s:
            return []
        was, now_skeleton = before.frame.skeleton(before.person), now.frame.skeleton(now.person)
        scale = (was.body_height() + now_skeleton.body_height()) / 2
        min_visibility = self.settings.min_visibility

        def seen(indices: tuple[int, ...]) -> float | None:
            """Lowest visibility of the keypoints in both frames, or None when one is not seen."""
            lowest = min(was.visibility[list(indices)].min(), now_skeleton.visibility[list(indices)].min())
            return float(lowest) if lowest >= min_visibility else None

        cues: list[tuple[str, float, float, float]] = []  # label, speed, threshold, visibility
        wrist_speeds = [
            (_relative_speed(was.xy[w] - was.xy[s], now_skeleton.xy[w] - now_skeleton.xy[s], scale, dt), visibility)
            for _side, s, w in ARMS if (visibility := seen((s, w))) is not None
        ]
        if wrist_speeds:
            speed, visibility = max(wrist_speeds)
            cues.append(("pose:fast_limbs", speed, self.settings.wrist_speed_threshold, visibility))
        if (visibility := seen((NOSE,) + SHOULDERS)) is not None:
            speed = _relative_speed(was.xy[NOSE] - was.mid(SHOULDERS),
                                    now_skeleton.xy[NOSE] - now_skeleton.mid(SHOULDERS), scale, dt)
            cues.append(("pose:sudden_head", speed, self.settings.head_movement_threshold, visibility))
        if (visibility := seen(SHOULDERS + HIPS)) is not None:
            speed = _relative_speed(was.torso, now_skeleton.torso, scale, dt)
            cues.append(("pose:sudden_torso", speed, self.settings.torso_change_threshold, visibility))
        return [
            self._detection(label, _confidence(visibility, _margin(speed, threshold, 2 * threshold)), before, now,
                            speed_bh_per_s=round(speed, 3))
            for label, speed, threshold, visibility in cues if speed >= threshold
        ]


def _keypoint_box(keypoints: np.ndarray, min_visibility: float) -> tuple[float, float, float, float]:
    """Box around the seen keypoints (all of them when few are seen), padded a little, inside the frame."""
    seen = keypoints[keypoints[:, 2] >= min_visibility]
    points = (seen if len(seen) >= 3 else keypoints)[:, :2]
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    pad_x, pad_y = 0.05 * (x1 - x0), 0.05 * (y1 - y0)
    x0, y0 = max(0.0, x0 - pad_x), max(0.0, y0 - pad_y)
    x1, y1 = min(1.0, x1 + pad_x), min(1.0, y1 + pad_y)
    return (float(x0), float(y0), float(max(x1 - x0, 0.0)), float(max(y1 - y0, 0.0)))


def _square_around(box: tuple[float, ...], width: int, height: int, margin: float) -> tuple[int, int, int]:
    """Top-left corner and side (pixels) of a square centred on a person box with a margin.

    MediaPipe's person detector misses people in tight, tall crops far more
    often than in square ones (measured on the fight clips at its default
    detection threshold: 10 of 58 people found in tight crops, 18 in square ones).
    """
    side = max(box[2] * width, box[3] * height) * (1 + 2 * margin)
    centre_x, centre_y = (box[0] + box[2] / 2) * width, (box[1] + box[3] / 2) * height
    return round(centre_x - side / 2), round(centre_y - side / 2), max(1, round(side))


def _crop_padded(rgb: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """A square crop; where it leaves the frame, black."""
    height, width = rgb.shape[:2]
    crop = np.zeros((side, side, 3), np.uint8)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(width, x0 + side), min(height, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return crop


def _fits_box(keypoints: np.ndarray, box: tuple[float, ...], min_visibility: float) -> bool:
    """Most seen keypoints inside the person box (with slack); otherwise MediaPipe found someone else, or nobody."""
    seen = keypoints[keypoints[:, 2] >= min_visibility, :2]
    if len(seen) == 0:
        return False
    slack_x, slack_y = 0.15 * box[2], 0.15 * box[3]
    inside = ((seen[:, 0] >= box[0] - slack_x) & (seen[:, 0] <= box[0] + box[2] + slack_x)
              & (seen[:, 1] >= box[1] - slack_y) & (seen[:, 1] <= box[1] + box[3] + slack_y))
    return float(inside.mean()) >= 0.7


def _same_skeleton(a: Skeleton, b: Skeleton) -> bool:
    """Two crops of overlapping people can return the same person twice."""
    torso = list(SHOULDERS + HIPS)
    distance = float(np.linalg.norm(a.xy[torso] - b.xy[torso], axis=1).mean())
    return distance < 0.1 * min(a.body_height(), b.body_height())


def person_boxes(context: AnalysisContext) -> dict[int, list[tuple[float, float, float, float]]] | None:
    """Person boxes per frame index from the objects analyzer, largest first; None when it did not run."""
    objects = context.outputs.get("objects")
    if objects is None:
        return None
    boxes: dict[int, list[tuple[float, float, float, float]]] = {}
    for frame in objects.data.get("frames", ()):
        people = [tuple(o["box_xywh_norm"]) for o in frame.get("objects", ()) if o.get("label") == "person"]
        boxes[frame["index"]] = sorted(people, key=lambda b: b[2] * b[3], reverse=True)
    return boxes


@register_analyzer
class PoseAnalyzer(Analyzer):
    name = "pose"
    requires = ("gate", "objects")
    media_types = frozenset({"image", "video"})
    needs_frames = True

    def analyze(self, media: Media, context: AnalysisContext) -> AnalyzerOutput:
        settings = self.settings.analyzers.pose
        model: PoseEstimator = self.models.get(MODEL_NAME)
        boxes = person_boxes(context)
        still = still_frame_positions(context)
        frames: list[FramePoses] = []
        runs = 0
        for position, frame in enumerate(media.frames):
            height, width = frame.rgb.shape[:2]
            if position > 0 and position in still:
                reused = [replace(p, track=-1) for p in frames[-1].people]
                frames.append(FramePoses(frame.index, frame.t_s, width, height, reused, reused=True))
                continue
            frame_boxes = (boxes or {}).get(frame.index) or [None]
            people, model_runs = self._people(model, frame, frame_boxes[: settings.max_people], settings)
            runs += model_runs
            frames.append(FramePoses(frame.index, frame.t_s, width, height, people))

        events = PoseEvents(settings, analyzer=self.name, model_id=model.model_id)
        detections = events.run(frames)
        detections = self._posture_detections(frames, model.model_id) + detections
        log.debug("pose analysed", extra={"frames": len(frames), "model_runs": runs})
        return AnalyzerOutput(
            detections=detections,
            data={
                "model": model.model_id,
                "model_runs": runs,
                "frames": [
                    {"index": f.index, "t_s": round(f.t_s, 3), "reused": f.reused,
                     "people": [p.to_json() for p in f.people]}
                    for f in frames
                ],
            },
        )

    def _people(
        self, model: PoseEstimator, frame: Frame, boxes: list[tuple[float, float, float, float] | None],
        settings: PoseSettings,
    ) -> tuple[list[PersonPose], int]:
        """Skeletons in one frame: one model run per person box (None: the whole frame)."""
        height, width = frame.rgb.shape[:2]
        people: list[PersonPose] = []
        skeletons: list[Skeleton] = []
        runs = 0
        for box in boxes:
            if box is None:
                x0, y0, side_x, side_y = 0, 0, width, height
                crop = frame.rgb
            else:
                if box[3] * height < settings.min_person_px:
                    continue
                x0, y0, side_x = _square_around(box, width, height, settings.crop_margin)
                side_y = side_x
                crop = _crop_padded(frame.rgb, x0, y0, side_x)
            landmarks = model.estimate(crop)
            runs += 1
            if landmarks is None:
                continue
            keypoints = landmarks.copy()
            keypoints[:, 0] = (x0 + landmarks[:, 0] * side_x) / width
            keypoints[:, 1] = (y0 + landmarks[:, 1] * side_y) / height
            skeleton = Skeleton.from_keypoints(keypoints, width, height)
            if box is not None and not _fits_box(keypoints, box, settings.min_visibility):
                continue
            if any(_same_skeleton(skeleton, other) for other in skeletons):
                continue
            skeletons.append(skeleton)
            box_aspect = box[3] * height / max(box[2] * width, 1.0) if box is not None else None
            posture = classify_posture(keypoints, width, height, settings.min_visibility, box_aspect)
            person_box = tuple(box) if box is not None else _keypoint_box(keypoints, settings.min_visibility)
            people.append(PersonPose(keypoints, person_box, posture,
                                     source="whole_frame" if box is None else "person_box"))
        return people, runs

    def _posture_detections(self, frames: list[FramePoses], model_id: str) -> list[Detection]:
        detections = []
        for frame in frames:
            for person in frame.people:
                found = []
                if person.posture.name in REPORTED_POSTURES:
                    found.append((f"posture:{person.posture.name}", person.posture.score, {}))
                if person.posture.arms_raised:
                    found.append(("posture:arms_raised", person.posture.arms_raised_score,
                                  {"arms": person.posture.arms_raised}))
                detections += [
                    Detection(
                        analyzer=self.name, modality="visual", label=label, score=score,
                        t_start_s=frame.t_s, t_end_s=frame.t_s, frame_index=frame.index,
                        box_xywh_norm=person.box_xywh_norm, model_id=model_id,
                        attributes={"track": person.track, "source": person.source, **extra,
                                    **({"reused": True} if frame.reused else {})},
                    )
                    for label, score, extra in found if score > 0
                ]
        return detections

