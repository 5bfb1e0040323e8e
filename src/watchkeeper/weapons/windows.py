"""Feature windows over YOLOv3-tiny activations: what the weapon classifier reads.

A region of a frame is scaled so that one window becomes ``WINDOW_PX`` pixels
and run once through the YOLOv3-tiny backbone. Every square of ``CELLS`` x
``CELLS`` cells of Darknet layer 8 (stride 16), stepped by ``STEP`` cells, is
one window: the mean and the maximum of layer 8 and the mean of layer 10
(stride 32) over its area. One forward pass thus scores dozens of overlapping
windows, and a handgun next to a person fills about a third of a window once
the region around them is scaled to their size. The pass stops at layer 10:
the 1,024-channel layer after it costs as much as every layer before it.

Where to look (``frame_windows``) is shared by training and detection, so
the classifier is trained on the very windows it will be asked about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..geometry import corners_iou
from ..models.yolo import YoloV3Tiny

WINDOW_PX = 128
STRIDE_PX = 16
CELLS = WINDOW_PX // STRIDE_PX
STEP = CELLS // 2
LAYERS = (8, 10)  # Darknet layers: 256 channels at stride 16, 512 at stride 32
FEATURE_DIM = 256 * 2 + 512
# The scaled region's longer side is capped: it bounds one pass's cost.
MAX_REGION_PX = 768
# Windows smaller than this many frame pixels hold too little to judge, however far they are scaled up.
MIN_WINDOW_PX = 20
_PAD_GREY = 114

# (x0, y0, x1, y1) in frame pixels.
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Region:
    """A part of the frame to search, with the window size to search it at (frame pixels)."""

    box: Box
    window_px: float
    person: int | None = None  # index of the person it is around, if any


@dataclass
class Windows:
    features: np.ndarray  # (N, FEATURE_DIM) float32
    boxes: np.ndarray  # (N, 4) x0, y0, x1, y1 in frame pixels
    person: np.ndarray  # (N,) index of the person whose region it came from, -1 for none

    @classmethod
    def empty(cls) -> Windows:
        return cls(np.zeros((0, FEATURE_DIM), np.float32), np.zeros((0, 4)), np.zeros(0, int))

    def take(self, keep: np.ndarray) -> Windows:
        return Windows(self.features[keep], self.boxes[keep], self.person[keep])

    @classmethod
    def concat(cls, parts: Sequence[Windows]) -> Windows:
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.features for p in parts]), np.concatenate([p.boxes for p in parts]),
                   np.concatenate([p.person for p in parts]))


def _positions(cells: int) -> list[int]:
    last = max(cells - CELLS, 0)
    positions = list(range(0, last + 1, STEP))
    if positions[-1] != last:
        positions.append(last)
    return positions


def _window_totals(maps: np.ndarray, rows: np.ndarray, cols: np.ndarray, cells: int, combine: np.ufunc) -> np.ndarray:
    """``combine`` (np.add, np.maximum) of each channel over every cells x cells square at (rows x cols).

    Separable: the squares' rows are combined first, then their columns, a few whole-array operations in all.
    Returns (channels, len(rows), len(cols)).
    """
    over_rows = maps[:, rows]
    for offset in range(1, cells):
        combine(over_rows, maps[:, rows + offset], out=over_rows)
    squares = over_rows[:, :, cols]
    for offset in range(1, cells):
        combine(squares, over_rows[:, :, cols + offset], out=squares)
    return squares


# Scaled regions are padded to multiples of this. The network takes multiples of its stride, 32, but padded to
# 32 the shipped classifier reads the windows by the padding worse (measured: held-out 0.900, widened 0.950,
# wall 0.635 against 0.910, 0.961, 0.665). A region over a multiple by less than CANVAS_TRIM pixels is cut to it
# instead: a person's reach scales to 384 pixels high, and rounding made it 385 at times, padded to 448 (a sixth
# more pixels for one row).
CANVAS_STEP = 64
CANVAS_TRIM = STRIDE_PX


def _canvas_side(scaled: int) -> int:
    fit = scaled // CANVAS_STEP * CANVAS_STEP
    if fit >= WINDOW_PX and scaled - fit < CANVAS_TRIM:
        return fit
    return max(WINDOW_PX, -(-scaled // CANVAS_STEP) * CANVAS_STEP)


@dataclass(frozen=True)
class _View:
    """A region cut from the frame and scaled so that its windows become ``WINDOW_PX`` pixels, on a canvas."""

    canvas: np.ndarray
    left: int  # the region's top-left in frame pixels, after clipping
    top: int
    scale: float
    scaled_w: int
    scaled_h: int

    @classmethod
    def of(cls, image_rgb: np.ndarray, region: Region) -> _View | None:
        height, width = image_rgb.shape[:2]
        x0, y0, x1, y1 = region.box
        x0, y0 = max(0, int(round(x0))), max(0, int(round(y0)))
        x1, y1 = min(width, int(round(x1))), min(height, int(round(y1)))
        scale = WINDOW_PX / max(region.window_px, MIN_WINDOW_PX)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        longest = max(x1 - x0, y1 - y0) * scale
        if longest > MAX_REGION_PX:  # keep the middle of an over-long region
            keep = MAX_REGION_PX / scale
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            x0, x1 = max(x0, int(cx - keep / 2)), min(x1, int(cx + keep / 2))
            y0, y1 = max(y0, int(cy - keep / 2)), min(y1, int(cy + keep / 2))
        scaled_w, scaled_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
        scaled = cv2.resize(image_rgb[y0:y1, x0:x1], (scaled_w, scaled_h),
                            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        canvas_w, canvas_h = _canvas_side(scaled_w), _canvas_side(scaled_h)
        scaled_w, scaled_h = min(scaled_w, canvas_w), min(scaled_h, canvas_h)
        canvas = np.full((canvas_h, canvas_w, 3), _PAD_GREY, np.uint8)
        canvas[:scaled_h, :scaled_w] = scaled[:scaled_h, :scaled_w]
        return cls(canvas, x0, y0, scale, scaled_w, scaled_h)

    def windows(self, fine: np.ndarray, coarse: np.ndarray, region: Region) -> Windows:
        """Every window of the region from its feature maps: the mean and maximum of ``fine`` over the window's
        cells, the mean of ``coarse`` over the square under them."""
        rows = np.asarray(_positions(min(fine.shape[1], max(CELLS, -(-self.scaled_h // STRIDE_PX)))))
        cols = np.asarray(_positions(min(fine.shape[2], max(CELLS, -(-self.scaled_w // STRIDE_PX)))))
        half = CELLS // 2
        context_rows = np.minimum(rows // 2, coarse.shape[1] - half)
        context_cols = np.minimum(cols // 2, coarse.shape[2] - half)
        features = np.concatenate([_window_totals(fine, rows, cols, CELLS, np.add) / CELLS**2,
                                   _window_totals(fine, rows, cols, CELLS, np.maximum),
                                   _window_totals(coarse, context_rows, context_cols, half, np.add) / half**2])
        features = features.reshape(len(features), -1).T  # (windows, FEATURE_DIM), rows before columns
        tops = self.top + np.repeat(rows, len(cols)) * STRIDE_PX / self.scale
        lefts = self.left + np.tile(cols, len(rows)) * STRIDE_PX / self.scale
        window_px = WINDOW_PX / self.scale
        boxes = np.stack([lefts, tops, lefts + window_px, tops + window_px], axis=1)
        return Windows(np.ascontiguousarray(features, np.float32), boxes,
                       np.full(len(features), -1 if region.person is None else region.person, int))

    def frame_box(self, box_xywh_norm: tuple[float, float, float, float]) -> Box:
        """A box found on the canvas (normalised to it), in frame pixels."""
        x, y, w, h = box_xywh_norm
        canvas_h, canvas_w = self.canvas.shape[:2]
        to_frame = np.array([canvas_w, canvas_h, canvas_w, canvas_h]) / self.scale
        x0, y0, x1, y1 = np.array([x, y, x + w, y + h]) * to_frame + [self.left, self.top, self.left, self.top]
        return (float(x0), float(y0), float(x1), float(y1))


def region_windows(yolo: YoloV3Tiny, image_rgb: np.ndarray, region: Region) -> Windows:
    """Every window of one region, with its features, from one forward pass."""
    view = _View.of(image_rgb, region)
    if view is None:
        return Windows.empty()
    fine, coarse = yolo.feature_maps(view.canvas, LAYERS)
    return view.windows(fine, coarse, region)


# Relative to a person's height: the window size searched around them (a handgun or knife is about
# a tenth of a person: a third of the window) and how far their hands reach. Long guns, a third of
# a person, fit the whole-frame windows unless the person is tiny.
PERSON_WINDOW = 0.3
REACH_SIDE = 0.45
REACH_UP = 0.1
REACH_DOWN = 0.8
# The whole frame is searched too, at these fractions of its shorter side (people the object detector
# missed, long guns, close-ups). The first pass also looks for the people: at the frame's own shape and
# about 430 pixels on its shorter side, it boxes small people whole where the objects analyzer's squeezed
# 416-pixel square often boxes only their upper half, which would make their windows half the size.
FRAME_WINDOWS = (0.3, 0.6)
PERSON_MIN_SCORE = 0.25
# People shorter than this share of the frame's shorter side are looked at again, closer: at 60-100 pixels in
# the whole-frame pass, YOLOv3-tiny often boxes a person by their middle only (head, feet and an arm held out
# left out), and a box half the person's height searches windows half the size, too near the body. The closer
# look is a square of REFINE_SIDE box heights around the box, scaled to REFINE_PX pixels.
REFINE_BELOW = 0.25
REFINE_SIDE = 3.0
REFINE_PX = 192
# Boxes overlapping more than this (intersection over union) are one person.
SAME_PERSON_IOU = 0.5


def reach(person: Box) -> Box:
    """Where a person's hands can be: beside them, from just above the head to the knees."""
    x0, y0, x1, y1 = person
    tall = y1 - y0
    return (x0 - REACH_SIDE * tall, y0 - REACH_UP * tall, x1 + REACH_SIDE * tall, y0 + REACH_DOWN * tall)


def candidate_settings() -> tuple:
    """Everything that decides which windows are cut (part of a window cache's key)."""
    return (WINDOW_PX, CELLS, STEP, LAYERS, MAX_REGION_PX, MIN_WINDOW_PX, CANVAS_STEP, CANVAS_TRIM, PERSON_WINDOW,
            REACH_SIDE, REACH_UP, REACH_DOWN, FRAME_WINDOWS, PERSON_MIN_SCORE, REFINE_BELOW, REFINE_SIDE, REFINE_PX,
            SAME_PERSON_IOU)


def holds(outer: Box, inner: Box) -> bool:
    """Whether the middle of ``inner`` lies in ``outer``."""
    cx, cy = (inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


def merged_people(found: Sequence[Box], given: Sequence[Box]) -> list[Box]:
    """The people the whole-frame pass found, then those given (the objects analyzer's) that none of them
    holds: a given box whose middle lies in a found one is the same person, boxed less well."""
    return [*found, *(person for person in given if not any(holds(box, person) for box in found))]


def _largest(people: Sequence[Box], count: int) -> list[int]:
    return sorted(range(len(people)), key=lambda k: -(people[k][3] - people[k][1]))[:count]


def in_turn(people: Sequence[Box], count: int, turn: int) -> list[int]:
    """The ``count`` people searched on a frame's ``turn``: the largest on turn 0 (a photo's only one); with more
    people in view, each following turn takes the next ones by size, round and round, so that the frames of a
    video share its crowd out at the cost of ``count`` people a frame."""
    order = _largest(people, len(people))
    if len(order) <= count:
        return order
    start = turn * count % len(order)
    return [order[(start + step) % len(order)] for step in range(count)]


def representatives(people: Sequence[Box]) -> list[int]:
    """For each box, the one kept for that person: itself, or the taller box it overlaps by more than
    ``SAME_PERSON_IOU`` (a closer look can turn a partial box into one the whole-frame pass already had)."""
    boxes = np.asarray(people, float).reshape(-1, 4)
    same = list(range(len(people)))
    kept: list[int] = []
    for k in _largest(people, len(people)):
        overlaps = corners_iou(boxes[k], boxes[kept])
        if (overlaps >= SAME_PERSON_IOU).any():
            same[k] = kept[int(np.argmax(overlaps))]
        else:
            kept.append(k)
    return same


def refined(yolo: YoloV3Tiny, image_rgb: np.ndarray, people: Sequence[Box]) -> list[Box]:
    """Small people's boxes after a closer look: for each, the tallest person found there that holds the box's
    middle, where taller than the box. The closer looks stand side by side on one strip, one pass for all:
    a 192-pixel square is too small to keep two cores busy (measured in the detector: three people's closer
    looks 31 ms one by one, 23 ms on a strip)."""
    looks: list[tuple[int, _View]] = []
    for k, person in enumerate(people):
        tall = person[3] - person[1]
        cx, cy, half = (person[0] + person[2]) / 2, (person[1] + person[3]) / 2, REFINE_SIDE * tall / 2
        view = _View.of(image_rgb, Region((cx - half, cy - half, cx + half, cy + half),
                                          WINDOW_PX * 2 * half / REFINE_PX))
        if view is not None:
            looks.append((k, view))
    boxes = list(people)
    if not looks:
        return boxes
    strip = np.full((REFINE_PX, REFINE_PX * len(looks), 3), _PAD_GREY, np.uint8)
    for slot, (_, view) in enumerate(looks):
        height, width = view.canvas.shape[:2]  # at most REFINE_PX square: the region scales to REFINE_PX
        strip[:height, slot * REFINE_PX:slot * REFINE_PX + width] = view.canvas
    _, objects = yolo.feature_maps_and_objects(strip, (), min_score=PERSON_MIN_SCORE)
    closer: list[list[Box]] = [[] for _ in looks]
    for o in objects:
        if o.label != "person":
            continue
        x, y, w, h = o.box_xywh_norm
        slot = min(len(looks) - 1, int((x + w / 2) * len(looks)))  # the look that holds the box's middle
        view = looks[slot][1]
        height, width = view.canvas.shape[:2]
        on_canvas = ((x * len(looks) - slot) * REFINE_PX / width, y * REFINE_PX / height,
                     w * len(looks) * REFINE_PX / width, h * REFINE_PX / height)
        closer[slot].append(view.frame_box(on_canvas))
    for (k, _), found in zip(looks, closer):
        tall = people[k][3] - people[k][1]
        best = max((box for box in found if holds(box, people[k])), key=lambda box: box[3] - box[1], default=None)
        if best is not None and best[3] - best[1] > tall:
            boxes[k] = best
    return boxes


def person_regions(people: Sequence[Box], searched: Sequence[int]) -> list[Region]:
    """Around each searched person, at a window size of their height."""
    return [Region(reach(people[k]), PERSON_WINDOW * (people[k][3] - people[k][1]), person=k)
            for k in searched if people[k][3] > people[k][1]]


def frame_windows(yolo: YoloV3Tiny, image_rgb: np.ndarray, people: Sequence[Box], *, max_people: int,
                  turn: int = 0, find_people: bool = True) -> tuple[Windows, list[Box]]:
    """Where to look in a frame and what is there: the whole frame (whose first pass also finds people),
    then around ``max_people`` people (``in_turn``), small ones looked at again first. Returns the windows and
    the people their ``person`` indices name.

    ``find_people=False`` searches around the given people only, as given, and keeps every whole-frame window:
    the windows the shipped classifier was trained on, cut before the detector found people itself (a training
    option: classifiers trained on these rank camera-shaped frames better, measured in docs/weapons.md).
    """
    height, width = image_rgb.shape[:2]
    overview, *whole = [Region((0, 0, width, height), share * min(width, height)) for share in FRAME_WINDOWS]
    if not find_people:
        regions = person_regions(people, in_turn(people, max_people, turn))
        return (Windows.concat([region_windows(yolo, image_rgb, r) for r in [*regions, overview, *whole]]),
                list(people))
    view = _View.of(image_rgb, overview)
    if view is None:
        return Windows.empty(), list(people)
    (fine, coarse), objects = yolo.feature_maps_and_objects(view.canvas, LAYERS, min_score=PERSON_MIN_SCORE)
    found = [view.frame_box(o.box_xywh_norm) for o in objects if o.label == "person"]
    people = merged_people(found, people)
    chosen = in_turn(people, max_people, turn)
    small = [k for k in chosen if people[k][3] - people[k][1] < REFINE_BELOW * min(width, height)]
    for k, box in zip(small, refined(yolo, image_rgb, [people[k] for k in small])):
        people[k] = box
    same = representatives(people)
    kept = sorted(set(same))
    position = {k: index for index, k in enumerate(kept)}
    # Each chosen person once; where two chosen boxes were one person, the largest not searched takes the place.
    searched = list(dict.fromkeys(position[same[k]] for k in chosen))
    people = [people[k] for k in kept]
    searched += [k for k in _largest(people, len(people)) if k not in searched][:max_people - len(searched)]
    regions = person_regions(people, searched)
    cut = Windows.concat([view.windows(fine, coarse, overview), *(region_windows(yolo, image_rgb, r)
                                                                  for r in [*regions, *whole])])
    return cut.take(~left_to_their_regions(cut, [people[r.person] for r in regions if r.person is not None])), people


def left_to_their_regions(cut: Windows, searched: Sequence[Box]) -> np.ndarray:
    """Which whole-frame windows hold a searched person no taller than the window: that person's own region
    judges them at their scale, where such a window sees a small figure whole and scores it by its
    posture more than by what is in its hands (measured: it lifted weapon-free scenes to the scores of
    armed ones)."""
    left = np.zeros(len(cut.boxes), bool)
    whole = cut.person < 0
    sides = cut.boxes[:, 2] - cut.boxes[:, 0]
    for x0, y0, x1, y1 in searched:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        inside = ((cut.boxes[:, 0] <= cx) & (cx <= cut.boxes[:, 2]) & (cut.boxes[:, 1] <= cy)
                  & (cy <= cut.boxes[:, 3]))
        left |= whole & inside & (y1 - y0 <= sides)
    return left
