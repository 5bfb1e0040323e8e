"""Crowd: people per frame and density, sudden scattering, and vehicles close to people.

Reads the objects analyzer's boxes (so ``person`` and the vehicles must stay
in ``analyzers.objects.labels``) and, on video, the motion analyzer's
per-window direction grid. Density is measured against what one camera view
holds (``capacity_per_view``) or, when the visible floor area is configured,
in people per square metre. A dispersal is a sudden rise of speed inside the
crowd's cells with people moving outwards from the crowd's centre or in every
direction at once, the motion of a stampede.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import CrowdSettings
from ..domain import Detection, Media
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer
from .motion import DIRECTION_BINS, MotionOutput, direction_entropy

log = logging.getLogger(__name__)

MODEL_ID = "crowd-rules"
VEHICLES = frozenset({"car", "truck", "bus", "motorcycle"})
# YOLOv3-tiny often adds a box around part of a person inside the whole-person box: count it once.
PART_BOX_CONTAINMENT = 0.8
# A person box this much inside a vehicle box is its driver or rider, not someone near it.
OCCUPANT_CONTAINMENT = 0.5
_BIN_ANGLES = np.arange(DIRECTION_BINS) * 2 * np.pi / DIRECTION_BINS
_BIN_UNITS = np.stack([np.cos(_BIN_ANGLES), np.sin(_BIN_ANGLES)], axis=1)  # (bins, 2), image axes (y down)


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float
    score: float

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> Box:
        return cls(*obj["box_xywh_norm"], score=obj["score"])

    @property
    def area(self) -> float:
        return self.w * self.h

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def intersection(self, other: Box) -> float:
        dx = min(self.x + self.w, other.x + other.w) - max(self.x, other.x)
        dy = min(self.y + self.h, other.y + other.h) - max(self.y, other.y)
        return max(dx, 0.0) * max(dy, 0.0)

    def gap(self, other: Box, aspect: float) -> float:
        """Shortest distance between the boxes (0 when they touch), in units of the frame height."""
        dx = max(other.x - (self.x + self.w), self.x - (other.x + other.w), 0.0) * aspect
        dy = max(other.y - (self.y + self.h), self.y - (other.y + other.h), 0.0)
        return float(np.hypot(dx, dy))


def count_people(people: list[Box]) -> list[Box]:
    """Person boxes with part-boxes (mostly inside a bigger person box) dropped."""
    kept = []
    for box in people:
        inside = any(other.area > box.area and box.intersection(other) >= PART_BOX_CONTAINMENT * box.area
                     for other in people)
        if not inside:
            kept.append(box)
    return kept


def _density(count: int, settings: CrowdSettings) -> float:
    """How full the view is: 1.0 at capacity (or at ``max_people_per_m2`` when the area is known)."""
    density = count / settings.capacity_per_view
    if settings.area_m2_per_frame:
        density = max(density, count / settings.area_m2_per_frame / settings.max_people_per_m2)
    return density


def _person_cells(people: list[Box], rows: int, cols: int) -> np.ndarray:
    """Boolean (rows, cols) grid of the cells person boxes cover (at least the cell of each box centre)."""
    cells = np.zeros((rows, cols), bool)
    for box in people:
        r0, r1 = int(box.y * rows), int(np.ceil((box.y + box.h) * rows))
        c0, c1 = int(box.x * cols), int(np.ceil((box.x + box.w) * cols))
        cells[max(r0, 0):max(r1, r0 + 1), max(c0, 0):max(c1, c0 + 1)] = True
    return cells


def crowd_motion(grid: np.ndarray, people: list[Box], aspect: float) -> dict[str, float]:
    """Speed, direction entropy and outwardness of the flow inside person boxes for one window.

    ``grid`` is the motion analyzer's (rows, cols, bins) mean speed per direction;
    outwardness is the speed-weighted mean cosine between each cell's flow and
    the direction away from the crowd's centre (1: everyone moves outwards).
    """
    rows, cols, _ = grid.shape
    cells = _person_cells(people, rows, cols)
    hists = grid[cells]  # (n, bins)
    vectors = hists @ _BIN_UNITS  # mean flow per cell (x right, y down)
    speed = float(hists.sum(axis=1).mean()) if len(hists) else 0.0
    centre = np.mean([b.centre for b in people], axis=0)
    rr, cc = np.nonzero(cells)
    away = np.stack([((cc + 0.5) / cols - centre[0]) * aspect, (rr + 0.5) / rows - centre[1]], axis=1)
    norms = np.linalg.norm(away, axis=1) * np.linalg.norm(vectors, axis=1)
    weights = np.linalg.norm(vectors, axis=1)
    usable = norms > 1e-9
    outward = 0.0
    if usable.any() and weights[usable].sum() > 0:
        cosines = (away[usable] * vectors[usable]).sum(axis=1) / norms[usable]
        outward = float(np.average(cosines, weights=weights[usable]))
    return {"speed": speed, "direction_entropy": direction_entropy(hists.sum(axis=0)), "outwardness": outward}


@register_analyzer
class CrowdAnalyzer(Analyzer):
    name = "crowd"
    media_types = frozenset({"image", "video"})
    requires = ("objects", "motion")
    needs_frames = True

    def analyze(self, media: Media, context: AnalysisContext) -> AnalyzerOutput:
        settings = self.settings.analyzers.crowd
        objects = context.outputs.get("objects")
        if objects is None:
            return AnalyzerOutput(data={"frames": [], "windows": []})
        height, width = media.frames[0].rgb.shape[:2] if media.frames else (1, 1)
        aspect = width / height
        frames = objects.data.get("frames", [])
        people_by_frame = [
            count_people([Box.from_object(o) for o in f["objects"] if o["label"] == "person"]) for f in frames
        ]
        detections: list[Detection] = []
        frames_data = []
        open_count: Detection | None = None
        for frame, people in zip(frames, people_by_frame):
            density = _density(len(people), settings)
            frames_data.append({"index": frame["index"], "t_s": frame["t_s"], "count": len(people),
                                "density": round(density, 4)})
            count, others = self._frame_detections(frame, people, density, aspect, settings)
            # Consecutive frames with the same count make one crowd:count detection spanning them.
            if count is not None and open_count is not None \
                    and open_count.attributes["count"] == count.attributes["count"]:
                open_count.t_end_s = count.t_end_s
                open_count.score = max(open_count.score, count.score)
            else:
                open_count = count
                detections += [count] if count is not None else []
            detections += others
        windows: list[dict[str, Any]] = []
        motion = context.outputs.get("motion")
        if isinstance(motion, MotionOutput) and frames:
            windows, dispersals = self._dispersal(motion, frames, people_by_frame, aspect, settings)
            detections += dispersals
        log.debug("crowd analysed", extra={"frames": len(frames), "windows": len(windows)})
        return AnalyzerOutput(detections=detections, data={
            "capacity_per_view": settings.capacity_per_view, "frames": frames_data, "windows": windows})

    def _frame_detections(self, frame: dict[str, Any], people: list[Box], density: float, aspect: float,
                          settings: CrowdSettings) -> tuple[Detection | None, list[Detection]]:
        """The frame's crowd:count (None without people) and its other detections."""
        if not people:
            return None, []
        common = {"analyzer": self.name, "modality": "visual", "t_start_s": frame["t_s"], "t_end_s": frame["t_s"],
                  "frame_index": frame["index"], "model_id": MODEL_ID}
        attributes: dict[str, Any] = {"count": len(people), "density": round(density, 4)}
        venue = self.settings.event.venue_capacity
        if venue:
            attributes["venue_fraction"] = round(len(people) / venue, 6)
        # Score: how sure we are that people are in view; how many is in the attributes.
        count = Detection(label="crowd:count", score=max(p.score for p in people), attributes=attributes, **common)
        others = []
        if density >= settings.density_high_ratio:
            others.append(Detection(label="crowd:density_high", score=round(min(density, 1.0), 4),
                                    attributes=attributes, **common))
        for obj in frame["objects"]:
            if obj["label"] in VEHICLES:
                near = self._vehicle_near_people(Box.from_object(obj), people, aspect, settings)
                if near is not None:
                    others.append(Detection(label="vehicle:near_people", score=near[0],
                                            box_xywh_norm=tuple(obj["box_xywh_norm"]),
                                            attributes={"vehicle": obj["label"], **near[1]}, **common))
        return count, others

    @staticmethod
    def _vehicle_near_people(vehicle: Box, people: list[Box], aspect: float,
                             settings: CrowdSettings) -> tuple[float, dict[str, Any]] | None:
        """Score and attributes when people (not its occupants) are within ``vehicle_near_gap`` person heights."""
        best, near_count, closest = 0.0, 0, None
        for person in people:
            if person.intersection(vehicle) >= OCCUPANT_CONTAINMENT * person.area:
                continue
            gap = vehicle.gap(person, aspect) / max(person.h, 1e-6)
            if gap > settings.vehicle_near_gap:
                continue
            near_count += 1
            # Touching or overlapping scores the detectors' joint confidence; further away, up to half less.
            proximity = 1.0 - 0.5 * gap / settings.vehicle_near_gap if settings.vehicle_near_gap else 1.0
            score = float(np.sqrt(vehicle.score * person.score)) * proximity
            if score > best:
                best, closest = score, gap
        if not near_count:
            return None
        return round(best, 4), {"people_near": near_count, "gap_person_heights": round(closest or 0.0, 3)}

    def _dispersal(self, motion: MotionOutput, frames: list[dict[str, Any]], people_by_frame: list[list[Box]],
                   aspect: float, settings: CrowdSettings) -> tuple[list[dict[str, Any]], list[Detection]]:
        energy_scale = self.settings.analyzers.motion.energy_scale
        frame_times = np.array([f["t_s"] for f in frames])
        windows, detections = [], []
        previous_speed: float | None = None
        for window, grid in zip(motion.data.get("windows", []), motion.direction_grid):
            # The people of the sampled frame nearest the window's middle.
            middle = (window["t_start_s"] + window["t_end_s"]) / 2
            people = people_by_frame[int(np.argmin(np.abs(frame_times - middle)))]
            if not people:
                previous_speed = None
                continue
            flow = crowd_motion(grid, people, aspect)
            jump = flow["speed"] - previous_speed if previous_speed is not None else 0.0
            previous_speed = flow["speed"]
            sudden = 1.0 - np.exp(-max(jump, 0.0) / energy_scale)
            spread = max(flow["outwardness"], flow["direction_entropy"])
            score = round(float(sudden * spread), 4)
            windows.append({"t_start_s": window["t_start_s"], "t_end_s": window["t_end_s"], "people": len(people),
                            "speed": round(flow["speed"], 5), "speed_jump": round(jump, 5),
                            # Without motion there is no direction to agree on.
                            "coherence": round(1.0 - flow["direction_entropy"], 4) if flow["speed"] > 0 else None,
                            "outwardness": round(flow["outwardness"], 4), "dispersal": score})
            if len(people) >= settings.dispersal_min_people and score >= settings.dispersal_min_score:
                detections.append(Detection(
                    analyzer=self.name, modality="visual", label="crowd:dispersal", score=score,
                    t_start_s=window["t_start_s"], t_end_s=window["t_end_s"], model_id=MODEL_ID,
                    attributes={k: windows[-1][k] for k in ("people", "speed_jump", "coherence", "outwardness")}))
        return windows, detections

