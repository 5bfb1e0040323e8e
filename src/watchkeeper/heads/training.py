"""``watchkeeper train``: fit a head on a folder-per-label data set.

1. Features: the real pipeline runs over every file with only the analyzers
   the extractor reads (and what those read) enabled, and the ``heads``
   analyzer records the extractor's vector for every window, exactly as it
   will compute them when the head runs (batch worker processes; one bad
   file fails alone and is reported).
2. Model: standardisation + L2 logistic regression. Every file weighs the
   same whatever its number of windows, and both classes weigh the same.
   ``C`` comes from a grouped inner cross-validation (lowest weighted log-loss).
3. Cross-validation: ``StratifiedGroupKFold`` by file group, so windows of a
   clip, and files sharing a group, never straddle folds; ROC-AUC and PR-AUC
   per fold on windows and on files (a file's score is its best window, as
   in the product), reported as mean ± standard deviation.
4. Threshold, on the out-of-fold file scores: let k = floor(target false-alarm
   rate x negative files); the threshold sits halfway between the (k+1)-th
   highest negative score and the next higher score, so at most k negative
   files reach it. Clipped to [0.05, 0.99].
5. The head is refitted on all data and saved with its model card.
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from .. import __version__
from ..analyzers.base import ANALYZERS
from ..config import HeadCaptureSettings, Settings
from ..domain import MediaType
from ..errors import ConfigError
from ..taxonomy import BUILTIN_IDS
from .dataset import Dataset, Sample
from .features import FeatureExtractor
from .head import (
    CrossValidationCard, DataCard, ExtractorRef, FitCard, Head, LinearModel, MetricSummary, ModelCard,
    ThresholdCard, extractor_class, load_extractors,
)

log = logging.getLogger(__name__)

C_GRID = (0.01, 0.1, 1.0, 10.0)
DEFAULT_C = 1.0  # when too few groups are left for an inner search
INNER_FOLDS = 3
THRESHOLD_RANGE = (0.05, 0.99)
SEED = 0
MEDIA_TYPES: tuple[MediaType, ...] = ("image", "audio", "video")


@dataclass
class TrainOptions:
    category: str
    media_types: Sequence[MediaType] | None = None
    extractor: str | None = None
    window_s: float | None = None
    target_far: float = 0.01
    folds: int = 5
    c: float | None = None  # a fixed C skips the inner search
    workers: int | None = None
    use_cache: bool = True
    name: str | None = None


@dataclass
class FeatureTable:
    """Window features of the files that yielded any, with their labels and files."""

    features: np.ndarray  # (windows, dim)
    labels: np.ndarray  # (windows,) 0/1
    file_index: np.ndarray  # (windows,) index into ``files``
    windows: list[tuple[float, float]]
    files: list[Sample]
    failed: list[tuple[Sample, dict[str, str]]] = field(default_factory=list)
    skipped: list[tuple[Sample, str]] = field(default_factory=list)

    @property
    def groups(self) -> np.ndarray:
        return np.array([self.files[i].group for i in self.file_index])

    def file_labels(self) -> np.ndarray:
        return np.array([int(f.positive) for f in self.files])


@dataclass
class CrossValidation:
    folds: int
    oof: np.ndarray  # out-of-fold window probabilities
    metrics: dict[str, MetricSummary]
    chosen_c: list[float]


@dataclass
class TrainReport:
    head: Head
    table: FeatureTable
    cv: CrossValidation
    extract_s: float
    fit_s: float


# -- extractor and media types -----------------------------------------------------------------
def resolve_extractor(
    name: str | None, media_types: Sequence[MediaType] | None, dataset: Dataset, modules: Sequence[str] = ()
) -> tuple[type[FeatureExtractor], list[MediaType]]:
    """The extractor to train on and the media types the head will apply to."""
    registry = load_extractors(modules)
    present = {s.media_type for s in dataset.samples if s.media_type is not None}
    if name is not None:
        cls = extractor_class(name, modules)
        wanted = list(media_types) if media_types else [t for t in MEDIA_TYPES if t in present & cls.media_types]
        unsupported = sorted(set(wanted) - cls.media_types)
        if unsupported:
            raise ConfigError(f"extractor '{name}' does not handle {unsupported}; it handles {sorted(cls.media_types)}")
    else:
        wanted = list(media_types) if media_types else [t for t in MEDIA_TYPES if t in present]
        fitting = sorted(n for n, c in registry.items() if set(wanted) <= c.media_types)
        if len(fitting) != 1:
            raise ConfigError(
                f"{'no' if not fitting else 'more than one'} feature extractor handles {wanted or 'this data'}"
                f"{': ' + ', '.join(fitting) if fitting else ''}; choose one with --extractor "
                f"(installed: {', '.join(sorted(registry)) or 'none'})"
            )
        cls = registry[fitting[0]]
    if not wanted:
        raise ConfigError(f"the data set holds no {'/'.join(sorted(cls.media_types))} files for extractor '{cls.name}'")
    return cls, wanted


def analyzers_for(extractor: type[FeatureExtractor]) -> set[str]:
    """The analyzers the extractor reads, and the ones those read, transitively."""
    needed: set[str] = set()
    todo = list(extractor.requires)
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        try:
            importlib.import_module(f"watchkeeper.analyzers.{name}")
        except ModuleNotFoundError as exc:
            raise ConfigError(f"extractor '{extractor.name}' requires unknown analyzer '{name}'") from exc
        needed.add(name)
        todo.extend(ANALYZERS[name].requires)
    return needed


def training_settings(settings: Settings, extractor: type[FeatureExtractor], window_s: float | None) -> Settings:
    """``settings`` with only the extractor's analyzers and the feature-recording heads analyzer enabled."""
    from ..pipeline import ANALYZER_ORDER

    trained = settings.model_copy(deep=True)
    needed = analyzers_for(extractor)
    for name in ANALYZER_ORDER:
        section = getattr(trained.analyzers, name, None)
        if section is not None and name != "heads":
            section.enabled = name in needed
    heads = trained.analyzers.heads
    heads.enabled, heads.builtin, heads.files, heads.cameras = True, False, [], {}
    heads.capture = HeadCaptureSettings(extractor=extractor.name, window_s=window_s)
    return trained


# -- features ----------------------------------------------------------------------------------
def _captures(outputs: dict[str, Any]) -> list[dict[str, Any]]:
    heads = outputs.get("heads") or {}
    return [chunk["capture"] for chunk in heads["chunks"]] if "chunks" in heads else [heads["capture"]]


def extract_features(
    dataset: Dataset,
    settings: Settings,
    extractor: type[FeatureExtractor],
    media_types: Sequence[MediaType],
    *,
    window_s: float | None,
    workers: int | None = None,
    use_cache: bool = True,
    on_file: Callable[[], None] | None = None,
) -> FeatureTable:
    """Run the pipeline over the data set and collect the extractor's window features per file."""
    from ..pipeline import Pipeline

    trained = training_settings(settings, extractor, window_s)
    needed = analyzers_for(extractor)
    usable, failed, skipped = [], [], []
    for sample in dataset.samples:
        if sample.error is not None:
            failed.append((sample, sample.error))
        elif sample.media_type not in media_types:
            skipped.append((sample, f"{sample.media_type} file; the head is for {'/'.join(media_types)}"))
        else:
            usable.append(sample)
    by_source = {str(s.path): s for s in usable}
    rows: dict[str, tuple[list[tuple[float, float]], np.ndarray]] = {}
    pipeline = Pipeline(trained)
    for item in pipeline.analyze_many([s.path for s in usable], workers=workers, use_cache=use_cache):
        sample = by_source[item.source]
        if on_file is not None:
            on_file()
        if item.error is not None:
            failed.append((sample, item.error))
            continue
        result = item.result
        assert result is not None
        broken = {n: e for n, e in result.analyzer_errors.items() if n in needed or n == "heads"}
        if broken:
            name, error = next(iter(broken.items()))
            failed.append((sample, {**error, "message": f"analyzer {name}: {error['message']}"}))
            continue
        spans: list[tuple[float, float]] = []
        vectors: list[list[float]] = []
        for capture in _captures(result.outputs):
            spans.extend((float(a), float(b)) for a, b in capture["windows"])
            vectors.extend(capture["features"])
        if not vectors:
            skipped.append((sample, "no windows"))
            continue
        rows[str(sample.path)] = (spans, np.asarray(vectors, np.float64))

    files = [s for s in usable if str(s.path) in rows]  # data-set order, whatever the completion order
    dims = {rows[str(s.path)][1].shape[1] for s in files}
    if len(dims) > 1:
        raise ConfigError(f"extractor '{extractor.name}' gave feature vectors of different lengths {sorted(dims)}")
    if not files:
        raise ConfigError("no file of the data set gave features; see the failed files")
    matrices = [rows[str(s.path)][1] for s in files]
    return FeatureTable(
        features=np.concatenate(matrices),
        labels=np.concatenate([np.full(len(m), int(s.positive)) for s, m in zip(files, matrices)]),
        file_index=np.concatenate([np.full(len(m), i) for i, m in enumerate(matrices)]),
        windows=[span for s in files for span in rows[str(s.path)][0]],
        files=files,
        failed=failed,
        skipped=skipped,
    )


# -- model -------------------------------------------------------------------------------------
def sample_weights(labels: np.ndarray, file_index: np.ndarray) -> np.ndarray:
    """Each file weighs 1 over its windows; each class weighs half of the total."""
    per_file = np.bincount(file_index)
    weights = 1.0 / per_file[file_index]
    for cls in (0, 1):
        mask = labels == cls
        weights[mask] *= 0.5 * len(np.unique(file_index)) / max(1, len(np.unique(file_index[mask])))
    return weights


def fit_linear(features: np.ndarray, labels: np.ndarray, weights: np.ndarray, c: float) -> LinearModel:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features)
    model = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(features), labels, sample_weight=weights)
    return LinearModel(
        mean=[float(v) for v in scaler.mean_], scale=[float(v) for v in scaler.scale_],
        coef=[float(v) for v in model.coef_[0]], intercept=float(model.intercept_[0]),
    )


def _splits(labels: np.ndarray, groups: np.ndarray, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=SEED)
    return list(splitter.split(np.zeros(len(labels)), labels, groups))


def _max_folds(labels: np.ndarray, groups: np.ndarray) -> int:
    return min(len(np.unique(groups[labels == cls])) for cls in (0, 1))


def split_files(positive: Sequence[bool], groups: Sequence[str], folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped, stratified folds over whole files (indices into the sequences), as training uses."""
    labels, group_ids = np.asarray(positive, int), np.asarray(groups)
    folds = min(folds, _max_folds(labels, group_ids)) if labels.any() and not labels.all() else 0
    if folds < 2:
        raise ConfigError("cross-validation needs at least 2 groups of files of each class")
    return _splits(labels, group_ids, folds)


def choose_c(features: np.ndarray, labels: np.ndarray, file_index: np.ndarray, groups: np.ndarray,
             grid: Sequence[float]) -> float:
    """The C of ``grid`` with the lowest weighted log-loss in a grouped cross-validation (ties: the smaller C)."""
    if len(grid) == 1:
        return float(grid[0])
    folds = min(INNER_FOLDS, _max_folds(labels, groups))
    if folds < 2:
        return DEFAULT_C
    losses = np.zeros(len(grid))
    for train, test in _splits(labels, groups, folds):
        weights = sample_weights(labels[train], file_index[train])
        test_weights = sample_weights(labels[test], file_index[test])
        for k, c in enumerate(grid):
            model = fit_linear(features[train], labels[train], weights, c)
            p = np.clip(model.probabilities(features[test]), 1e-7, 1 - 1e-7)
            y = labels[test]
            losses[k] += -np.sum(test_weights * (y * np.log(p) + (1 - y) * np.log(1 - p))) / test_weights.sum()
    return float(grid[int(np.argmin(losses))])


def file_scores(window_scores: np.ndarray, file_index: np.ndarray, files: int) -> np.ndarray:
    """A file's score is its best window's, as the product decides on the best window."""
    scores = np.zeros(files)
    np.maximum.at(scores, file_index, window_scores)
    return scores


def cross_validate(table: FeatureTable, folds: int, grid: Sequence[float]) -> CrossValidation:
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels, groups, file_index = table.labels, table.groups, table.file_index
    folds = min(folds, _max_folds(labels, groups))
    if folds < 2:
        raise ConfigError("cross-validation needs at least 2 groups of files of each class")
    oof = np.zeros(len(labels))
    per_fold: dict[str, list[float]] = {
        k: [] for k in ("window_roc_auc", "window_pr_auc", "file_roc_auc", "file_pr_auc")
    }
    chosen = []
    file_labels = table.file_labels()
    for train, test in _splits(labels, groups, folds):
        c = choose_c(table.features[train], labels[train], file_index[train], groups[train], grid)
        chosen.append(c)
        model = fit_linear(table.features[train], labels[train], sample_weights(labels[train], file_index[train]), c)
        oof[test] = model.probabilities(table.features[test])
        test_files = np.unique(file_index[test])
        fold_file_scores = file_scores(oof[test], np.searchsorted(test_files, file_index[test]), len(test_files))
        fold_file_labels = file_labels[test_files]
        if len(np.unique(labels[test])) < 2 or len(np.unique(fold_file_labels)) < 2:
            log.warning("a cross-validation fold holds one class only; its metrics are left out")
            continue
        per_fold["window_roc_auc"].append(roc_auc_score(labels[test], oof[test]))
        per_fold["window_pr_auc"].append(average_precision_score(labels[test], oof[test]))
        per_fold["file_roc_auc"].append(roc_auc_score(fold_file_labels, fold_file_scores))
        per_fold["file_pr_auc"].append(average_precision_score(fold_file_labels, fold_file_scores))
    metrics = {k: MetricSummary.of(v) for k, v in per_fold.items() if v}
    if len(metrics) < len(per_fold):
        raise ConfigError("no cross-validation fold held both classes; add files or groups")
    return CrossValidation(folds, oof, metrics, chosen)


def choose_threshold(scores: np.ndarray, labels: np.ndarray, target_far: float) -> tuple[float, float, float]:
    """(threshold, false-alarm rate, recall) on these scores; the rule is in the module docstring."""
    negatives = np.sort(scores[labels == 0])[::-1]
    allowed = math.floor(target_far * len(negatives))
    pivot = negatives[allowed] if allowed < len(negatives) else 0.0
    higher = scores[scores > pivot]
    threshold = (pivot + (higher.min() if len(higher) else 1.0)) / 2
    threshold = float(np.clip(threshold, *THRESHOLD_RANGE))
    far = float(np.mean(scores[labels == 0] >= threshold))
    recall = float(np.mean(scores[labels == 1] >= threshold))
    return round(threshold, 4), far, recall


# -- the whole run -----------------------------------------------------------------------------
def train_head(
    dataset: Dataset,
    settings: Settings,
    options: TrainOptions,
    *,
    command: str = "",
    on_file: Callable[[], None] | None = None,
) -> TrainReport:
    known = set(BUILTIN_IDS) | {c.id for c in settings.categories}
    if options.category not in known:
        raise ConfigError(f"unknown category '{options.category}'; known: {sorted(known)} (add your own under "
                          f"'categories' in the settings)")
    if not 0 < options.target_far < 1:
        raise ConfigError("--target-far must be between 0 and 1")
    if options.folds < 2:
        raise ConfigError("--folds must be at least 2")
    modules = settings.analyzers.heads.extractor_modules
    extractor, media_types = resolve_extractor(options.extractor, options.media_types, dataset, modules)
    window_s = options.window_s or extractor.window_s

    started = time.perf_counter()
    table = extract_features(dataset, settings, extractor, media_types, window_s=window_s,
                             workers=options.workers, use_cache=options.use_cache, on_file=on_file)
    extract_s = time.perf_counter() - started
    for sample, error in table.failed:
        log.warning("file failed: %s: %s", dataset.relative(sample.path), error["message"])

    started = time.perf_counter()
    grid = (options.c,) if options.c is not None else C_GRID
    cv = cross_validate(table, options.folds, grid)
    file_labels = table.file_labels()
    oof_files = file_scores(cv.oof, table.file_index, len(table.files))
    threshold, far, recall = choose_threshold(oof_files, file_labels, options.target_far)
    c = choose_c(table.features, table.labels, table.file_index, table.groups, grid)
    model = fit_linear(table.features, table.labels, sample_weights(table.labels, table.file_index), c)
    fit_s = time.perf_counter() - started

    card = _card(dataset, settings, options, table, cv, extractor, window_s, media_types, model_c=c, grid=grid,
                 threshold=(threshold, far, recall), command=command)
    head = Head(
        name=options.name or f"{options.category}-{extractor.name}",
        category=options.category,
        extractor=ExtractorRef(name=extractor.name, version=extractor.version),
        media_types=list(media_types),
        window_s=window_s,
        feature_dim=table.features.shape[1],
        threshold=threshold,
        model=model,
        card=card,
    )
    return TrainReport(head, table, cv, extract_s, fit_s)


def _card(
    dataset: Dataset, settings: Settings, options: TrainOptions, table: FeatureTable, cv: CrossValidation,
    extractor: type[FeatureExtractor], window_s: float | None, media_types: Sequence[MediaType], *,
    model_c: float, grid: Sequence[float], threshold: tuple[float, float, float], command: str,
) -> ModelCard:
    value, far, recall = threshold
    file_labels = table.file_labels()
    n_pos, n_neg = int(file_labels.sum()), int(len(file_labels) - file_labels.sum())
    counts = dict.fromkeys(dataset.positive_labels + dataset.negative_labels, 0)
    for sample in table.files:
        counts[sample.label] += 1
    window_text = f"{window_s:g} s windows at {window_s / 2:g} s hops" if window_s else "one window per file"
    metrics = cv.metrics
    return ModelCard(
        summary=(
            f"Scores '{options.category}' on {'/'.join(media_types)} from {extractor.name} v{extractor.version} "
            f"features ({window_text}). Cross-validated file ROC-AUC {metrics['file_roc_auc']}, "
            f"PR-AUC {metrics['file_pr_auc']} over {cv.folds} grouped folds; threshold {value:g} for at most "
            f"{options.target_far:.1%} false alarms per file (out of fold: {far:.1%} false alarms, "
            f"{recall:.1%} recall)."
        ),
        trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        trained_with=command,
        watchkeeper_version=__version__,
        data=DataCard(
            description=(
                f"Folder-per-label data set '{dataset.root.name}': {n_pos} positive files "
                f"({', '.join(dataset.positive_labels)}) and {n_neg} negative files "
                f"({', '.join(dataset.negative_labels)}) that gave features."
            ),
            dataset=dataset.root.name,
            positive_labels=dataset.positive_labels,
            negative_labels=dataset.negative_labels,
            files_per_label=counts,
            positive_files=n_pos,
            negative_files=n_neg,
            positive_windows=int(table.labels.sum()),
            negative_windows=int(len(table.labels) - table.labels.sum()),
            groups=len(set(table.groups.tolist())),
            group_source=dataset.group_source,
            failed_files=len(table.failed),
            dropped_duplicates=len(dataset.dropped_duplicates),
            media_settings={
                "frame_interval_s": settings.media.frame_interval_s, "motion_fps": settings.media.motion_fps,
                "motion_width": settings.media.motion_width, "chunk_s": settings.media.chunk_s,
            },
        ),
        fit=FitCard(
            classifier="standardisation + L2 logistic regression (lbfgs)",
            c=model_c,
            c_grid=list(grid),
            selection=f"C with the lowest weighted log-loss in a {INNER_FOLDS}-fold grouped inner cross-validation, "
                      f"inside each outer fold and again on all data for the final fit",
            weighting="every file weighs the same over its windows; both classes weigh the same",
        ),
        cross_validation=CrossValidationCard(
            splitter=f"StratifiedGroupKFold(shuffle, seed {SEED}) over file groups",
            folds=cv.folds, **metrics,
        ),
        threshold=ThresholdCard(
            value=value,
            rule=(
                "on out-of-fold file scores (a file's best window): with k = floor(target x negative files), "
                "halfway between the (k+1)-th highest negative score and the next higher score, clipped to "
                f"[{THRESHOLD_RANGE[0]}, {THRESHOLD_RANGE[1]}]"
            ),
            target_false_alarm_rate=options.target_far,
            oof_false_alarm_rate=round(far, 4),
            oof_recall=round(recall, 4),
        ),
    )
