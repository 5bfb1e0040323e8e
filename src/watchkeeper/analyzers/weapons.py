"""Handguns, long guns and knives per frame (``watchkeeper.weapons``), attached to the person holding them.

The people come from the objects analyzer and the detector's own whole-frame
pass, their wrists from the pose analyzer when it ran; with more people in view
than ``max_people``, a video's frames take turns searching them. Frames the
motion gate found unchanged reuse the previous frame's findings; with
``only_with_people`` (a live camera's tier 1), frames in which the objects
analyzer sees nobody are not searched, and ``frames_without_people_unsearched``
counts them (a tier 2 takes the output only when there were none). A finding's
score is the window's weapon probability mapped onto the ``weapon`` category's
scale, so that the detector's own model-card threshold is where fusion decides.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from ..config import Settings
from ..domain import Detection, Media
from ..fusion.rules import base_thresholds
from ..models import weapon_windows
from ..models.registry import ModelRegistry
from ..models.yolo import YoloV3Tiny
from ..weapons.detector import WeaponDetector, WeaponFinding
from ..weapons.model import WeaponModel
from ..weapons.windows import Box
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer, still_frame_positions
from .heads import on_category_scale
from .pose import LEFT_WRIST, RIGHT_WRIST, person_boxes

log = logging.getLogger(__name__)

MODEL_NAME = weapon_windows.WeaponWindowsBackend.name
_user_models: dict[tuple[str, float], WeaponModel] = {}
_user_models_lock = threading.Lock()


def weapon_model(settings: Settings, models: ModelRegistry) -> WeaponModel:
    """The configured weapon detector file, else the one shipped in the package."""
    path = settings.analyzers.weapons.model
    if path is None:
        return models.get(MODEL_NAME)
    key = (str(Path(path).resolve()), Path(path).stat().st_mtime if Path(path).exists() else 0.0)
    with _user_models_lock:
        if key not in _user_models:
            _user_models[key] = WeaponModel.load(path)
        return _user_models[key]


def _wrists(context: AnalysisContext, width: int, height: int, min_visibility: float
            ) -> dict[int, list[tuple[tuple[float, ...], list[tuple[float, float]]]]]:
    """Per frame index: each posed person's box (normalised xywh) and seen wrists (pixels)."""
    pose = context.outputs.get("pose")
    found: dict[int, list[tuple[tuple[float, ...], list[tuple[float, float]]]]] = {}
    if pose is None:
        return found
    for frame in pose.data.get("frames", ()):
        people = []
        for person in frame.get("people", ()):
            points = [person["keypoints"][k] for k in (LEFT_WRIST, RIGHT_WRIST)]
            people.append((tuple(person["box_xywh_norm"]),
                           [(x * width, y * height) for x, y, seen in points if seen >= min_visibility]))
        found[frame["index"]] = people
    return found


def _norm(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0 = max(0.0, box[0] / width), max(0.0, box[1] / height)
    x1, y1 = min(1.0, box[2] / width), min(1.0, box[3] / height)
    return (round(x0, 4), round(y0, 4), round(max(0.0, x1 - x0), 4), round(max(0.0, y1 - y0), 4))


def _centre_inside(box: tuple[float, ...], person: tuple[float, ...]) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return person[0] <= cx <= person[0] + person[2] and person[1] <= cy <= person[1] + person[3]


@register_analyzer
class WeaponsAnalyzer(Analyzer):
    name = "weapons"
    requires = ("gate", "objects", "pose")
    media_types = frozenset({"image", "video"})
    needs_frames = True

    def __init__(self, settings: Settings, models: ModelRegistry) -> None:
        super().__init__(settings, models)
        self.category_threshold = base_thresholds(settings)["weapon"]

    def gives_alike(self, output: AnalyzerOutput, settings: Settings) -> bool:
        # ``only_with_people`` changes nothing where it left no frame unsearched.
        theirs, mine = settings.analyzers.weapons, self.settings.analyzers.weapons
        if output.data.get("frames_without_people_unsearched") == 0:
            theirs = theirs.model_copy(update={"only_with_people": mine.only_with_people})
        return theirs == mine

    def analyze(self, media: Media, context: AnalysisContext) -> AnalyzerOutput:
        config = self.settings.analyzers.weapons
        model = weapon_model(self.settings, self.models)
        yolo: YoloV3Tiny = self.models.get("yolov3-tiny")
        detector = WeaponDetector(yolo, model, max_people=config.max_people,
                                  min_probability=config.min_probability, wrist_reach=config.wrist_reach)
        if not media.frames:
            return AnalyzerOutput(data={"model": model.name, "frames": []})
        height, width = media.frames[0].rgb.shape[:2]
        boxes = person_boxes(context) or {}
        wrists = _wrists(context, width, height, self.settings.analyzers.pose.min_visibility)
        still = still_frame_positions(context)
        frames_data: list[dict[str, Any]] = []
        detections: list[Detection] = []
        latest: list[WeaponFinding] = []
        runs = unsearched = 0
        for position, frame in enumerate(media.frames):
            people_norm = boxes.get(frame.index, [])
            reused = position > 0 and position in still
            if not reused and config.only_with_people and not people_norm:
                latest = []
                unsearched += 1
            elif not reused:
                people = [(x * width, y * height, (x + w) * width, (y + h) * height) for x, y, w, h in people_norm]
                posed = wrists.get(frame.index, [])
                # Pose lists people in its own order: match each person box to the pose whose box it holds.
                person_wrists = [next((points for pose_box, points in posed if _centre_inside(pose_box, box)), [])
                                 for box in people_norm]
                latest = detector.find(frame.rgb, people, person_wrists, turn=runs)
                runs += 1
            found = []
            for finding in latest:
                attributes: dict[str, Any] = {
                    "kind": finding.kind, "probability": round(finding.probability, 4),
                    "kind_confidence": round(finding.kind_confidence, 4), "threshold": model.threshold,
                    "held": finding.holder is not None, "near_wrist": finding.near_wrist,
                    "window_xywh_norm": list(_norm(finding.window, width, height)),
                }
                if finding.holder is not None:
                    attributes["holder_box_xywh_norm"] = list(_norm(finding.holder, width, height))
                if reused:
                    attributes["reused"] = True
                score = on_category_scale(finding.probability, model.threshold, self.category_threshold)
                box = _norm(finding.box, width, height)
                detections.append(Detection(
                    analyzer=self.name, modality="visual", label=f"weapon:{finding.kind}",
                    score=round(float(min(1.0, score)), 4), t_start_s=frame.t_s, t_end_s=frame.t_s,
                    frame_index=frame.index, box_xywh_norm=box, model_id=f"weapon:{model.name}",
                    attributes=attributes,
                ))
                found.append({"kind": finding.kind, "probability": attributes["probability"],
                              "box_xywh_norm": list(box), "held": attributes["held"]})
            frames_data.append({"index": frame.index, "t_s": round(frame.t_s, 3), "reused": reused,
                                "weapons": found})
        log.debug("weapons analysed", extra={"frames": len(media.frames), "detector_runs": runs})
        return AnalyzerOutput(detections=detections, data={
            "model": model.name, "threshold": model.threshold, "frames_run": runs,
            "frames_without_people_unsearched": unsearched, "frames": frames_data,
        })
