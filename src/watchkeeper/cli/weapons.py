"""``watchkeeper train --format yolo``: the weapon detector, with its model card printed."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..config import Settings
from ..errors import ConfigError


def train_weapon_detector(dataset_dir: Path, settings: Settings, *, category: str, classes: str | None,
                          negatives: list[Path], exclude: str | None, group_pattern: str | None,
                          copies_per_group: int, max_images: int | None, folds: int, target_far: float,
                          out: Path | None, name: str | None, windows_cache: Path | None,
                          shrunk_share: float, members: int, find_people: bool) -> None:
    from ..weapons.dataset import ROBOFLOW_GROUP, load_box_dataset, negative_files, parse_class_map
    from ..weapons.training import WeaponTrainOptions, train_weapon_model
    from .main import EXIT_OK, EXIT_SOME_FAILED, _progress, err

    if category != "weapon":
        raise ConfigError("--format yolo trains the weapon detector: use --category weapon")
    if not classes:
        raise ConfigError("--format yolo needs --classes, e.g. 0=handgun,1=knife,2=long_gun")
    if not negatives:
        raise ConfigError("--format yolo needs at least one --negatives folder of weapon-free media")
    dataset = load_box_dataset(dataset_dir, parse_class_map(classes), group_pattern=group_pattern or ROBOFLOW_GROUP,
                               exclude=exclude)
    weapon_free = negative_files(negatives)
    options = WeaponTrainOptions(folds=folds, target_far=target_far, copies_per_group=copies_per_group,
                                 max_images=max_images, name=name or "weapon-windows", windows_cache=windows_cache,
                                 shrunk_share=shrunk_share, members=members,
                                 find_people=find_people)
    total = min(max_images or len(dataset.images), len(dataset.images)) + len(weapon_free)
    with _progress(total) as progress:
        task = progress.add_task("cutting windows", total=total)
        report = train_weapon_model(dataset, weapon_free, settings, options,
                                    command=shlex.join(["watchkeeper", *sys.argv[1:]]),
                                    on_file=lambda: progress.advance(task))
    path = report.model.save(out or Path("weapon.detector.json"))
    card = report.model.meta.card
    table = Table(title=f"weapon detector '{report.model.name}'", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    cv = card.cross_validation
    rows = [
        ("images", f"{card.data.images} with weapons ({card.data.groups} source images), "
                   f"{card.data.negative_frames} weapon-free frames from {card.data.negative_files} files, "
                   f"{card.data.painted_images} pictures with their weapons painted out, "
                   f"{card.data.shrunk_images} pictures and frames shrunk first"),
        ("boxes", ", ".join(f"{kind} {count}" for kind, count in card.data.boxes_per_kind.items())),
        ("skipped", ", ".join(f"{reason}: {count}" for reason, count in card.data.skipped.items()) or "none"),
        ("windows", f"{card.data.positive_windows} weapon, {card.data.negative_windows} background"),
        ("cross-validation", f"{cv.folds} folds grouped by source image"),
        ("image ROC-AUC", str(cv.image_roc_auc)),
        ("image PR-AUC", str(cv.image_pr_auc)),
        ("recall at 5% false alarms", str(cv.recall_at_5pct_false_alarms)),
        ("threshold", f"{card.threshold.value:g} (out of fold: {card.threshold.oof_false_alarm_rate:.1%} false "
                      f"alarms, {card.threshold.oof_recall:.1%} recall)"),
        ("time", f"windows {report.extract_s:.0f} s, fitting {report.fit_s:.0f} s"),
        ("written", f"{path} and {path.with_suffix('.npz').name}"),
    ]
    for key, value in rows:
        table.add_row(key, escape(value))
    Console().print(table)
    for failed, reason in report.table.failed:
        err.print(f"[red]failed[/red] {escape(failed)}: {escape(reason)}", highlight=False)
    err.print(f"use it: analyzers.weapons.model: {path}", highlight=False)
    raise typer.Exit(EXIT_SOME_FAILED if report.table.failed else EXIT_OK)
