"""Motion from dense optical flow on the small greyscale frames.

Farneback flow between consecutive motion frames, in frame widths per second
(so it does not depend on resolution or frame rate), is pooled into windows:
``motion:energy`` scores how much of the view moves how fast; ``motion:burst``
scores how suddenly speeds change from one flow field to the next, the
quantity behind Violent Flows' magnitude-change histograms.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..config import MotionSettings
from ..domain import Detection, Media, MotionFrames
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer

log = logging.getLogger(__name__)

DIRECTION_BINS = 8
GRID_COLUMNS = 16
# A moving pixel must also change a little: flow on flat areas and along straight edges is unconstrained
# (the aperture problem), and noise alone gives it speed there.
FLOW_SUPPORT_GREY_LEVELS = 4
MODEL_ID = "farneback-flow"


def _empty_grid() -> np.ndarray:
    return np.zeros((0, 1, GRID_COLUMNS, DIRECTION_BINS), np.float32)


@dataclass
class MotionOutput(AnalyzerOutput):
    """``direction_grid`` (not JSON): per window, cell and direction, the mean speed of moving pixels.

    Shape (windows, rows, GRID_COLUMNS, DIRECTION_BINS), rows following the
    frame's aspect ratio. Speeds are in frame widths per second, averaged over
    the cell's pixels (still ones count as zero). Bin ``b`` holds directions
    around ``b * 45`` degrees from +x towards +y (image y points down, so
    clockwise on screen). The crowd analyzer reads motion in person boxes from it.
    """

    direction_grid: np.ndarray = field(default_factory=_empty_grid)


@dataclass
class _PairStats:
    t_s: float
    speed_mean: float
    speed_std: float
    speed_p90: float
    moving_fraction: float
    direction_hist: np.ndarray  # (DIRECTION_BINS,) speed-weighted, moving pixels only
    speed_change: float | None  # mean |speed - previous field's speed| per pixel
    grid: np.ndarray  # (rows, cols, DIRECTION_BINS)


def optical_flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Dense Farneback flow (H, W, 2) in pixels per frame, tuned for ~160 px wide frames."""
    return cv2.calcOpticalFlowFarneback(prev, nxt, None, pyr_scale=0.5, levels=3, winsize=9,
                                        iterations=3, poly_n=5, poly_sigma=1.1, flags=0)


def direction_entropy(hist: np.ndarray) -> float:
    """Entropy of a direction histogram, 0 (one direction or none) to 1 (uniform)."""
    total = float(hist.sum())
    if total <= 0:
        return 0.0
    p = hist[hist > 0] / total
    return float(-(p * np.log(p)).sum() / np.log(len(hist)))


def grid_shape(height: int, width: int) -> tuple[int, int]:
    return max(1, round(GRID_COLUMNS * height / width)), GRID_COLUMNS


def _cell_index(height: int, width: int) -> np.ndarray:
    rows, cols = grid_shape(height, width)
    r = np.minimum(np.arange(height) * rows // height, rows - 1)
    c = np.minimum(np.arange(width) * cols // width, cols - 1)
    return (r[:, None] * cols + c[None, :]).ravel()


def _pair_stats(motion: MotionFrames, settings: MotionSettings) -> list[_PairStats]:
    gray = motion.gray
    n, height, width = gray.shape
    rows, cols = grid_shape(height, width)
    cells = _cell_index(height, width)
    cell_pixels = np.bincount(cells, minlength=rows * cols).astype(np.float64)
    stats: list[_PairStats] = []
    previous_speed: np.ndarray | None = None
    for i in range(1, n):
        dt = float(motion.times_s[i] - motion.times_s[i - 1])
        if dt <= 0:
            dt = 1.0 / motion.fps
        support = cv2.absdiff(gray[i], gray[i - 1]) > FLOW_SUPPORT_GREY_LEVELS
        if support.any():
            velocity = optical_flow(gray[i - 1], gray[i]) / (width * dt)
            speed, angle = cv2.cartToPolar(velocity[..., 0], velocity[..., 1])
        else:  # nothing changed, so nothing moved: a still camera's usual case, and flow is the main cost
            speed = angle = np.zeros((height, width), np.float32)
        moving = (speed > settings.moving_speed) & support
        bins = (np.floor(angle / (2 * np.pi) * DIRECTION_BINS + 0.5).astype(np.int64) % DIRECTION_BINS).ravel()
        weights = np.where(moving, speed, 0.0).ravel()
        hist = np.bincount(bins, weights=weights, minlength=DIRECTION_BINS)
        grid = np.bincount(cells * DIRECTION_BINS + bins, weights=weights, minlength=rows * cols * DIRECTION_BINS)
        grid = (grid.reshape(rows * cols, DIRECTION_BINS) / cell_pixels[:, None]).reshape(rows, cols, DIRECTION_BINS)
        change = float(np.abs(speed - previous_speed).mean()) if previous_speed is not None else None
        stats.append(_PairStats(
            t_s=float(motion.times_s[i]), speed_mean=float(speed.mean()), speed_std=float(speed.std()),
            speed_p90=float(np.percentile(speed, 90)), moving_fraction=float(moving.mean()),
            direction_hist=hist, speed_change=change, grid=grid.astype(np.float32),
        ))
        previous_speed = speed
    return stats


def _squash(value: float, scale: float) -> float:
    """0 at 0, 0.63 at ``scale``, towards 1 beyond."""
    return float(1.0 - np.exp(-max(value, 0.0) / scale))


def _windows(pairs: list[_PairStats], settings: MotionSettings, duration_s: float) -> tuple[list[dict], np.ndarray]:
    by_window: dict[int, list[_PairStats]] = {}
    for pair in pairs:
        # A pair ending exactly on a boundary belongs to the window it ends.
        key = max(0, int(np.ceil(pair.t_s / settings.window_s)) - 1)
        by_window.setdefault(key, []).append(pair)
    windows, grids = [], []
    previous_speed = None
    for key in sorted(by_window):
        group = by_window[key]
        speed_mean = float(np.mean([p.speed_mean for p in group]))
        changes = [p.speed_change for p in group if p.speed_change is not None]
        speed_change = float(np.mean(changes)) if changes else 0.0
        hist = np.sum([p.direction_hist for p in group], axis=0)
        t_start = key * settings.window_s
        windows.append({
            "t_start_s": round(t_start, 3),
            "t_end_s": round(min(t_start + settings.window_s, max(duration_s, group[-1].t_s)), 3),
            "speed_mean": round(speed_mean, 5),
            "speed_std": round(float(np.mean([p.speed_std for p in group])), 5),
            "speed_p90": round(float(max(p.speed_p90 for p in group)), 5),
            "moving_fraction": round(float(np.mean([p.moving_fraction for p in group])), 4),
            "direction_entropy": round(direction_entropy(hist), 4),
            "speed_change": round(speed_change, 5),
            "energy_jump": round(speed_mean - previous_speed, 5) if previous_speed is not None else 0.0,
            "energy": round(_squash(speed_mean, settings.energy_scale), 4),
            "burst": round(_squash(speed_change, settings.burst_scale), 4),
        })
        grids.append(np.mean([p.grid for p in group], axis=0))
        previous_speed = speed_mean
    return windows, (np.stack(grids).astype(np.float32) if grids else _empty_grid())


@register_analyzer
class MotionAnalyzer(Analyzer):
    name = "motion"
    media_types = frozenset({"video"})

    def analyze(self, media: Media, context: AnalysisContext) -> MotionOutput:
        settings = self.settings.analyzers.motion
        motion = media.motion
        pairs = _pair_stats(motion, settings) if motion is not None and len(motion.gray) >= 2 else []
        windows, grid = _windows(pairs, settings, media.duration_s)
        detections = []
        for window in windows:
            common = {"analyzer": self.name, "modality": "visual", "t_start_s": window["t_start_s"],
                      "t_end_s": window["t_end_s"], "model_id": MODEL_ID}
            if window["energy"] >= settings.min_score:
                detections.append(Detection(label="motion:energy", score=window["energy"], **common, attributes={
                    k: window[k] for k in ("speed_mean", "speed_p90", "moving_fraction", "direction_entropy")}))
            if window["burst"] >= settings.min_score:
                detections.append(Detection(label="motion:burst", score=window["burst"], **common, attributes={
                    k: window[k] for k in ("speed_change", "energy_jump", "speed_mean")}))
        log.debug("motion analysed", extra={"pairs": len(pairs), "windows": len(windows)})
        data = {
            "fps": motion.fps if motion is not None else None,
            "window_s": settings.window_s,
            "windows": windows,
        }
        return MotionOutput(detections=detections, data=data, direction_grid=grid)
