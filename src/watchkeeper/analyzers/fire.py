"""Fire and smoke from colour and shape, and on video from flicker and slow grey change.

Fire: pixels pass classic fire-colour rules (R >= G > B with a bright red
channel; in YCbCr, Y > Cb, Cr > Cb by a margin and each channel on the fire side
of the image mean). Their connected regions, colour moments, brightness,
saturation and a hue histogram of bright saturated pixels feed a logistic
regression (``data/fire_colour_head.json``, fitted on development photos; the
training command is in that file). On video the score is scaled by how much
the fire region flickers in place in the dense grey motion frames: a
fire-coloured region that stays still (a poster, an orange wall) or moves
away (an orange jacket) keeps only half its score.

Smoke (video only: in one still frame a grey wall or an overcast sky looks
just like it): against a slowly updated background, pixels that turn
greyish and lose texture (smoke blurs what is behind it) and stay so for
``SMOKE_MIN_SECONDS``; people passing by do not stay. Pixels near
fire-coloured ones are left out: a flame flickering away leaves the same trace.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..domain import Detection, Frame, Media, MotionFrames
from ..errors import ModelUnavailableError
from .base import AnalysisContext, Analyzer, AnalyzerOutput, register_analyzer

log = logging.getLogger(__name__)

MODEL_ID = "fire-colour-lr"
HEAD_RESOURCE = "data/fire_colour_head.json"
FEATURE_VERSION = 3
# Colour features are computed with the longest side at this size: cheap and resolution-independent.
WORK_SIZE = 320
# Chen et al.'s red threshold and Celik & Demirel's Cr - Cb margin.
FIRE_MIN_RED = 115
FIRE_MIN_CR_MINUS_CB = 40
MIN_REGION_FRACTION = 0.0005
HUE_BINS = 12
MAX_SKEW = 3.0
# Flicker: mean per-pixel temporal grey std (levels) in the fire region that counts as clear flicker.
FLICKER_SCALE = 6.0
FLICKER_SPAN_S = 1.0
STATIC_FIRE_WEIGHT = 0.5
# Smoke.
SMOKE_MAX_SATURATION = 0.2
SMOKE_VALUE_RANGE = (0.25, 0.95)
SMOKE_TEXTURE_DROP = 0.7
SMOKE_CHANGED_GREY_LEVELS = 6
SMOKE_AREA_SCALE = 0.02
SMOKE_MIN_SECONDS = 2.0
# Thin smoke weakens the background's edges but leaves them in place; whatever hides the background does not.
SMOKE_MIN_EDGE_CORRELATION = 0.3
SMOKE_WINDOW_PX = 7
# Time constant of the running background the smoke test compares against.
SMOKE_BACKGROUND_TAU_S = 5.0

FEATURE_NAMES: tuple[str, ...] = (
    "fire_ratio", "largest_region", "regions", "roughness",
    "fire_val_mean", "fire_val_std", "fire_val_skew", "fire_sat_mean", "fire_hue_mean", "fire_hue_std",
    "fire_texture", "core_near_fire",
    *(f"hue_hist_{i * 360 // HUE_BINS}" for i in range(HUE_BINS)),
)


@dataclass
class Region:
    box_xywh_norm: tuple[float, float, float, float]
    area_ratio: float


@dataclass
class ColourAnalysis:
    features: np.ndarray  # (len(FEATURE_NAMES),)
    fire_mask: np.ndarray  # bool, at work size
    regions: list[Region]  # largest first
    small_rgb: np.ndarray


def work_size(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = WORK_SIZE / max(height, width)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)


def fire_pixels(rgb: np.ndarray) -> np.ndarray:
    """Boolean mask of fire-coloured pixels (RGB and YCbCr rules together)."""
    channels = rgb.astype(np.int16)
    r, g, b = channels[..., 0], channels[..., 1], channels[..., 2]
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    y, cr, cb = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    rgb_rule = (r > FIRE_MIN_RED) & (r >= g) & (g > b)
    ycc_rule = ((y > cb) & (cr > cb) & (cr - cb >= FIRE_MIN_CR_MINUS_CB)
                & (y > y.mean()) & (cb < cb.mean()) & (cr > cr.mean()))
    return rgb_rule & ycc_rule


def _regions(mask: np.ndarray) -> tuple[list[Region], np.ndarray, np.ndarray]:
    """Connected regions of a mask, largest first, with the label image and areas."""
    height, width = mask.shape
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA] / (height * width)
    order = np.argsort(-areas)
    regions = [
        Region((stats[1 + i, 0] / width, stats[1 + i, 1] / height, stats[1 + i, 2] / width, stats[1 + i, 3] / height),
               float(areas[i]))
        for i in order if areas[i] >= MIN_REGION_FRACTION
    ]
    return regions, labels, areas


def _moments(values: np.ndarray) -> tuple[float, float, float]:
    if values.size < 3:
        return 0.0, 0.0, 0.0
    mean, std = float(values.mean()), float(values.std())
    skew = float(((values - mean) ** 3).mean() / (std ** 3 + 1e-6))
    # Near-constant values make the skewness explode; bounded, it cannot outvote every other feature.
    return mean, std, float(np.clip(skew, -MAX_SKEW, MAX_SKEW))


def colour_analysis(rgb: np.ndarray) -> ColourAnalysis:
    small = work_size(rgb)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV).astype(np.float32)
    hue, sat, val = hsv[..., 0] * 2, hsv[..., 1] / 255, hsv[..., 2] / 255
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    raw = fire_pixels(small)
    mask = cv2.morphologyEx(raw.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    regions, labels, areas = _regions(mask)
    f: dict[str, float] = {}
    # Square roots tame the long tail of area fractions for the linear model.
    f["fire_ratio"] = float(np.sqrt(raw.mean()))
    f["largest_region"] = float(np.sqrt(areas.max())) if areas.size else 0.0
    f["regions"] = float(np.log1p(len(regions)))
    if areas.size:
        largest = (labels == 1 + int(np.argmax(areas))).astype(np.uint8)
        contours, _ = cv2.findContours(largest, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        perimeter = sum(cv2.arcLength(c, True) for c in contours)
        f["roughness"] = perimeter / np.sqrt(largest.sum() + 1) / 10  # flames have ragged edges
    else:
        f["roughness"] = 0.0
    f["fire_val_mean"], f["fire_val_std"], f["fire_val_skew"] = _moments(val[raw])
    f["fire_sat_mean"] = float(sat[raw].mean()) if raw.any() else 0.0
    hue_mean, hue_std, _ = _moments(hue[raw])
    f["fire_hue_mean"], f["fire_hue_std"] = hue_mean / 60, hue_std / 60
    laplacian = np.abs(cv2.Laplacian(gray, cv2.CV_32F))
    f["fire_texture"] = float(laplacian[raw].mean() / 50) if raw.any() else 0.0
    # Flames have a bright, whitish-yellow core next to the coloured body.
    core = (val > 0.9) & (sat < 0.45) & (small[..., 0] > 200)
    near_fire = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    f["core_near_fire"] = float(np.sqrt((core & near_fire).mean()))
    bright_saturated = (sat > 0.35) & (val > 0.5)
    hue_bin = np.minimum((hue / (360 / HUE_BINS)).astype(int), HUE_BINS - 1)
    hist = np.bincount(hue_bin[bright_saturated], minlength=HUE_BINS) / hue.size
    for i in range(HUE_BINS):
        f[f"hue_hist_{i * 360 // HUE_BINS}"] = float(np.sqrt(hist[i]))
    features = np.array([f[name] for name in FEATURE_NAMES], np.float64)
    return ColourAnalysis(features, mask, regions, small)


@dataclass(frozen=True)
class ColourHead:
    """Standardise, then logistic regression: P(fire | colour features)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def probability(self, features: np.ndarray) -> float:
        z = float(((features - self.mean) / self.scale) @ self.coef + self.intercept)
        return float(1.0 / (1.0 + np.exp(-z)))

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> ColourHead:
        if spec.get("feature_version") != FEATURE_VERSION or tuple(spec.get("features", ())) != FEATURE_NAMES:
            raise ModelUnavailableError(
                f"{HEAD_RESOURCE} was fitted on other colour features (version {spec.get('feature_version')}); "
                "refit it with: python -m watchkeeper.analyzers.fire data/eval/fire"
            )
        arrays = (np.asarray(spec[key], np.float64) for key in ("mean", "scale", "coef"))
        return cls(*arrays, intercept=float(spec["intercept"]))


@lru_cache(maxsize=1)
def colour_head() -> ColourHead:
    try:
        text = resources.files("watchkeeper").joinpath(HEAD_RESOURCE).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ModelUnavailableError(f"the fire colour head {HEAD_RESOURCE} is missing from the package") from exc
    return ColourHead.from_dict(json.loads(text))


def _flicker(mask: np.ndarray, motion: MotionFrames | None, t_s: float) -> float | None:
    """Mean per-pixel temporal grey std inside ``mask`` over the motion frames around ``t_s``; None without them."""
    if motion is None:
        return None
    near = np.abs(motion.times_s - t_s) <= FLICKER_SPAN_S / 2
    if near.sum() < 3:
        return None
    if not mask.any():
        return 0.0
    stack = motion.gray[near].astype(np.float32)
    region = cv2.resize(mask.astype(np.uint8), (stack.shape[2], stack.shape[1]), interpolation=cv2.INTER_NEAREST)
    if not region.any():  # a region too small for the motion frames: use its largest cell
        region = cv2.resize(mask.astype(np.float32), (stack.shape[2], stack.shape[1]), interpolation=cv2.INTER_AREA)
        region = (region >= region.max()).astype(np.uint8)
    return float(stack.std(axis=0)[region.astype(bool)].mean())


def _steady(mask: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Fire pixels that were near fire pixels in the previous sampled frame too.

    Flames flicker in place; an orange object that moved away changes its
    pixels just as much, but none of them stay fire-coloured.
    """
    if previous is None or previous.shape != mask.shape:
        return mask
    return mask & cv2.dilate(previous.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)


def _greyish(small: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV).astype(np.float32)
    sat, val = hsv[..., 1] / 255, hsv[..., 2] / 255
    return (sat < SMOKE_MAX_SATURATION) & (val > SMOKE_VALUE_RANGE[0]) & (val < SMOKE_VALUE_RANGE[1])


def _local(values: np.ndarray) -> np.ndarray:
    return cv2.blur(values, (SMOKE_WINDOW_PX, SMOKE_WINDOW_PX))


def _squash(value: float, scale: float) -> float:
    return float(1.0 - np.exp(-max(value, 0.0) / scale))


class SmokeTracker:
    """Per-video state: a running grey background, its edges, and since when each pixel looks like smoke."""

    def __init__(self) -> None:
        self._background = np.zeros(0, np.float32)
        self._background_edges = np.zeros(0, np.float32)
        self._since = np.zeros(0)
        self._t_s = 0.0

    def update(self, colour: ColourAnalysis, t_s: float) -> tuple[float, list[Region]]:
        gray = cv2.cvtColor(colour.small_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        edges = cv2.Laplacian(gray, cv2.CV_32F)
        if self._background.shape != gray.shape:
            self._background, self._background_edges = gray, edges
            self._since = np.full(gray.shape, np.inf)
            self._t_s = t_s
            return 0.0, []
        changed = np.abs(gray - self._background) > SMOKE_CHANGED_GREY_LEVELS
        texture, background_texture = _local(np.abs(edges)), _local(np.abs(self._background_edges))
        blurred = texture < SMOKE_TEXTURE_DROP * background_texture
        correlation = _local(edges * self._background_edges) / np.sqrt(
            _local(edges**2) * _local(self._background_edges**2) + 1e-6)
        see_through = correlation > SMOKE_MIN_EDGE_CORRELATION
        near_fire = cv2.dilate(colour.fire_mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        looks_like_smoke = changed & _greyish(colour.small_rgb) & blurred & see_through & ~near_fire
        candidates = cv2.morphologyEx(looks_like_smoke.astype(np.uint8), cv2.MORPH_OPEN,
                                      np.ones((5, 5), np.uint8)).astype(bool)
        self._since = np.where(candidates, np.minimum(self._since, t_s), np.inf)
        lasting = candidates & (t_s - self._since >= SMOKE_MIN_SECONDS)
        # The background follows the scene slowly, but not where smoke may be building up.
        rate = 1.0 - np.exp(-(t_s - self._t_s) / SMOKE_BACKGROUND_TAU_S)
        self._background = np.where(candidates, self._background, (1 - rate) * self._background + rate * gray)
        self._background_edges = np.where(
            candidates, self._background_edges, (1 - rate) * self._background_edges + rate * edges)
        self._t_s = t_s
        regions, _, _ = _regions(lasting)
        return _squash(float(sum(r.area_ratio for r in regions)), SMOKE_AREA_SCALE), regions


@register_analyzer
class FireAnalyzer(Analyzer):
    name = "fire"
    media_types = frozenset({"image", "video"})
    needs_frames = True

    def analyze(self, media: Media, context: AnalysisContext) -> AnalyzerOutput:
        settings = self.settings.analyzers.fire
        head = colour_head()
        is_video = media.info.media_type == "video"
        frames_data, detections = [], []
        smoke = SmokeTracker()
        previous_mask: np.ndarray | None = None
        for frame in media.frames:
            colour = colour_analysis(frame.rgb)
            colour_score = head.probability(colour.features) if colour.regions else 0.0
            flicker = None
            if is_video and colour.regions:
                flicker = _flicker(_steady(colour.fire_mask, previous_mask), media.motion, frame.t_s)
            previous_mask = colour.fire_mask
            fire_score = colour_score
            if flicker is not None:
                fire_score *= STATIC_FIRE_WEIGHT + (1 - STATIC_FIRE_WEIGHT) * _squash(flicker, FLICKER_SCALE)
            smoke_score, smoke_regions = 0.0, []
            if is_video:
                smoke_score, smoke_regions = smoke.update(colour, frame.t_s)
            fire_area = float(sum(r.area_ratio for r in colour.regions))
            frames_data.append({
                "index": frame.index, "t_s": round(frame.t_s, 3), "fire_score": round(fire_score, 4),
                "colour_score": round(colour_score, 4), "flicker": None if flicker is None else round(flicker, 3),
                "smoke_score": round(smoke_score, 4), "fire_area_ratio": round(fire_area, 5),
            })
            if fire_score >= settings.min_score:
                detections.append(self._detection(frame, "fire", fire_score, colour.regions, {
                    "fire_area_ratio": round(fire_area, 5), "flicker": frames_data[-1]["flicker"]}))
            if smoke_score >= settings.smoke_min_score:
                detections.append(self._detection(frame, "smoke", smoke_score, smoke_regions, {}))
        return AnalyzerOutput(detections=detections, data={"model": MODEL_ID, "frames": frames_data})

    def _detection(self, frame: Frame, label: str, score: float, regions: list[Region], attributes: dict) -> Detection:
        box = tuple(round(v, 4) for v in regions[0].box_xywh_norm) if regions else None
        return Detection(
            analyzer=self.name, modality="visual", label=label, score=round(min(score, 1.0), 4),
            t_start_s=frame.t_s, t_end_s=frame.t_s, frame_index=frame.index, box_xywh_norm=box, model_id=MODEL_ID,
            attributes={**attributes, "regions": [[round(v, 4) for v in r.box_xywh_norm] for r in regions[:3]]},
        )


def _load_training_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (2 * WORK_SIZE, 2 * WORK_SIZE))  # JPEG decodes at a reduced size: much faster
        return np.asarray(image.convert("RGB"))


def fit_colour_head(fire_dir: Path, normal_dir: Path, *, folds: int = 5, c: float = 0.3) -> dict[str, Any]:
    """Fit the colour head on two folders of photos; returns the JSON-ready head with its CV ROC-AUC."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    paths = [(p, 1) for p in sorted(fire_dir.iterdir())] + [(p, 0) for p in sorted(normal_dir.iterdir())]
    analyses = [colour_analysis(_load_training_image(p)) for p, _ in paths]
    x = np.stack([a.features for a in analyses])
    y = np.array([label for _, label in paths])
    has_region = np.array([bool(a.regions) for a in analyses])

    def fit(rows: np.ndarray) -> ColourHead:
        mean, scale = x[rows].mean(axis=0), x[rows].std(axis=0) + 1e-9
        # No class re-weighting: the head keeps the data's low fire prior, so an orange cat or a red
        # mug has to look much like fire before it scores high.
        model = LogisticRegression(C=c, max_iter=5000).fit((x[rows] - mean) / scale, y[rows])
        return ColourHead(mean, scale, model.coef_[0], float(model.intercept_[0]))

    aucs = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y):
        head = fit(train)
        # Scored as the analyzer scores: no fire-coloured region, no fire.
        scores = [head.probability(x[i]) if has_region[i] else 0.0 for i in test]
        aucs.append(roc_auc_score(y[test], scores))
    head = fit(np.arange(len(y)))
    rule_auc = roc_auc_score(y, x[:, FEATURE_NAMES.index("fire_ratio")])
    return {
        "feature_version": FEATURE_VERSION,
        "features": list(FEATURE_NAMES),
        "mean": head.mean.round(6).tolist(),
        "scale": head.scale.round(6).tolist(),
        "coef": head.coef.round(6).tolist(),
        "intercept": round(head.intercept, 6),
        "trained_with": f"python -m watchkeeper.analyzers.fire {fire_dir.parent}",
        "training_data": {"fire": int(y.sum()), "normal": int(len(y) - y.sum())},
        "logistic_regression_c": c,
        "cv_folds": folds,
        "cv_roc_auc_mean": round(float(np.mean(aucs)), 4),
        "cv_roc_auc_folds": [round(float(a), 4) for a in aucs],
        "fire_pixel_ratio_roc_auc": round(float(rule_auc), 4),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fit the fire colour head on a folder with fire/ and normal/ photos.")
    parser.add_argument("data_dir", type=Path, help="folder holding fire/ and normal/ (e.g. data/eval/fire)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / HEAD_RESOURCE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = fit_colour_head(args.data_dir / "fire", args.data_dir / "normal")
    args.out.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    log.info("wrote %s (5-fold ROC-AUC %.3f)", args.out, spec["cv_roc_auc_mean"])


if __name__ == "__main__":
    main()
