"""The weapon window classifier as saved: a JSON card beside an ``.npz`` of weights.

``p(weapon)`` per window is a one-hidden-layer network (ReLU) on the
standardised window features; which weapon it is comes from a softmax over
the same standardised features. Both run in NumPy: nothing to install.
The JSON names the weights file and its sha256, so a card never describes
other weights than its own.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ModelError
from ..heads.head import MetricSummary
from .dataset import WEAPON_KINDS
from .windows import FEATURE_DIM

MODEL_FORMAT = "watchkeeper-weapon-detector"
# Bump when windows.py changes what a feature vector means.
FEATURES = "yolov3-tiny-windows-v2"
WEIGHT_ARRAYS = ("mean", "scale", "hidden_w", "hidden_b", "out_w", "out_b", "kind_w", "kind_b")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class WeaponDataCard(_Strict):
    description: str
    dataset: str
    images: int
    groups: int
    boxes_per_kind: dict[str, int]
    skipped: dict[str, int]
    negative_files: int
    negative_frames: int
    painted_images: int = Field(0, description="Labelled pictures used again, weapons painted out, as negatives.")
    shrunk_images: int = Field(0, description="Pictures and weapon-free frames shrunk 2-4 times before their "
                                              "windows were cut, as small people in a wide view are seen.")
    positive_windows: int
    negative_windows: int


class WeaponCrossValidation(_Strict):
    splitter: str
    folds: int
    image_roc_auc: MetricSummary
    image_pr_auc: MetricSummary
    recall_at_5pct_false_alarms: MetricSummary


class WeaponThreshold(_Strict):
    value: float = Field(gt=0, lt=1)
    rule: str
    target_false_alarm_rate: float
    oof_false_alarm_rate: float
    oof_recall: float


class WeaponCard(_Strict):
    summary: str
    trained_at: str
    trained_with: str
    watchkeeper_version: str
    classifier: str
    data: WeaponDataCard
    cross_validation: WeaponCrossValidation
    threshold: WeaponThreshold


class WeaponModelFile(_Strict):
    format: Literal["watchkeeper-weapon-detector"] = MODEL_FORMAT
    format_version: Literal[1] = 1
    name: str = Field(min_length=1)
    features: Literal["yolov3-tiny-windows-v2"] = FEATURES
    kinds: list[str]
    weights_file: str
    weights_sha256: str
    card: WeaponCard


class WeaponModel:
    """A loaded weapon classifier: its card and its weights."""

    def __init__(self, meta: WeaponModelFile, weights: dict[str, np.ndarray]) -> None:
        missing = [k for k in WEIGHT_ARRAYS if k not in weights]
        if missing:
            raise ModelError(f"weapon model '{meta.name}': weights lack {missing}")
        dims = (weights["mean"].shape, weights["hidden_w"].shape[0], weights["kind_w"].shape)
        if dims != ((FEATURE_DIM,), FEATURE_DIM, (FEATURE_DIM, len(meta.kinds))):
            raise ModelError(f"weapon model '{meta.name}': weight shapes do not fit {FEATURE_DIM} features "
                             f"and kinds {meta.kinds}")
        self.meta = meta
        self.w = {k: np.asarray(weights[k], np.float32) for k in WEIGHT_ARRAYS}

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def threshold(self) -> float:
        return self.meta.card.threshold.value

    def _standardised(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, np.float32) - self.w["mean"]) / self.w["scale"]

    def weapon_logit(self, features: np.ndarray) -> np.ndarray:
        """The network's log-odds of some weapon per window (row of ``features``)."""
        if len(features) == 0:
            return np.zeros(0, np.float32)
        hidden = np.maximum(self._standardised(features) @ self.w["hidden_w"] + self.w["hidden_b"], 0.0)
        return (hidden @ self.w["out_w"] + self.w["out_b"]).reshape(-1).astype(np.float32)

    def weapon_probability(self, features: np.ndarray) -> np.ndarray:
        """p(some weapon) per window, calibrated on out-of-fold images at training (see ``calibrated``)."""
        return (0.5 * (1.0 + np.tanh(0.5 * self.weapon_logit(features)))).astype(np.float32)

    def calibrated(self, slope: float, offset: float) -> WeaponModel:
        """The same model with its log-odds mapped to ``slope * logit + offset`` (Platt scaling)."""
        weights = dict(self.w)
        weights["out_w"] = self.w["out_w"] * slope
        weights["out_b"] = self.w["out_b"] * slope + offset
        return WeaponModel(self.meta, weights)

    def kind_probabilities(self, features: np.ndarray) -> np.ndarray:
        """(windows x kinds) softmax: which weapon, given that there is one."""
        logits = self._standardised(features) @ self.w["kind_w"] + self.w["kind_b"]
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def save(self, json_path: str | Path) -> Path:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        weights_path = json_path.with_suffix(".npz")
        np.savez_compressed(weights_path, **{k: v.astype(np.float16 if "_w" in k else np.float32)
                                             for k, v in self.w.items()})
        meta = self.meta.model_copy(update={"weights_file": weights_path.name,
                                            "weights_sha256": _sha256(weights_path)})
        json_path.write_text(meta.model_dump_json(indent=1) + "\n", encoding="utf-8")
        self.meta = meta
        return json_path

    @classmethod
    def load(cls, json_path: str | Path) -> WeaponModel:
        json_path = Path(json_path)
        try:
            text = json_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelError(f"cannot read the weapon model {json_path}: {exc}") from exc
        try:
            meta = WeaponModelFile.model_validate_json(text)
        except ValidationError as exc:
            features = _stated_features(text)
            if features is not None and features != FEATURES:
                raise ModelError(f"{json_path} reads features '{features}', this version cuts '{FEATURES}': "
                                 "train it again (its card's trained_with is the command)") from exc
            raise ModelError(f"{json_path} is not a weapon model file: {exc}") from exc
        weights_path = json_path.parent / meta.weights_file
        if not weights_path.is_file():
            raise ModelError(f"{json_path}: its weights file {weights_path} is missing")
        if _sha256(weights_path) != meta.weights_sha256:
            raise ModelError(f"{weights_path} does not match the sha256 in {json_path}; retrain or restore both")
        if sorted(meta.kinds) != sorted(WEAPON_KINDS):
            raise ModelError(f"{json_path}: kinds {meta.kinds}, expected {list(WEAPON_KINDS)}")
        with np.load(weights_path) as arrays:
            return cls(meta, {k: arrays[k] for k in arrays.files})


def _stated_features(text: str) -> str | None:
    try:
        stated = json.loads(text)
    except ValueError:
        return None
    return stated.get("features") if isinstance(stated, dict) else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
