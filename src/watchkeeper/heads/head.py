"""A learned head: standardisation + logistic regression on one extractor's feature vectors.

A head is one small JSON file (plain numbers, no pickle: safe to load and
independent of the scikit-learn version that fitted it) holding the
category it scores, the extractor name and version its features come from,
the window length, the scaler and the coefficients, the decision threshold
and a model card saying how it was trained and how well it did in
cross-validation. ``watchkeeper train`` writes them; the ``heads`` analyzer
runs them.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ..config import Settings
from ..domain import MediaType
from ..errors import ConfigError, ModelError, ModelIntegrityError, ModelUnavailableError
from ..taxonomy import BUILTIN_IDS
from .features import EXTRACTORS, FeatureExtractor

log = logging.getLogger(__name__)

HEAD_FORMAT = "watchkeeper-head"
HEAD_FORMAT_VERSION = 1
# Modules under this package register the product's extractors when imported.
EXTRACTOR_PACKAGE = "watchkeeper.heads.extractors"
SHIPPED_HEADS = "heads"  # folder in watchkeeper/data


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class MetricSummary(_Strict):
    """One cross-validated metric: its per-fold values, their mean and standard deviation."""

    mean: float
    std: float
    folds: list[float]

    @classmethod
    def of(cls, values: Iterable[float]) -> MetricSummary:
        values = [float(v) for v in values]
        return cls(mean=round(float(np.mean(values)), 4), std=round(float(np.std(values)), 4),
                   folds=[round(v, 4) for v in values])

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.std:.3f}"


class DataCard(_Strict):
    description: str
    dataset: str
    positive_labels: list[str]
    negative_labels: list[str]
    files_per_label: dict[str, int]
    positive_files: int
    negative_files: int
    positive_windows: int
    negative_windows: int
    groups: int
    group_source: str
    failed_files: int
    dropped_duplicates: int
    media_settings: dict[str, float]


class FitCard(_Strict):
    classifier: str
    c: float
    c_grid: list[float]
    selection: str
    weighting: str


class CrossValidationCard(_Strict):
    splitter: str
    folds: int
    window_roc_auc: MetricSummary
    window_pr_auc: MetricSummary
    file_roc_auc: MetricSummary
    file_pr_auc: MetricSummary


class ThresholdCard(_Strict):
    value: float
    rule: str
    target_false_alarm_rate: float
    oof_false_alarm_rate: float
    oof_recall: float


class ModelCard(_Strict):
    summary: str
    trained_at: str
    trained_with: str
    watchkeeper_version: str
    data: DataCard
    fit: FitCard
    cross_validation: CrossValidationCard
    threshold: ThresholdCard


class LinearModel(_Strict):
    """Standardisation then logistic regression: p = logistic(((x - mean) / scale) . coef + intercept)."""

    type: Literal["logistic_regression"] = "logistic_regression"
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float

    _mean: np.ndarray = PrivateAttr()
    _scale: np.ndarray = PrivateAttr()
    _coef: np.ndarray = PrivateAttr()

    def model_post_init(self, _context: object) -> None:
        self._mean = np.asarray(self.mean, np.float64)
        self._scale = np.asarray(self.scale, np.float64)
        self._coef = np.asarray(self.coef, np.float64)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        logits = ((np.asarray(features, np.float64) - self._mean) / self._scale) @ self._coef + self.intercept
        return 0.5 * (1.0 + np.tanh(0.5 * logits))  # the logistic function, without overflow warnings


class ExtractorRef(_Strict):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)


class Head(_Strict):
    """One learned head, as saved in its JSON file.

    ``predict_proba(X)`` gives the positive-class probability of each row of
    ``X`` (windows x ``feature_dim``); a window counts as positive from
    ``threshold`` on.
    """

    format: Literal["watchkeeper-head"] = HEAD_FORMAT
    format_version: Literal[1] = HEAD_FORMAT_VERSION
    name: str = Field(min_length=1)
    category: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    extractor: ExtractorRef
    media_types: list[MediaType] = Field(min_length=1)
    window_s: float | None = Field(None, gt=0)
    feature_dim: int = Field(gt=0)
    threshold: float = Field(gt=0, lt=1)
    model: LinearModel
    card: ModelCard

    @model_validator(mode="after")
    def _shapes(self) -> Head:
        for key in ("mean", "scale", "coef"):
            length = len(getattr(self.model, key))
            if length != self.feature_dim:
                raise ValueError(f"model.{key} has {length} values; feature_dim is {self.feature_dim}")
        if min(self.model.scale) <= 0:
            raise ValueError("model.scale must be positive")
        return self

    @property
    def id(self) -> str:
        return f"head:{self.name}"

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Positive-class probability per row of ``features`` (one row: one window)."""
        x = np.atleast_2d(np.asarray(features, np.float64))
        if x.shape[1] != self.feature_dim:
            raise ModelError(
                f"head '{self.name}' takes {self.feature_dim} features per window; got {x.shape[1]} "
                f"from extractor '{self.extractor.name}'"
            )
        return self.model.probabilities(x)

    # -- files -----------------------------------------------------------------------------------
    def to_json(self) -> str:
        return self.model_dump_json(indent=1)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, text: str, *, origin: str, extractor_modules: Iterable[str] = ()) -> Head:
        """Parse and validate a head; its extractor must be installed at the version it was trained on."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"head file {origin} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != HEAD_FORMAT:
            raise ModelError(f"{origin} is not a Watchkeeper head file (no \"format\": \"{HEAD_FORMAT}\")")
        if data.get("format_version") != HEAD_FORMAT_VERSION:
            raise ModelError(
                f"head file {origin} has format_version {data.get('format_version')!r}; this Watchkeeper reads "
                f"version {HEAD_FORMAT_VERSION}: retrain it with 'watchkeeper train'"
            )
        try:
            head = cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
            )
            raise ModelError(f"invalid head file {origin}: {problems}") from exc
        head.check_extractor(origin, extractor_modules)
        return head

    @classmethod
    def load(cls, path: str | Path, *, extractor_modules: Iterable[str] = ()) -> Head:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelUnavailableError(f"cannot read head file {path}: {exc.strerror or exc}") from exc
        return cls.from_json(text, origin=str(path), extractor_modules=extractor_modules)

    def check_extractor(self, origin: str, extractor_modules: Iterable[str] = ()) -> type[FeatureExtractor]:
        """The extractor class this head runs on; refuses a missing one or another version."""
        cls = extractor_class(self.extractor.name, extractor_modules)
        if cls.version != self.extractor.version:
            raise ModelIntegrityError(
                f"head {origin} was trained on features of extractor '{self.extractor.name}' version "
                f"{self.extractor.version}, but version {cls.version} is installed: retrain the head "
                f"('watchkeeper train', its card says on what) or install the matching Watchkeeper"
            )
        unsupported = set(self.media_types) - set(cls.media_types)
        if unsupported:
            raise ModelError(
                f"head {origin} applies to {sorted(unsupported)}, which extractor '{cls.name}' does not support"
            )
        return cls


# -- extractors --------------------------------------------------------------------------------
_packaged_imported = False


def load_extractors(modules: Iterable[str] = ()) -> dict[str, type[FeatureExtractor]]:
    """Import the packaged extractors and ``modules`` (each registers its own); returns the registry."""
    global _packaged_imported
    if not _packaged_imported:
        try:
            package = importlib.import_module(EXTRACTOR_PACKAGE)
        except ModuleNotFoundError as exc:
            if exc.name != EXTRACTOR_PACKAGE:
                raise
        else:
            for info in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{EXTRACTOR_PACKAGE}.{info.name}")
        _packaged_imported = True
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"analyzers.heads.extractor_modules: cannot import '{module}': {exc}") from exc
    return EXTRACTORS


def extractor_class(name: str, modules: Iterable[str] = ()) -> type[FeatureExtractor]:
    registry = load_extractors(modules)
    if name not in registry:
        raise ModelUnavailableError(
            f"feature extractor '{name}' is not installed; installed: {sorted(registry) or 'none'}"
        )
    return registry[name]


# -- the heads a pipeline runs -----------------------------------------------------------------
@dataclass
class HeadSet:
    """The heads one set of settings runs: one per category, and per camera its own replacements."""

    site: dict[str, Head] = field(default_factory=dict)
    cameras: dict[str, dict[str, Head]] = field(default_factory=dict)
    fingerprint: str = "none"

    def for_camera(self, camera: str | None) -> dict[str, Head]:
        """Category -> head for an input from ``camera``."""
        if camera in self.cameras:
            return {**self.site, **self.cameras[camera]}
        return self.site

    def all(self) -> list[Head]:
        return [*self.site.values(), *(h for by_cat in self.cameras.values() for h in by_cat.values())]


def _by_category(heads: Iterable[tuple[str, Head]], what: str) -> dict[str, Head]:
    found: dict[str, tuple[str, Head]] = {}
    for origin, head in heads:
        if head.category in found:
            raise ConfigError(
                f"{what}: two heads for category '{head.category}': {found[head.category][0]} and {origin}"
            )
        found[head.category] = (origin, head)
    return {category: head for category, (_, head) in found.items()}


def shipped_head_texts() -> list[tuple[str, str]]:
    """(origin, JSON text) of every head in the package, by file name."""
    folder = resources.files("watchkeeper.data").joinpath(SHIPPED_HEADS)
    if not folder.is_dir():
        return []
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".json")), key=lambda f: f.name)
    return [(f"watchkeeper/data/{SHIPPED_HEADS}/{f.name}", f.read_text(encoding="utf-8")) for f in files]


def load_heads(settings: Settings) -> HeadSet:
    """The heads ``settings`` asks for, validated; raises ``ConfigError``/``ModelError`` naming the file."""
    config = settings.analyzers.heads
    modules = config.extractor_modules
    known = set(BUILTIN_IDS) | {c.id for c in settings.categories}
    digest = hashlib.sha256()

    def load_all(entries: Iterable[tuple[str, str]]) -> list[tuple[str, Head]]:
        loaded = []
        for origin, text in entries:
            head = Head.from_json(text, origin=origin, extractor_modules=modules)
            if head.category not in known:
                raise ConfigError(f"head {origin} scores unknown category '{head.category}'; known: {sorted(known)}")
            digest.update(f"{origin}\0{head.category}\0".encode() + hashlib.sha256(text.encode()).digest())
            loaded.append((origin, head))
        return loaded

    def read(path: Path) -> tuple[str, str]:
        try:
            return str(path), path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"analyzers.heads: cannot read head file {path}: {exc.strerror or exc}") from exc

    shipped = _by_category(load_all(shipped_head_texts()), "packaged heads") if config.builtin else {}
    extra = _by_category(load_all(read(p) for p in config.files), "analyzers.heads.files")
    for category in shipped.keys() & extra.keys():
        log.info("head %s replaces the packaged %s head", extra[category].name, category)
    cameras = {
        camera: _by_category(load_all(read(p) for p in paths), f"analyzers.heads.cameras.{camera}")
        for camera, paths in config.cameras.items()
    }
    if config.capture is not None:
        capture = extractor_class(config.capture.extractor, modules)
        digest.update(f"capture\0{capture.name}\0{capture.version}\0{config.capture.window_s}".encode())
    return HeadSet(site={**shipped, **extra}, cameras=cameras, fingerprint=digest.hexdigest()[:16])
