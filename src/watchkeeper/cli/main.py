"""The ``watchkeeper`` command."""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console
from typer.exceptions import TyperException
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..batch import BatchItem, iter_media_files
from ..config import Settings, load_settings
from ..errors import ConfigError, WatchkeeperError
from ..logging_setup import configure as configure_logging
from . import render
from .diagnostics import doctor_checks, model_cards, model_rows
from .live import register as register_live_commands
from .notify import register as register_notify_commands
from .reports import register as register_report_commands
from .service import register as register_service_commands

EXIT_OK, EXIT_USAGE, EXIT_SOME_FAILED = 0, 1, 2

app = typer.Typer(
    name="watchkeeper",
    help="Multimodal incident detection: analyse images, audio and video with local models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    markdown = "markdown"


class State:
    config: Path | None = None
    log_level: int = logging.WARNING


@app.callback()
def main_options(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Settings file (YAML, TOML or JSON).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")] = False,
) -> None:
    State.config = config
    State.log_level = logging.INFO if verbose else logging.WARNING
    configure_logging(State.log_level)


def _settings() -> Settings:
    """The settings; from here on logs are in their ``logging.format`` (the options above come before them)."""
    settings = load_settings(State.config)
    configure_logging(State.log_level, settings.logging.format)
    return settings


@app.command()
def analyze(
    paths: Annotated[list[str], typer.Argument(help="Files, directories or http(s) URLs.")],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Walk directories recursively.")] = False,
    output_format: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the output to this file.")] = None,
    frame_interval: Annotated[
        Optional[float], typer.Option("--frame-interval", min=0.01, help="Seconds between analysed video frames.")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ignore and do not fill the result cache.")] = False,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, help="Worker processes.")] = None,
) -> None:
    """Analyse media for incidents. Exit code 0: all analysed; 2: some inputs failed; 1: usage error."""
    from ..pipeline import Pipeline

    settings = _settings()
    if frame_interval is not None:
        settings.media.frame_interval_s = frame_interval
    sources: list[str | Path] = []
    for raw in paths:
        if raw.lower().startswith(("http://", "https://")):
            sources.append(raw)
        elif not Path(raw).exists():
            sources.append(Path(raw))  # reported as a failed input, the rest still runs
        else:
            sources.extend(iter_media_files([raw], recursive=recursive))
    if not sources:
        raise click.UsageError("no media files found in the given paths")

    pipeline = Pipeline(settings)
    workers = 1 if len(sources) == 1 else workers
    stream = out.open("w", encoding="utf-8") if out else sys.stdout
    items: list[BatchItem] = []
    try:
        with _progress(len(sources)) as progress:
            task = progress.add_task("analysing", total=len(sources))
            for item in pipeline.analyze_many(sources, workers=workers, use_cache=not no_cache):
                items.append(item)
                progress.advance(task)
                if output_format is OutputFormat.jsonl:
                    stream.write(render.jsonl_line(item) + "\n")
                    stream.flush()
        order = {str(s): i for i, s in enumerate(sources)}
        items.sort(key=lambda it: order.get(it.source, len(order)))
        if output_format is OutputFormat.json:
            stream.write(render.to_json(items) + "\n")
        elif output_format is OutputFormat.markdown:
            stream.write(render.markdown(items))
        elif output_format is OutputFormat.table:
            if out:
                stream.write(render.table_text(items))
            else:
                Console().print(render.table(items))
    finally:
        if out:
            stream.close()
    failed = [i for i in items if i.error]
    for item in failed:
        err.print(f"[red]failed[/red] {item.source}: {item.error['type']}: {item.error['message']}", markup=True,
                  highlight=False)
    raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)


@app.command()
def demo(
    folder: Annotated[Path, typer.Option("--dir", help="Where to write the sample media.")] = Path("data/demo"),
) -> None:
    """Make a small set of sample media (people, speech, a siren, a quiet room) and analyse it."""
    from ..samples import make_demo_set

    paths = make_demo_set(folder)
    err.print(f"sample media written to {folder}: {', '.join(p.name for p in paths)}", highlight=False)
    analyze([str(p) for p in paths], recursive=False, output_format=OutputFormat.table, out=None,
            frame_interval=None, no_cache=False, workers=1)


def _progress(total: int) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, disable=not err.is_terminal or total < 2, transient=True,
    )


@app.command()
def models(
    load: Annotated[bool, typer.Option("--load/--no-load", help="Load each model and time it.")] = True,
) -> None:
    """List the local models: installed or not, where the weights come from, load time."""
    from rich.table import Table

    settings = _settings()
    table = Table(title="Local models")
    table.add_column("model", no_wrap=True)
    for column in ("status", "weights from", "load ms", "what it does"):
        table.add_column(column, overflow="fold")
    problems = 0
    for row in model_rows(settings, load=load):
        failed = row["status"] != "ok"
        problems += failed and not row["optional"]
        style = ("yellow" if row["optional"] else "red") if failed else None
        cells = (row["name"], row["status"], row["source"], row["load_ms"], row["description"])
        table.add_row(*(escape(c) for c in cells), style=style)
    console = Console()
    console.print(table)
    cards = Table(title="Model cards (models trained for watchkeeper)")
    for column in ("model", "category", "trained", "data", "cross-validated", "threshold"):
        cards.add_column(column, overflow="fold")
    for card in model_cards(settings):
        if "error" in card:
            cards.add_row(escape(card["model"]), escape(card["category"]), "", escape(card["error"]), "", "",
                          style="red")
            problems += 1
            continue
        cards.add_row(*(escape(card[k]) for k in ("model", "category", "trained_at", "data", "metrics", "threshold")))
    console.print(cards)
    raise typer.Exit(EXIT_OK if problems == 0 else EXIT_SOME_FAILED)


@app.command()
def doctor() -> None:
    """Check the installation and print how to fix what is wrong."""
    console = Console()
    failures = 0
    for check in doctor_checks(State.config):
        mark = "[green]ok[/green]" if check.ok else "[red]FAIL[/red]"
        console.print(f"{mark}  {check.name}: {check.detail}", highlight=False)
        if not check.ok:
            failures += 1
            console.print(f"      fix: {check.fix}", highlight=False)
    console.print("all checks passed" if failures == 0 else f"{failures} check(s) failed")
    raise typer.Exit(EXIT_OK if failures == 0 else EXIT_SOME_FAILED)


def _media_types(text: str | None) -> list[str] | None:
    if text is None:
        return None
    types = [t.strip() for t in text.split(",") if t.strip()]
    bad = sorted(set(types) - {"image", "audio", "video"})
    if bad or not types:
        raise click.BadParameter(f"{text!r}: give image, audio and/or video, comma-separated", param_hint="--modality")
    return types


def _report_failures(failed: list[tuple[str, dict[str, str]]]) -> None:
    for path, error in failed:
        err.print(f"[red]failed[/red] {escape(path)}: {error['type']}: {escape(error['message'])}", highlight=False)


class DataFormat(str, Enum):
    folders = "folders"
    yolo = "yolo"


@app.command()
def train(
    dataset_dir: Annotated[Path, typer.Argument(help="Folder with one subfolder of media per label.")],
    category: Annotated[str, typer.Option("--category", help="Category id the head scores.")],
    positive: Annotated[Optional[str], typer.Option(
        "--positive", help="Positive label folder(s), comma-separated (folder-per-label data sets).")] = None,
    data_format: Annotated[DataFormat, typer.Option(
        "--format", help="folders: one folder of media per label, trains a learned head; yolo: images/ and "
        "labels/ with boxes, trains the weapon detector (--category weapon).")] = DataFormat.folders,
    classes: Annotated[Optional[str], typer.Option(
        "--classes", help="yolo: class ids to weapon kinds, e.g. 0=handgun,1=knife,2=long_gun.")] = None,
    negatives: Annotated[Optional[list[Path]], typer.Option(
        "--negatives", help="yolo: a folder of weapon-free images or videos (repeatable).")] = None,
    exclude: Annotated[Optional[str], typer.Option(
        "--exclude", help="yolo: leave out images whose file name matches this regular expression.")] = None,
    copies_per_group: Annotated[int, typer.Option(
        "--copies-per-group", min=1, help="yolo: augmented copies used per source image.")] = 1,
    max_images: Annotated[Optional[int], typer.Option(
        "--max-images", min=1, help="yolo: at most this many labelled images.")] = None,
    windows_cache: Annotated[Optional[Path], typer.Option(
        "--windows-cache", help="yolo: keep the cut windows in this .npz and reuse them next time.")] = None,
    shrunk_share: Annotated[float, typer.Option(
        "--shrunk-share", min=0.0, max=1.0, help="yolo: share of the pictures and weapon-free frames shrunk 2-4 "
        "times first, so that weapons of small people far from a wide camera are learnt too.")] = 0.0,
    members: Annotated[int, typer.Option(
        "--members", min=1, help="yolo: networks fitted with successive seeds on the same windows, their "
        "log-odds averaged (steadier than one; each costs a fit).")] = 1,
    find_people: Annotated[bool, typer.Option(
        "--find-people/--given-people", help="yolo: cut windows around the people the detector finds itself, as "
        "it searches (default), or around the objects analyzer's people as given (the shipped detector's "
        "recipe).")] = True,
    modality: Annotated[Optional[str], typer.Option(
        "--modality", help="Media types the head is for: image, audio, video (comma-separated); "
        "default: those in the data set that the extractor handles.")] = None,
    extractor: Annotated[Optional[str], typer.Option("--extractor", help="Feature extractor name.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Head file to write.")] = None,
    target_far: Annotated[float, typer.Option(
        "--target-far", help="False-alarm rate per negative file the threshold aims at.")] = 0.01,
    folds: Annotated[int, typer.Option("--folds", min=2, help="Cross-validation folds.")] = 5,
    window: Annotated[Optional[float], typer.Option(
        "--window-s", min=0.05, help="Window length; default: the extractor's.")] = None,
    c: Annotated[Optional[float], typer.Option(
        "--c", min=1e-6, help="Fixed inverse regularisation strength; default: chosen by cross-validation.")] = None,
    groups: Annotated[Optional[Path], typer.Option("--groups", help="CSV/TSV of 'path,group' rows.")] = None,
    group_pattern: Annotated[Optional[str], typer.Option(
        "--group-pattern", help="Regular expression on file names; its first group (or match) is the group.")] = None,
    dedupe: Annotated[bool, typer.Option(
        "--dedupe", help="Drop byte-identical copies (every copy when their classes differ) instead of refusing them."
    )] = False,
    name: Annotated[Optional[str], typer.Option("--name", help="Head name; default: CATEGORY-EXTRACTOR.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ignore and do not fill the result cache.")] = False,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, help="Worker processes.")] = None,
) -> None:
    """Train a learned head on a folder-per-label data set. Exit code 2: the head was written but some files failed."""
    import shlex

    from rich.table import Table

    from ..heads.dataset import load_dataset, parse_labels
    from ..heads.training import TrainOptions, train_head

    settings = _settings()
    if data_format is DataFormat.yolo:
        from .weapons import train_weapon_detector

        train_weapon_detector(
            dataset_dir, settings, category=category, classes=classes, negatives=negatives or [], exclude=exclude,
            group_pattern=group_pattern, copies_per_group=copies_per_group, max_images=max_images, folds=folds,
            target_far=target_far, out=out, name=name, windows_cache=windows_cache, shrunk_share=shrunk_share,
            members=members, find_people=find_people)
        return
    if positive is None:
        raise click.BadParameter("name the positive label folder(s)", param_hint="--positive")
    dataset = load_dataset(dataset_dir, parse_labels(positive), group_file=groups, group_pattern=group_pattern,
                           duplicates="drop" if dedupe else "refuse", media_settings=settings.media)
    for dropped, kept in dataset.dropped_duplicates:
        err.print(f"dropped duplicate {escape(dataset.relative(dropped))}"
                  + (f" (copy of {escape(dataset.relative(kept))})" if kept else " (copies carry both classes)"),
                  highlight=False)
    options = TrainOptions(category=category, media_types=_media_types(modality), extractor=extractor,
                           window_s=window, target_far=target_far, folds=folds, c=c, workers=workers,
                           use_cache=not no_cache, name=name)
    with _progress(len(dataset.samples)) as progress:
        task = progress.add_task("extracting features", total=len(dataset.samples))
        report = train_head(dataset, settings, options, command=shlex.join(["watchkeeper", *sys.argv[1:]]),
                            on_file=lambda: progress.advance(task))
    path = report.head.save(out or Path(f"{category}.head.json"))

    card = report.head.card
    table = Table(title=f"head '{report.head.name}' for {category}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    rows = [
        ("features", f"{report.head.extractor.name} v{report.head.extractor.version}, dim {report.head.feature_dim}, "
                     f"window {report.head.window_s or 'whole file'}"),
        ("files", f"{card.data.positive_files} positive, {card.data.negative_files} negative, "
                  f"{card.data.failed_files} failed, {len(report.table.skipped)} skipped"),
        ("windows", f"{card.data.positive_windows} positive, {card.data.negative_windows} negative"),
        ("cross-validation", f"{card.cross_validation.folds} folds, groups: {card.data.group_source}"),
        ("file ROC-AUC", str(card.cross_validation.file_roc_auc)),
        ("file PR-AUC", str(card.cross_validation.file_pr_auc)),
        ("window ROC-AUC", str(card.cross_validation.window_roc_auc)),
        ("threshold", f"{card.threshold.value:g} (out of fold: {card.threshold.oof_false_alarm_rate:.1%} false alarms, "
                      f"{card.threshold.oof_recall:.1%} recall)"),
        ("C", f"{card.fit.c:g}"),
        ("time", f"features {report.extract_s:.1f} s, fitting {report.fit_s:.1f} s"),
        ("written", str(path)),
    ]
    for key, value in rows:
        table.add_row(key, escape(value))
    Console().print(table)
    skipped: dict[str, int] = {}
    for _, reason in report.table.skipped:
        skipped[reason] = skipped.get(reason, 0) + 1
    for reason, count in skipped.items():
        err.print(f"skipped {count} file(s): {escape(reason)}", highlight=False)
    if card.threshold.oof_recall < 0.5:
        err.print(f"[yellow]warning[/yellow]: at {target_far:.1%} false alarms the head finds only "
                  f"{card.threshold.oof_recall:.0%} of the positive files out of fold; more or better data, "
                  f"another extractor or a higher --target-far may help", highlight=False)
    _report_failures([(dataset.relative(s.path), e) for s, e in report.table.failed])
    raise typer.Exit(EXIT_SOME_FAILED if report.table.failed else EXIT_OK)


@app.command("eval")
def evaluate(
    dataset_dir: Annotated[Path, typer.Argument(help="Folder with one subfolder of media per label.")],
    category: Annotated[str, typer.Option("--category", help="Category id to measure.")],
    positive: Annotated[str, typer.Option("--positive", help="Positive label folder(s), comma-separated.")],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full report as JSON here.")] = None,
    plots: Annotated[Optional[Path], typer.Option("--plots", help="Write ROC and PR curves (PNG) here.")] = None,
    folds: Annotated[Optional[int], typer.Option(
        "--folds", min=2, help="Cross-validate: score each fold with the category's head retrained on the others.")
    ] = None,
    groups: Annotated[Optional[Path], typer.Option(
        "--groups", help="CSV/TSV of 'path,group' rows (files of a group share a fold).")] = None,
    group_pattern: Annotated[Optional[str], typer.Option(
        "--group-pattern", help="Regular expression on file names; its first group (or match) is the group.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ignore and do not fill the result cache.")] = False,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, help="Worker processes.")] = None,
) -> None:
    """Measure the full product on a labelled data set. Exit code 2: some files failed."""
    import json

    from rich.table import Table

    from ..heads.dataset import load_dataset, parse_labels
    from ..heads.evaluation import FALSE_ALARM_RATES, cross_evaluate, evaluate as run_evaluation, write_plots

    settings = _settings()
    dataset = load_dataset(dataset_dir, parse_labels(positive), group_file=groups, group_pattern=group_pattern,
                           duplicates="allow", media_settings=settings.media)
    # Cross-validated: each file is read for training in all folds but its own, then analysed once.
    steps = len(dataset.samples) * (folds or 1)
    with _progress(steps) as progress:
        task = progress.add_task("training per fold and analysing" if folds else "analysing", total=steps)
        options = {"workers": workers, "use_cache": not no_cache, "on_file": lambda: progress.advance(task)}
        report = (cross_evaluate(dataset, settings, category, folds, **options) if folds
                  else run_evaluation(dataset, settings, category, **options))
    written = write_plots(report, plots) if plots else []
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=1) + "\n", encoding="utf-8")
        written.append(json_out)

    m = report.metrics
    decision = m["decision"]

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    table = Table(title=f"{category} on {report.dataset}: {m['positives']} positive, {m['negatives']} negative files"
                  f" ({m['failed']} failed)" + (f", {report.folds}-fold cross-validated" if report.folds else ""),
                  show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    confusion = decision["confusion"]
    rows = [
        ("ROC-AUC", fmt(m["roc_auc"])), ("PR-AUC", fmt(m["pr_auc"])),
        *((f"recall at {rate:.0%} false alarms", fmt(m["recall_at_false_alarm_rate"].get(f"{rate:g}")))
          for rate in FALSE_ALARM_RATES),
        ("decision threshold", f"{report.threshold:g}" + (f" (head {report.head})" if report.head else "")),
        ("accuracy", fmt(decision["accuracy"])), ("precision", fmt(decision["precision"])),
        ("recall", fmt(decision["recall"])), ("F1", fmt(decision["f1"])),
        ("false-alarm rate", fmt(decision["false_alarm_rate"])),
        ("confusion", f"TP {confusion['true_positive']}  FP {confusion['false_positive']}  "
                      f"FN {confusion['false_negative']}  TN {confusion['true_negative']}"),
        ("time", f"{report.seconds:.1f} s ({report.seconds / max(1, len(report.files)):.2f} s per file)"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console = Console()
    console.print(table)
    for title, outcomes in (("highest-scoring negatives", report.worst_false_positives()),
                            ("lowest-scoring positives", report.worst_false_negatives())):
        worst = Table(title=title)
        for column in ("file", "label", "score", "incident"):
            worst.add_column(column)
        for outcome in outcomes:
            worst.add_row(escape(outcome.path), escape(outcome.label), f"{outcome.score:.3f}",
                          "yes" if outcome.decided else "no")
        console.print(worst)
    for path in written:
        err.print(f"wrote {path}", highlight=False)
    _report_failures([(f.path, f.error) for f in report.failed if f.error])
    raise typer.Exit(EXIT_SOME_FAILED if report.failed else EXIT_OK)


@app.command()
def feedback(
    out: Annotated[Path, typer.Argument(help="New folder for the data set.")],
    category: Annotated[str, typer.Option("--category", help="Category whose judged incidents to export.")],
    camera: Annotated[Optional[str], typer.Option("--camera", help="Only this camera's incidents.")] = None,
    since: Annotated[Optional[datetime], typer.Option("--since", help="Only incidents from this time on (UTC).")] = None,
    context_s: Annotated[float, typer.Option(
        "--context-s", min=0, help="Seconds of audio/video kept either side of an incident.")] = 1.0,
) -> None:
    """Export incidents marked confirmed or false_alarm as a data set for 'watchkeeper train'."""
    from ..artefacts import open_artefact_store
    from ..heads.feedback import GROUP_FILE, export_feedback
    from ..store.db import open_database

    settings = _settings()
    with open_database(settings) as db:
        export = export_feedback(db, out, category, artefacts=open_artefact_store(settings), camera=camera,
                                 context_s=context_s,
                                 since=since.replace(tzinfo=since.tzinfo or timezone.utc) if since else None)
    for incident_id, reason in export.skipped:
        err.print(f"skipped incident {incident_id}: {escape(reason)}", highlight=False)
    counts = {label: len(paths) for label, paths in export.written.items()}
    Console().print(f"{counts['confirmed']} confirmed and {counts['false_alarm']} false-alarm file(s) in {escape(str(out))}")
    if all(counts.values()):
        Console().print(f"train with: watchkeeper train {escape(str(out))} --category {category} "
                        f"--positive confirmed --groups {escape(str(out / GROUP_FILE))}", highlight=False)
    else:
        err.print("training needs files of both kinds; judge more incidents first", highlight=False)


register_service_commands(app, _settings)
register_live_commands(app, _settings)
register_report_commands(app, _settings)
register_notify_commands(app, _settings)


def main() -> None:
    """Entry point: maps usage and settings errors to exit code 1."""
    try:
        code = app(standalone_mode=False)
    except (click.exceptions.Abort, typer.Abort):
        err.print("aborted")
        sys.exit(130)
    # Typer parses with its own copy of Click, whose errors are not click's; our commands raise click's.
    except (click.ClickException, TyperException) as exc:
        if hasattr(exc, "show"):
            exc.show()
        else:
            err.print(f"error: {exc}", highlight=False, markup=False)
        sys.exit(EXIT_USAGE)
    except ConfigError as exc:
        err.print(f"settings error: {exc}", highlight=False, markup=False)
        sys.exit(EXIT_USAGE)
    except WatchkeeperError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        sys.exit(EXIT_SOME_FAILED)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
