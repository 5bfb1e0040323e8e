"""Weapons in one frame: score the windows, keep the best of overlapping ones, say whose hand they are in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..geometry import corners_iou
from ..models.yolo import YoloV3Tiny
from .model import WeaponModel
from .windows import Box, frame_windows, holds, reach

# Windows overlapping a kept one by more than this (intersection over union) are the same weapon.
SAME_WEAPON_IOU = 0.25
# Weapons fill 20-95% of a training window's side, about half on average: the box reported is the
# window's middle half.
BOX_SHARE = 0.5


@dataclass(frozen=True)
class WeaponFinding:
    kind: str
    probability: float  # p(weapon) of the best window
    kind_confidence: float  # p(kind | weapon)
    box: Box  # estimated weapon box, frame pixels
    window: Box  # the window it was found in
    holder: Box | None  # the box of the person holding it, frame pixels
    near_wrist: bool  # a wrist keypoint of the holder is next to it


def _middle(window: np.ndarray, share: float) -> Box:
    cx, cy = (window[0] + window[2]) / 2, (window[1] + window[3]) / 2
    half = (window[2] - window[0]) * share / 2
    return (float(cx - half), float(cy - half), float(cx + half), float(cy + half))


def _within_reach(person: Box, point: tuple[float, float]) -> bool:
    x0, y0, x1, y1 = reach(person)
    return x0 <= point[0] <= x1 and y0 <= point[1] <= y1


def handed_over(wrists: Sequence[Sequence[tuple[float, float]]], given: Sequence[Box],
                searched: Sequence[Box]) -> list[list[tuple[float, float]]]:
    """Each searched person's wrists. A given person searched as given keeps their own (a person standing in
    front of them does not take them); one the whole-frame pass boxed better hands theirs to the box that
    holds their middle."""
    handed: list[list[tuple[float, float]]] = [[] for _ in searched]
    for box, points in zip(given, wrists):
        k = searched.index(box) if box in searched else next(
            (k for k, person in enumerate(searched) if holds(person, box)), None)
        if k is not None:
            handed[k].extend(points)
    return handed


class WeaponDetector:
    def __init__(self, yolo: YoloV3Tiny, model: WeaponModel, *, max_people: int = 3,
                 min_probability: float = 0.2, wrist_reach: float = 0.12) -> None:
        self.yolo = yolo
        self.model = model
        self.max_people = max_people
        self.min_probability = min_probability
        self.wrist_reach = wrist_reach

    def find(self, image_rgb: np.ndarray, people: Sequence[Box],
             wrists: Sequence[Sequence[tuple[float, float]]] = (), *, turn: int = 0) -> list[WeaponFinding]:
        """Weapons in an RGB frame, strongest first; ``people`` in frame pixels, ``wrists[k]`` person k's wrists.

        The detector finds people itself too (``frame_windows``); a person it boxes better than a given one
        takes over that person's wrists. ``turn``: the frame's place among a video's frames searched, which
        decides who is searched where more than ``max_people`` are in view (``windows.in_turn``).
        """
        windows, searched = frame_windows(self.yolo, image_rgb, people, max_people=self.max_people, turn=turn)
        searched_wrists = handed_over(wrists, people, searched)
        probability = self.model.weapon_probability(windows.features)
        candidates = np.flatnonzero(probability >= self.min_probability)
        kept: list[int] = []
        for index in candidates[np.argsort(-probability[candidates])]:
            if kept and (corners_iou(windows.boxes[index], windows.boxes[kept]) > SAME_WEAPON_IOU).any():
                continue
            kept.append(int(index))
        if not kept:
            return []
        kinds = self.model.kind_probabilities(windows.features[kept])
        findings = []
        for row, index in enumerate(kept):
            kind = int(np.argmax(kinds[row]))
            box = _middle(windows.boxes[index], BOX_SHARE)
            holder, near_wrist = self._holder(box, int(windows.person[index]), searched, searched_wrists)
            findings.append(WeaponFinding(
                kind=self.model.meta.kinds[kind], probability=float(probability[index]),
                kind_confidence=float(kinds[row, kind]), box=box,
                window=tuple(float(v) for v in windows.boxes[index]),  # type: ignore[arg-type]
                holder=None if holder is None else searched[holder], near_wrist=near_wrist,
            ))
        return findings

    def _holder(self, box: Box, region_person: int, people: Sequence[Box],
                wrists: Sequence[Sequence[tuple[float, float]]]) -> tuple[int | None, bool]:
        """The person whose wrist is nearest the weapon (within reach), else whose reach it is in."""
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        best: tuple[float, int] | None = None
        for k, person_wrists in enumerate(wrists):
            if k >= len(people):
                break
            tall = max(1.0, people[k][3] - people[k][1])
            for wx, wy in person_wrists:
                distance = float(np.hypot(wx - centre[0], wy - centre[1])) / tall
                if distance <= self.wrist_reach and (best is None or distance < best[0]):
                    best = (distance, k)
        if best is not None:
            return best[1], True
        if region_person >= 0 and _within_reach(people[region_person], centre):
            return region_person, False
        reachable = [k for k, person in enumerate(people) if _within_reach(person, centre)]
        if reachable:  # the nearest person whose hands could be there
            return min(reachable, key=lambda k: abs((people[k][0] + people[k][2]) / 2 - centre[0])), False
        return None, False
