"""Batch analysis: many inputs, every core, one bad input fails alone.

Worker processes each build one ``Pipeline`` (so models load once per
worker) and at most two inputs per worker are in flight, which bounds memory
however long the input list is. A worker that dies (a decoder crash, the
out-of-memory killer) costs only the inputs it held: they are retried one by
one in a fresh process, and the one that kills it again is reported failed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .domain import AnalysisResult
from .errors import WatchkeeperError

if TYPE_CHECKING:
    from .pipeline import Pipeline, Source

log = logging.getLogger(__name__)

MEDIA_EXTENSIONS = frozenset(
    ".jpg .jpeg .png .webp .bmp .gif .wav .mp3 .flac .ogg .oga .opus .m4a .aac "
    ".mp4 .m4v .mkv .avi .mov .webm".split()
)


@dataclass
class BatchItem:
    """One input's outcome: a result, or an error ``{type, code, message}``."""

    source: str
    result: AnalysisResult | None = None
    error: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def iter_media_files(paths: Iterable[str | os.PathLike[str]], *, recursive: bool = False) -> Iterator[Path]:
    """Named files as given; directories walked (sorted) for media extensions."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            walker = path.rglob("*") if recursive else path.glob("*")
            yield from sorted(p for p in walker if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS)
        else:
            yield path


def analyze_one(pipeline: Pipeline, source: Source, options: dict[str, Any]) -> BatchItem:
    from .pipeline import describe_source

    name = describe_source(source)
    try:
        return BatchItem(name, result=pipeline.analyze(source, **options))
    except WatchkeeperError as exc:
        return BatchItem(name, error=exc.to_dict())
    except Exception as exc:  # one input's bug must not end the batch
        log.exception("analysis crashed", extra={"source": name})
        return BatchItem(name, error={"type": type(exc).__name__, "code": "internal_error", "message": str(exc)})


_worker_pipeline: Pipeline | None = None


def _init_worker(settings_json: str) -> None:
    global _worker_pipeline
    from .config import Settings
    from .pipeline import Pipeline

    _worker_pipeline = Pipeline(Settings.model_validate_json(settings_json))


def _run_in_worker(source: Source, options: dict[str, Any]) -> BatchItem:
    assert _worker_pipeline is not None
    return analyze_one(_worker_pipeline, source, options)


def _pool(workers: int, settings_json: str) -> ProcessPoolExecutor:
    # spawn, not fork: the parent may hold onnxruntime threads and SQLite handles.
    return ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(settings_json,)
    )


def _isolate(sources: list[Source], options: dict[str, Any], settings_json: str) -> Iterator[BatchItem]:
    from .pipeline import describe_source

    for source in sources:
        with _pool(1, settings_json) as pool:
            try:
                yield pool.submit(_run_in_worker, source, options).result()
            except BrokenProcessPool:
                yield BatchItem(
                    describe_source(source),
                    error={"type": "WorkerCrashed", "code": "worker_crashed",
                           "message": "the analysis process died on this input (decoder crash or out of memory)"},
                )


def run_batch(
    pipeline: Pipeline, sources: Iterable[Source], *, workers: int | None = None, **options: Any
) -> Iterator[BatchItem]:
    workers = workers or pipeline.settings.workers or os.cpu_count() or 1
    if workers <= 1:
        for source in sources:
            yield analyze_one(pipeline, source, options)
        return

    # Cores are shared out between the workers rather than each worker's analyzer threads.
    threads = pipeline.settings.analysis_threads or max(1, (os.cpu_count() or 1) // workers)
    settings_json = pipeline.settings.model_copy(update={"analysis_threads": threads}).model_dump_json()
    pending: dict[Future[BatchItem], Source] = {}
    crashed: list[Source] = []
    pool = _pool(workers, settings_json)
    try:
        for source in sources:
            pending[pool.submit(_run_in_worker, source, options)] = source
            while len(pending) >= 2 * workers:
                pool = yield from _drain(pool, pending, crashed, workers, settings_json)
        while pending:
            pool = yield from _drain(pool, pending, crashed, workers, settings_json)
    finally:
        pool.shutdown(cancel_futures=True)
    yield from _isolate(crashed, options, settings_json)


def _drain(
    pool: ProcessPoolExecutor,
    pending: dict[Future[BatchItem], Source],
    crashed: list[Source],
    workers: int,
    settings_json: str,
) -> Generator[BatchItem, None, ProcessPoolExecutor]:
    """Yield what finished; on a dead pool, queue its inputs for isolation and return a fresh pool."""
    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
    broken = False
    for future in done:
        source = pending.pop(future)
        try:
            yield future.result()
        except BrokenProcessPool:
            crashed.append(source)
            broken = True
    if broken:
        # Every input still in the dead pool is suspect; retry them in isolation later.
        crashed.extend(pending.values())
        pending.clear()
        pool.shutdown(cancel_futures=True)
        pool = _pool(workers, settings_json)
    return pool
