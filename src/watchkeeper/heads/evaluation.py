"""``watchkeeper eval``: measure the whole product on a folder-per-label data set.

Every file goes through the full pipeline with the user's settings (every
analyzer, the learned heads, fusion). Per file: the category's score
(``result.scores[category]``) and the product's decision (an incident of the
category was raised). Ranking metrics (ROC-AUC, PR-AUC, recall at fixed
false-alarm rates) come from the scores; accuracy, precision, recall, F1 and
the confusion matrix from the decisions.

With ``folds``, every file is instead scored by the product with a head
retrained without the file's group (the category's current head gives the
recipe: extractor, window, C, false-alarm target), so a user can measure the
learning on their own footage rather than a head that has seen it.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..errors import ConfigError
from .dataset import Dataset

log = logging.getLogger(__name__)

FALSE_ALARM_RATES = (0.01, 0.05, 0.10)
WORST_LISTED = 10


@dataclass
class FileOutcome:
    path: str
    label: str
    positive: bool
    score: float | None = None
    decided: bool | None = None
    error: dict[str, str] | None = None


@dataclass
class EvalReport:
    category: str
    dataset: str
    positive_labels: list[str]
    threshold: float
    head: str | None
    files: list[FileOutcome]
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    folds: int | None = None  # cross-validated: heads retrained without each fold

    @property
    def scored(self) -> list[FileOutcome]:
        return [f for f in self.files if f.error is None]

    @property
    def failed(self) -> list[FileOutcome]:
        return [f for f in self.files if f.error is not None]

    def worst_false_positives(self) -> list[FileOutcome]:
        negatives = [f for f in self.scored if not f.positive]
        return sorted(negatives, key=lambda f: -(f.score or 0.0))[:WORST_LISTED]

    def worst_false_negatives(self) -> list[FileOutcome]:
        positives = [f for f in self.scored if f.positive]
        return sorted(positives, key=lambda f: f.score or 0.0)[:WORST_LISTED]

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category, "dataset": self.dataset, "positive_labels": self.positive_labels,
            "threshold": self.threshold, "head": self.head, "folds": self.folds, "seconds": round(self.seconds, 2),
            "metrics": self.metrics,
            "worst_false_positives": [asdict(f) for f in self.worst_false_positives()],
            "worst_false_negatives": [asdict(f) for f in self.worst_false_negatives()],
            "failed": [{"path": f.path, "error": f.error} for f in self.failed],
            "files": [asdict(f) for f in self.files],
        }


def evaluate(
    dataset: Dataset,
    settings: Settings,
    category: str,
    *,
    workers: int | None = None,
    use_cache: bool = True,
    on_file: Callable[[], None] | None = None,
) -> EvalReport:
    from ..pipeline import Pipeline

    pipeline = Pipeline(settings)
    categories = pipeline.fusion.rules.categories
    if category not in categories:
        raise ConfigError(f"unknown category '{category}'; known: {sorted(categories)} (add your own under "
                          f"'categories' in the settings)")
    head = pipeline.heads.site.get(category)
    samples = {str(s.path): s for s in dataset.samples}
    outcomes: dict[str, FileOutcome] = {}
    started = time.perf_counter()
    for item in pipeline.analyze_many(list(samples), workers=workers, use_cache=use_cache):
        sample = samples[item.source]
        outcome = FileOutcome(dataset.relative(sample.path), sample.label, sample.positive)
        if item.error is not None:
            outcome.error = item.error
        else:
            assert item.result is not None
            outcome.score = item.result.scores.get(category, 0.0)
            outcome.decided = any(i.category == category for i in item.result.incidents)
        outcomes[item.source] = outcome
        if on_file is not None:
            on_file()
    report = EvalReport(
        category=category, dataset=dataset.root.name, positive_labels=dataset.positive_labels,
        threshold=round(pipeline.fusion.rules.thresholds[category], 4), head=head.name if head else None,
        files=[outcomes[key] for key in samples], seconds=time.perf_counter() - started,
    )
    report.metrics = _metrics(report)
    return report


def cross_evaluate(
    dataset: Dataset,
    settings: Settings,
    category: str,
    folds: int,
    *,
    workers: int | None = None,
    use_cache: bool = True,
    on_file: Callable[[], None] | None = None,
) -> EvalReport:
    """``evaluate`` with every file scored by a head trained on the other folds' groups only."""
    from ..pipeline import Pipeline
    from .head import Head
    from .training import TrainOptions, split_files, train_head

    head = Pipeline(settings).heads.site.get(category)
    if head is None:
        raise ConfigError(f"cross-validated evaluation retrains the '{category}' head, and there is none "
                          f"(train one with 'watchkeeper train' and list it under analyzers.heads.files)")
    options = TrainOptions(
        category=category, media_types=head.media_types, extractor=head.extractor.name, window_s=head.window_s,
        target_far=head.card.threshold.target_false_alarm_rate, c=head.card.fit.c, workers=workers,
        use_cache=use_cache,
    )
    modules = settings.analyzers.heads.extractor_modules
    others = [p for p in settings.analyzers.heads.files
              if Head.load(p, extractor_modules=modules).category != category]
    usable = [s for s in dataset.samples if s.error is None]
    splits = split_files([s.positive for s in usable], [s.group for s in usable], folds)
    outcomes: dict[Path, FileOutcome] = {}
    started = time.perf_counter()
    report: EvalReport | None = None
    with tempfile.TemporaryDirectory(prefix="wk-cv-heads-") as scratch:
        for k, (train, test) in enumerate(splits):
            trained = train_head(replace(dataset, samples=[usable[i] for i in train]), settings, options,
                                 on_file=on_file).head
            path = trained.save(Path(scratch) / f"{category}-fold{k}.json")
            fold_settings = settings.model_copy(deep=True)
            fold_settings.analyzers.heads.files = [*others, path]
            report = evaluate(replace(dataset, samples=[usable[i] for i in test]), fold_settings, category,
                              workers=workers, use_cache=use_cache, on_file=on_file)
            outcomes.update(zip((usable[i].path for i in test), report.files))
    assert report is not None
    failed = [FileOutcome(dataset.relative(s.path), s.label, s.positive, error=s.error)
              for s in dataset.samples if s.error is not None]
    merged = replace(
        report, head=f"{head.name} retrained per fold", folds=len(splits), seconds=time.perf_counter() - started,
        files=[outcomes[s.path] for s in dataset.samples if s.path in outcomes] + failed,
    )
    merged.metrics = _metrics(merged)
    return merged


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _metrics(report: EvalReport) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    scored = report.scored
    labels = np.array([f.positive for f in scored], bool)
    scores = np.array([f.score for f in scored], float)
    decided = np.array([f.decided for f in scored], bool)
    tp, fp = int(np.sum(decided & labels)), int(np.sum(decided & ~labels))
    fn, tn = int(np.sum(~decided & labels)), int(np.sum(~decided & ~labels))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    metrics: dict[str, Any] = {
        "files": len(report.files), "scored": len(scored), "failed": len(report.failed),
        "positives": int(labels.sum()), "negatives": int((~labels).sum()),
        "roc_auc": None, "pr_auc": None, "recall_at_false_alarm_rate": {},
        "decision": {
            "accuracy": _ratio(tp + tn, len(scored)), "precision": precision, "recall": recall, "f1": f1,
            "false_alarm_rate": _ratio(fp, fp + tn),
            "confusion": {"true_positive": tp, "false_positive": fp, "false_negative": fn, "true_negative": tn},
        },
        "per_label": {},
    }
    for label in report.positive_labels + sorted({f.label for f in scored} - set(report.positive_labels)):
        members = [f for f in scored if f.label == label]
        if members:
            metrics["per_label"][label] = {
                "files": len(members), "mean_score": round(float(np.mean([f.score for f in members])), 4),
                "incidents": sum(bool(f.decided) for f in members),
            }
    if labels.any() and (~labels).any():
        metrics["roc_auc"] = round(float(roc_auc_score(labels, scores)), 4)
        metrics["pr_auc"] = round(float(average_precision_score(labels, scores)), 4)
        fpr, tpr, _ = roc_curve(labels, scores)
        for rate in FALSE_ALARM_RATES:
            metrics["recall_at_false_alarm_rate"][f"{rate:g}"] = round(float(tpr[fpr <= rate].max()), 4)
    return metrics


def write_plots(report: EvalReport, folder: str | Path) -> list[Path]:
    """ROC and precision-recall curves as PNG files, with the product's own decision marked."""
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve, roc_curve

    scored = report.scored
    labels = np.array([f.positive for f in scored], bool)
    if not (labels.any() and (~labels).any()):
        raise ConfigError("curves need scored files of both classes")
    scores = np.array([f.score for f in scored], float)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    decision = report.metrics["decision"]
    title = f"{report.category} on {report.dataset} ({len(scored)} files" + (
        f", {report.folds}-fold cross-validated)" if report.folds else ")")

    fpr, tpr, _ = roc_curve(labels, scores)
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, label=f"category score (ROC-AUC {report.metrics['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    if decision["false_alarm_rate"] is not None and decision["recall"] is not None:
        ax.plot([decision["false_alarm_rate"]], [decision["recall"]], "o", color="red", label="product decision")
    ax.set(xlabel="false-alarm rate", ylabel="recall", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right")
    roc_path = folder / f"{report.category}_roc.png"
    fig.savefig(roc_path)

    precision, recall, _ = precision_recall_curve(labels, scores)
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    ax.step(recall, precision, where="post", label=f"category score (PR-AUC {report.metrics['pr_auc']:.3f})")
    ax.axhline(labels.mean(), linestyle=":", color="grey", label="chance")
    if decision["precision"] is not None and decision["recall"] is not None:
        ax.plot([decision["recall"]], [decision["precision"]], "o", color="red", label="product decision")
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower left")
    pr_path = folder / f"{report.category}_pr.png"
    fig.savefig(pr_path)
    return [roc_path, pr_path]
