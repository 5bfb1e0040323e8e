"""The ``watchkeeper`` command."""

from __future__ import annotations

import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..batch import BatchItem, iter_media_files
from ..config import Settings, load_settings
from ..errors import ConfigError, WatchkeeperError
from ..logging_setup import configure as configure_logging
from . import render
from .diagnostics import doctor_checks, model_rows

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


@app.callback()
def main_options(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Settings file (YAML, TOML or JSON).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")] = False,
) -> None:
    State.config = config
    configure_logging(logging.INFO if verbose else logging.WARNING)


def _settings() -> Settings:
    return load_settings(State.config)


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
    Console().print(table)
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


def main() -> None:
    """Entry point: maps usage and settings errors to exit code 1."""
    try:
        code = app(standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except ConfigError as exc:
        err.print(f"settings error: {exc}", highlight=False, markup=False)
        sys.exit(EXIT_USAGE)
    except WatchkeeperError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        sys.exit(EXIT_SOME_FAILED)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
