"""``watchkeeper train --format yolo``: the weapon window classifier from YOLO-format boxes and weapon-free media.

Windows are cut as the detector cuts them (``windows.frame_windows`` around
the people YOLOv3-tiny finds, and the whole frame; with ``find_people``
False, around the objects analyzer's people as given, as the shipped
classifier was trained), plus windows around each labelled weapon at a
random scale, so the classifier also sees
weapons of every size. A window is a weapon when it holds at least 75% of a
box that fills 20-95% of its side, background when it holds under 15% of
every box, and is left out otherwise.

The classifier is fitted twice: once on a sample of the background windows,
then again with the background windows the first fit scored highest (hard
negatives: hands, phones, tools, dark clothing). Cross-validation is grouped
by source image (augmented copies never straddle folds) and scores each
held-out image by its highest window, as the detector does; the threshold
is the out-of-fold score that keeps false alarms on weapon-free images at
the target rate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import Settings
from ..errors import ConfigError, MediaError
from ..heads.head import MetricSummary
from ..media import load_media
from ..models.registry import ModelRegistry
from ..models.yolo import YoloV3Tiny
from .dataset import WEAPON_KINDS, BoxDataset, NegativeFile
from .model import (FEATURES, WeaponCard, WeaponCrossValidation, WeaponDataCard, WeaponModel, WeaponModelFile,
                    WeaponThreshold)
from .windows import Region, Windows, candidate_settings, frame_windows, region_windows

log = logging.getLogger(__name__)

HIDDEN_UNITS = 128
# Background windows in the first fit, and the hardest ones added for the second.
RANDOM_NEGATIVES = 120_000
HARD_NEGATIVES = 40_000
# Positive windows are repeated up to this share of the fitting rows.
POSITIVE_SHARE = 0.2
NEGATIVE_FRAMES_PER_VIDEO = 4
SHRINK_FACTORS = (2.0, 4.0)
FEATURE_DTYPE = np.float16


@dataclass
class WeaponTrainOptions:
    folds: int = 5
    target_far: float = 0.02
    copies_per_group: int = 1
    max_images: int | None = None
    max_people: int = 3
    seed: int = 0
    name: str = "weapon-windows"
    # Windows cut once are kept here and read back by the next run on the same data.
    windows_cache: Path | None = None
    # Each labelled picture also serves, its weapons painted out, as a weapon-free one.
    painted_negatives: bool = True
    # This share of the pictures and weapon-free frames is first shrunk 2-4 times, as a person far from a
    # wide camera is: their windows are then scaled up from a few pixels, as the detector sees such people.
    shrunk_share: float = 0.0
    # Networks fitted on the same windows with seeds seed, seed + 1, ...: their log-odds are averaged, which
    # is one network as wide as all of them (trainings differ by a few hundredths on held-out data).
    members: int = 1
    # False: windows around the objects analyzer's people only, as given (``frame_windows(find_people=False)``),
    # the windows the shipped classifier was trained on.
    find_people: bool = True


@dataclass
class WindowTable:
    """Every window cut for training, by image (an image: a labelled picture or a weapon-free frame)."""

    features: list[np.ndarray] = field(default_factory=list)  # per image (n_i, FEATURE_DIM)
    labels: list[np.ndarray] = field(default_factory=list)  # per image: -1 left out, 0 background, 1+kind index
    scoring: list[np.ndarray] = field(default_factory=list)  # per image: window is one the detector would cut
    positive: list[bool] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    negative_files: int = 0
    painted_images: int = 0
    shrunk_images: int = 0
    boxes_per_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WEAPON_KINDS, 0))

    def add(self, windows: Windows, labels: np.ndarray, scoring: np.ndarray, positive: bool, group: str) -> None:
        self.features.append(windows.features.astype(FEATURE_DTYPE))
        self.labels.append(labels)
        self.scoring.append(scoring)
        self.positive.append(positive)
        self.groups.append(group)


    def save(self, path: Path, key: str) -> None:
        """All windows in one ``.npz`` (features stay float16), for retraining without cutting them again."""
        sizes = [len(labels) for labels in self.labels]
        np.savez(path, key=key, sizes=np.asarray(sizes), features=np.concatenate(self.features),
                 labels=np.concatenate(self.labels), scoring=np.concatenate(self.scoring),
                 positive=np.asarray(self.positive), groups=np.asarray(self.groups),
                 failed=json.dumps(self.failed), negative_files=self.negative_files,
                 painted_images=self.painted_images, shrunk_images=self.shrunk_images,
                 boxes_per_kind=json.dumps(self.boxes_per_kind))

    @classmethod
    def load(cls, path: Path, key: str) -> WindowTable:
        with np.load(path) as saved:
            if str(saved["key"]) != key:
                raise ConfigError(f"{path} holds windows of other data or settings; delete it to cut them again")
            bounds = np.cumsum(saved["sizes"])[:-1]
            return cls(
                features=np.split(saved["features"], bounds), labels=np.split(saved["labels"], bounds),
                scoring=np.split(saved["scoring"], bounds), positive=[bool(p) for p in saved["positive"]],
                groups=[str(g) for g in saved["groups"]], failed=[tuple(f) for f in json.loads(str(saved["failed"]))],
                negative_files=int(saved["negative_files"]), painted_images=int(saved["painted_images"]),
                shrunk_images=int(saved["shrunk_images"]),
                boxes_per_kind=json.loads(str(saved["boxes_per_kind"])),
            )


def table_key(dataset: BoxDataset, negatives: list[NegativeFile], options: WeaponTrainOptions) -> str:
    """What the windows depend on: the files chosen, how windows are cut, and the options that pick them."""
    digest = hashlib.sha256(FEATURES.encode())
    for path in [i.path for i in select_images(dataset, options)] + [n.path for n in negatives]:
        digest.update(str(path.resolve()).encode())
    digest.update(repr((options.max_people, options.seed, options.painted_negatives, options.shrunk_share,
                        options.find_people, candidate_settings())).encode())
    return digest.hexdigest()


@dataclass
class WeaponTrainReport:
    model: WeaponModel
    table: WindowTable
    extract_s: float
    fit_s: float


def label_windows(boxes_px: list[tuple[int, float, float, float, float]], windows: np.ndarray) -> np.ndarray:
    """-1 (left out), 0 (background) or 1 + kind index per window, for boxes (kind, x0, y0, x1, y1) in pixels."""
    labels = np.zeros(len(windows), int)
    if not len(windows):
        return labels
    wx0, wy0, wx1, wy1 = (windows[:, k] for k in range(4))
    side = wx1 - wx0
    claimed = np.zeros(len(windows), bool)
    for kind, x0, y0, x1, y1 in boxes_px:
        inside = (np.clip(np.minimum(x1, wx1) - np.maximum(x0, wx0), 0, None)
                  * np.clip(np.minimum(y1, wy1) - np.maximum(y0, wy0), 0, None)) / max(1e-9, (x1 - x0) * (y1 - y0))
        longest = max(x1 - x0, y1 - y0)
        holds = (inside >= 0.75) & (longest >= 0.2 * side) & (longest <= 0.95 * side)
        labels[holds & ~claimed] = 1 + kind
        claimed |= holds
        labels[(inside >= 0.15) & ~claimed] = -1
    return labels


def _people(yolo: YoloV3Tiny, image: np.ndarray, settings: Settings, *, still_image: bool) -> list[tuple[float, ...]]:
    objects = settings.analyzers.objects
    [found] = yolo.detect([image], input_size=objects.input_size, min_score=objects.min_score,
                          nms_iou=objects.nms_iou, zoom_out=objects.zoom_out_images and still_image)
    h, w = image.shape[:2]
    return [(x * w, y * h, (x + bw) * w, (y + bh) * h)
            for o in found.objects if o.label == "person" for x, y, bw, bh in [o.box_xywh_norm]]


def extract_windows(dataset: BoxDataset, negatives: list[NegativeFile], settings: Settings,
                    options: WeaponTrainOptions, on_file: Callable[[], None] | None = None) -> WindowTable:
    from PIL import Image

    rng = random.Random(options.seed)
    yolo: YoloV3Tiny = ModelRegistry(settings.models).get("yolov3-tiny")
    table = WindowTable()
    for image in select_images(dataset, options):
        try:
            with Image.open(image.path) as opened:
                rgb = np.asarray(opened.convert("RGB"))
        except OSError as exc:
            table.failed.append((str(image.path), str(exc)))
            continue
        rgb = _perhaps_shrunk(rgb, rng, options.shrunk_share, table)
        h, w = rgb.shape[:2]
        boxes = [(WEAPON_KINDS.index(b.kind), b.box[0] * w, b.box[1] * h, b.box[2] * w, b.box[3] * h)
                 for b in image.boxes]
        people = _people(yolo, rgb, settings, still_image=True)
        scored, people = frame_windows(yolo, rgb, people, max_people=options.max_people,
                                       find_people=options.find_people)
        extra = []
        for _, x0, y0, x1, y1 in boxes[:2]:  # a weapon at a random size within its window
            side = max(x1 - x0, y1 - y0) / rng.uniform(0.3, 0.6)
            cx, cy = (x0 + x1) / 2 + rng.uniform(-0.2, 0.2) * side, (y0 + y1) / 2 + rng.uniform(-0.2, 0.2) * side
            extra.append(region_windows(yolo, rgb, Region((cx - 1.25 * side, cy - 1.25 * side,
                                                            cx + 1.25 * side, cy + 1.25 * side), side)))
        windows = Windows.concat([scored, *extra])
        scoring = np.arange(len(windows.boxes)) < len(scored.boxes)
        table.add(windows, label_windows(boxes, windows.boxes), scoring, True, image.group)
        for box in image.boxes:
            table.boxes_per_kind[box.kind] += 1
        painted = painted_out(rgb, boxes) if options.painted_negatives else None
        if painted is not None:  # the same scene, people and hands without the weapon: the hardest negative
            windows, _ = frame_windows(yolo, painted, people, max_people=options.max_people,
                                       find_people=options.find_people)
            count = len(windows.boxes)
            table.add(windows, np.zeros(count, int), np.ones(count, bool), False, image.group)
            table.painted_images += 1
        if on_file:
            on_file()
    for negative in negatives:
        try:
            frames = _negative_frames(negative, settings)
        except MediaError as exc:
            table.failed.append((str(negative.path), str(exc)))
            continue
        table.negative_files += 1
        for still_image, frame in frames:
            frame = _perhaps_shrunk(frame, rng, options.shrunk_share, table)
            windows, _ = frame_windows(yolo, frame, _people(yolo, frame, settings, still_image=still_image),
                                       max_people=options.max_people, find_people=options.find_people)
            count = len(windows.boxes)
            table.add(windows, np.zeros(count, int), np.ones(count, bool), False, negative.group)
        if on_file:
            on_file()
    return table


# Weapons covering more of the picture than this leave too little scene to paint them out of.
MAX_PAINTED_SHARE = 0.25


def painted_out(rgb: np.ndarray, boxes_px: list[tuple[int, float, float, float, float]]) -> np.ndarray | None:
    """The picture with its weapons painted out (OpenCV's Telea inpainting over each box and a margin)."""
    import cv2

    h, w = rgb.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    for _, x0, y0, x1, y1 in boxes_px:
        mx, my = 0.15 * (x1 - x0), 0.15 * (y1 - y0)
        mask[max(0, int(y0 - my)):int(y1 + my) + 1, max(0, int(x0 - mx)):int(x1 + mx) + 1] = 255
    if mask.mean() / 255 > MAX_PAINTED_SHARE:
        return None
    return cv2.inpaint(np.ascontiguousarray(rgb), mask, 5, cv2.INPAINT_TELEA)


def select_images(dataset: BoxDataset, options: WeaponTrainOptions) -> list:
    """``copies_per_group`` images of each group (augmented copies add little), at most ``max_images``."""
    rng = random.Random(options.seed)
    by_group: dict[str, list] = {}
    for image in dataset.images:
        by_group.setdefault(image.group, []).append(image)
    groups = sorted(by_group)
    rng.shuffle(groups)
    chosen = []
    for group in groups:
        members = by_group[group]
        chosen += rng.sample(members, min(options.copies_per_group, len(members)))
        if options.max_images and len(chosen) >= options.max_images:
            break
    return chosen[:options.max_images] if options.max_images else chosen


def shrunk(rgb: np.ndarray, factor: float) -> np.ndarray:
    """The picture ``factor`` times smaller (pixels averaged, as a camera's sensor does)."""
    import cv2

    height, width = rgb.shape[:2]
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return np.ascontiguousarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))


def _perhaps_shrunk(rgb: np.ndarray, rng: random.Random, share: float, table: WindowTable) -> np.ndarray:
    """``rgb`` shrunk 2-4 times for ``share`` of the calls (counted in the table), else as it is. Draws nothing
    when ``share`` is 0, so a recipe without shrinking cuts the same windows as before the option existed."""
    if not share or rng.random() >= share:
        return rgb
    table.shrunk_images += 1
    return shrunk(rgb, rng.uniform(*SHRINK_FACTORS))


def _negative_frames(negative: NegativeFile, settings: Settings) -> list[tuple[bool, np.ndarray]]:
    media = load_media(negative.path, settings=settings.media, frame_interval_s=0.5)
    frames = media.frames
    if not frames:
        raise MediaError(f"{negative.path}: no picture in it")
    if len(frames) > NEGATIVE_FRAMES_PER_VIDEO:
        picks = np.linspace(0, len(frames) - 1, NEGATIVE_FRAMES_PER_VIDEO).round().astype(int)
        frames = [frames[k] for k in picks]
    return [(media.info.media_type == "image", f.rgb) for f in frames]


def _rows(table: WindowTable, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.concatenate([table.features[i] for i in images])
    labels = np.concatenate([table.labels[i] for i in images])
    keep = labels >= 0
    return features[keep], labels[keep]


def fit_weapon_weights(features: np.ndarray, labels: np.ndarray, seed: int,
                       members: int = 1) -> dict[str, np.ndarray]:
    """Standardisation, the weapon/background network (with a hard-negative round) and the kind softmax.

    With several ``members``, each network is fitted with its own seed (its own background sample and start)
    and the weights are those of their averaged log-odds: the hidden layers side by side, the output weights
    divided among them.
    """
    mean = features.mean(axis=0, dtype=np.float64).astype(np.float32)
    scale = features.std(axis=0, dtype=np.float64).astype(np.float32)
    scale[scale < 1e-6] = 1.0
    networks = [_fit_network(features, labels, mean, scale, seed + member) for member in range(members)]
    positive_rows = np.flatnonzero(labels > 0)
    kind_w, kind_b = _kind_weights((features[positive_rows].astype(np.float32) - mean) / scale,
                                   labels[positive_rows] - 1)
    return {"mean": mean, "scale": scale,
            "hidden_w": np.concatenate([n.coefs_[0] for n in networks], axis=1),
            "hidden_b": np.concatenate([n.intercepts_[0] for n in networks]),
            "out_w": np.concatenate([n.coefs_[1] for n in networks]) / members,
            "out_b": np.mean([n.intercepts_[1] for n in networks], axis=0),
            "kind_w": kind_w, "kind_b": kind_b}


def _fit_network(features: np.ndarray, labels: np.ndarray, mean: np.ndarray, scale: np.ndarray, seed: int):
    """One weapon/background network: fitted on a sample of the background, then again with its hardest windows."""
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(seed)
    positive_rows = np.flatnonzero(labels > 0)
    negative_rows = np.flatnonzero(labels == 0)

    def fit(negative_pick: np.ndarray) -> MLPClassifier:
        repeats = max(1, round(POSITIVE_SHARE * len(negative_pick) / max(1, len(positive_rows))))
        rows = np.concatenate([negative_pick, np.tile(positive_rows, repeats)])
        rng.shuffle(rows)
        x = (features[rows].astype(np.float32) - mean) / scale
        return MLPClassifier(hidden_layer_sizes=(HIDDEN_UNITS,), alpha=1e-2, max_iter=30, early_stopping=True,
                             random_state=seed).fit(x, (labels[rows] > 0).astype(int))

    first_pick = rng.choice(negative_rows, min(RANDOM_NEGATIVES, len(negative_rows)), replace=False)
    network = fit(first_pick)
    negative_scores = np.concatenate([
        network.predict_proba((features[chunk].astype(np.float32) - mean) / scale)[:, 1]
        for chunk in np.array_split(negative_rows, max(1, len(negative_rows) // 50_000))])
    hardest = negative_rows[np.argsort(-negative_scores)[:HARD_NEGATIVES]]
    return fit(np.union1d(first_pick, hardest))


def _kind_weights(x: np.ndarray, kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax weights over every kind; a kind without examples is never chosen, a lone kind always is."""
    from sklearn.linear_model import LogisticRegression

    weights = np.zeros((x.shape[1], len(WEAPON_KINDS)), np.float32)
    bias = np.full(len(WEAPON_KINDS), -30.0, np.float32)
    present = np.unique(kinds)
    if len(present) == 1:
        bias[present[0]] = 0.0
        return weights, bias
    fitted = LogisticRegression(C=0.05, max_iter=2000, class_weight="balanced").fit(x, kinds)
    if len(present) == 2:  # binary: one row of coefficients, for the second class; split it symmetrically
        for sign, kind in zip((-0.5, 0.5), fitted.classes_):
            weights[:, kind], bias[kind] = sign * fitted.coef_[0], sign * fitted.intercept_[0]
        return weights, bias
    for row, kind in enumerate(fitted.classes_):
        weights[:, kind], bias[kind] = fitted.coef_[row], fitted.intercept_[row]
    return weights, bias


def image_logits(model: WeaponModel, table: WindowTable, images: np.ndarray) -> np.ndarray:
    """Each image's highest weapon log-odds over the windows the detector would cut."""
    floor = -50.0  # an image without windows: surely no weapon
    return np.asarray([float(model.weapon_logit(table.features[i][table.scoring[i]]).max(initial=floor))
                       for i in images])


def platt(logits: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Slope and offset that turn out-of-fold log-odds into probabilities that mean what they say.

    The network is fitted on repeated positives and hard negatives, and an image's score is its best
    window of dozens: its raw probabilities crowd against 1.
    """
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(C=1e4, max_iter=1000).fit(logits.reshape(-1, 1), positive.astype(int))
    return float(fitted.coef_[0, 0]), float(fitted.intercept_[0])


def _recall_at(scores: np.ndarray, positive: np.ndarray, far: float) -> float:
    negatives = np.sort(scores[~positive])
    if not len(negatives) or not positive.any():
        return 0.0
    cut = negatives[min(len(negatives) - 1, int(np.floor((1 - far) * len(negatives))))]
    return float(np.mean(scores[positive] > cut))


def train_weapon_model(dataset: BoxDataset, negatives: list[NegativeFile], settings: Settings,
                       options: WeaponTrainOptions, *, command: str = "",
                       on_file: Callable[[], None] | None = None) -> WeaponTrainReport:
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    started = time.perf_counter()
    cache = options.windows_cache
    key = table_key(dataset, negatives, options) if cache else ""
    if cache and cache.exists():
        table = WindowTable.load(cache, key)
    else:
        table = extract_windows(dataset, negatives, settings, options, on_file)
        if cache:
            table.save(cache, key)
    extract_s = time.perf_counter() - started
    positive = np.asarray(table.positive)
    if positive.all() or not positive.any():
        raise MediaError("training needs pictures with weapons and weapon-free media that could be read")
    groups = np.asarray(table.groups)
    kinds = list(WEAPON_KINDS)

    def model_of(weights: dict[str, np.ndarray]) -> WeaponModel:
        return WeaponModel(_placeholder_meta(options.name, kinds), weights)

    started = time.perf_counter()
    folds = min(options.folds, len(set(groups[positive])), len(set(groups[~positive])))
    if folds < 2:
        raise ConfigError("cross-validation needs at least two source pictures with weapons and two weapon-free "
                          "files (or painted-out pictures)")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=options.seed)
    oof_logits = np.zeros(len(positive))
    aucs, prs, recalls = [], [], []
    everything = np.arange(len(positive))
    for train, test in splitter.split(everything, positive, groups):
        model = model_of(fit_weapon_weights(*_rows(table, train), seed=options.seed, members=options.members))
        oof_logits[test] = image_logits(model, table, test)
        aucs.append(roc_auc_score(positive[test], oof_logits[test]))
        prs.append(average_precision_score(positive[test], oof_logits[test]))
        recalls.append(_recall_at(oof_logits[test], positive[test], 0.05))
    slope, offset = platt(oof_logits, positive)
    oof = 1.0 / (1.0 + np.exp(-(slope * oof_logits + offset)))
    negatives_oof = np.sort(oof[~positive])
    cut_index = min(len(negatives_oof) - 1, int(np.floor((1 - options.target_far) * len(negatives_oof))))
    threshold = float(np.clip(negatives_oof[cut_index] + 1e-4, 0.01, 0.99))
    final = model_of(fit_weapon_weights(*_rows(table, everything), seed=options.seed,
                                         members=options.members)).calibrated(slope, offset)
    fit_s = time.perf_counter() - started

    all_labels = np.concatenate(table.labels)
    networks = (f"one-hidden-layer network of {HIDDEN_UNITS} units" if options.members == 1 else
                f"{options.members} one-hidden-layer networks of {HIDDEN_UNITS} units, log-odds averaged")
    card = WeaponCard(
        summary=(f"Weapon windows ({', '.join(kinds)}) on YOLOv3-tiny features: {networks}, "
                 f"{folds}-fold grouped image ROC-AUC {np.mean(aucs):.3f}"),
        trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        trained_with=command, watchkeeper_version=__version__,
        classifier=("windows around " + ("the people the detector finds (the whole-frame pass, closer looks) "
                                         if options.find_people else "the objects analyzer's people as given ")
                    + f"and over the frame; standardised features → MLP ({HIDDEN_UNITS} ReLU units, L2 1e-2, early stopping), "
                    f"{RANDOM_NEGATIVES} random then {HARD_NEGATIVES} hardest background windows"
                    + ("" if options.members == 1 else f"; {options.members} such networks, seeds "
                       f"{options.seed}-{options.seed + options.members - 1}, log-odds averaged") + ", output "
                    f"Platt-scaled on out-of-fold images (log-odds x {slope:.4g} + {offset:.4g}); "
                    f"kind: balanced multinomial logistic regression on the weapon windows"),
        data=WeaponDataCard(
            description=f"YOLO boxes from {dataset.root.name}; weapon-free media from {len(negatives)} file(s)",
            dataset=str(dataset.root), images=int(positive.sum()), groups=len(set(groups[positive])),
            boxes_per_kind=table.boxes_per_kind, skipped=dict(dataset.skipped) | (
                {"unreadable": len(table.failed)} if table.failed else {}),
            negative_files=table.negative_files, negative_frames=int((~positive).sum()) - table.painted_images,
            painted_images=table.painted_images,
            shrunk_images=table.shrunk_images,
            positive_windows=int((all_labels > 0).sum()), negative_windows=int((all_labels == 0).sum()),
        ),
        cross_validation=WeaponCrossValidation(
            splitter="StratifiedGroupKFold by source image (augmented copies share a group); an image scores its "
                     "highest window", folds=folds,
            image_roc_auc=MetricSummary.of(aucs), image_pr_auc=MetricSummary.of(prs),
            recall_at_5pct_false_alarms=MetricSummary.of(recalls),
        ),
        threshold=WeaponThreshold(
            value=round(threshold, 4), rule="out-of-fold highest-window probability (Platt-calibrated on the "
                                            "out-of-fold images) of weapon-free images at the target false-alarm rate",
            target_false_alarm_rate=options.target_far,
            oof_false_alarm_rate=round(float(np.mean(oof[~positive] >= threshold)), 4),
            oof_recall=round(float(np.mean(oof[positive] >= threshold)), 4),
        ),
    )
    final.meta = final.meta.model_copy(update={"card": card})
    return WeaponTrainReport(final, table, extract_s, fit_s)


def _placeholder_meta(name: str, kinds: list[str]) -> WeaponModelFile:
    """Metadata for a model still being fitted (cross-validation folds); ``save`` fills in the weights file."""
    empty = MetricSummary(mean=0.0, std=0.0, folds=[])
    return WeaponModelFile(
        name=name, kinds=kinds, weights_file="", weights_sha256="",
        card=WeaponCard(
            summary="", trained_at="", trained_with="", watchkeeper_version=__version__, classifier="",
            data=WeaponDataCard(description="", dataset="", images=0, groups=0, boxes_per_kind={}, skipped={},
                                negative_files=0, negative_frames=0, positive_windows=0, negative_windows=0),
            cross_validation=WeaponCrossValidation(splitter="", folds=0, image_roc_auc=empty, image_pr_auc=empty,
                                                   recall_at_5pct_false_alarms=empty),
            threshold=WeaponThreshold(value=0.5, rule="", target_false_alarm_rate=0.0, oof_false_alarm_rate=0.0,
                                      oof_recall=0.0),
        ),
    )
