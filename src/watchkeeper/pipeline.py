"""The analysis pipeline: media -> analyzers -> fusion -> ``AnalysisResult``.

Every front door (CLI, API, live monitors) calls this; none re-implements it.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .analyzers.base import ANALYZERS, AnalysisContext, Analyzer, AnalyzerOutput
from .batch import BatchItem, run_batch
from .cache import ResultCache, code_fingerprint
from .config import Settings, Zone, load_settings
from .domain import AnalysisResult, Detection, Media, MediaInfo, MediaType, TranscriptSegment
from .errors import ConfigError, WatchkeeperError
from .fusion import FusionEngine, build_rules
from .heads.head import HeadSet, load_heads
from .media import iter_media, nearest_frames
from .metrics import ANALYZER_SECONDS
from .models.registry import ModelRegistry
from .reasoning.assessor import Reasoner
from .taxonomy import confidence_word

log = logging.getLogger(__name__)

# Results list analyzers in this order; each analyzer's ``requires`` decides what
# runs before it (the gate before heavy per-frame analyzers, speech before text).
ANALYZER_ORDER = (
    "gate", "motion", "objects", "pose", "weapons", "fire", "crowd", "emotion", "ocr", "scene", "caption",
    "audio_events", "speech", "text", "heads",
)

Source = str | os.PathLike[str] | bytes


def _is_url(source: Source) -> bool:
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def describe_source(source: Source) -> str:
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    return str(source)


class Pipeline:
    """Analyse images, audio and video with the local model stack.

    >>> from watchkeeper import Pipeline
    >>> result = Pipeline().analyze("clip.mp4")            # doctest: +SKIP
    >>> result.crime_detected, [i.category for i in result.incidents]  # doctest: +SKIP

    ``settings`` defaults to ``load_settings()`` (settings file, ``.env``,
    environment). Models load lazily on first use and stay loaded.
    """

    def __init__(self, settings: Settings | None = None, *, models: ModelRegistry | None = None) -> None:
        self.settings = settings or load_settings()
        self.models = models or ModelRegistry(self.settings.models)
        # Loaded here too: the cache key depends on which heads score the media.
        self.heads = load_heads(self.settings) if self.settings.analyzers.heads.enabled else HeadSet()
        self.fusion = FusionEngine(self.settings, build_rules(self.settings))
        self._analyzers: list[Analyzer] | None = None
        self._cache: ResultCache | None = None
        self._reasoner: Reasoner | None = None
        self._setting_up = threading.Lock()  # the server's threads share one pipeline: one cache, one reasoner

    # -- set-up ----------------------------------------------------------------------------------
    @property
    def cache(self) -> ResultCache | None:
        with self._setting_up:
            if self._cache is None and self.settings.cache.enabled:
                self._cache = ResultCache(
                    Path(self.settings.data_dir) / "cache.sqlite3",
                    max_entries=self.settings.cache.max_entries,
                    max_bytes=self.settings.cache.max_bytes,
                )
            return self._cache

    @property
    def reasoner(self) -> Reasoner:
        """The reasoning stage: local always, the configured providers when asked for."""
        cache = self.cache
        with self._setting_up:
            if self._reasoner is None:
                self._reasoner = Reasoner(self.settings, self.fusion.rules.categories, cache=cache)
            return self._reasoner

    def enabled_analyzer_names(self) -> list[str]:
        names = []
        for name in ANALYZER_ORDER:
            section = getattr(self.settings.analyzers, name, None)
            if section is not None and section.enabled:
                names.append(name)
        return names

    @property
    def analyzers(self) -> list[Analyzer]:
        if self._analyzers is None:
            built = []
            for name in self.enabled_analyzer_names():
                importlib.import_module(f"watchkeeper.analyzers.{name}")
                if name not in ANALYZERS:
                    raise ConfigError(f"analyzer '{name}' is enabled but its module registers no analyzer")
                built.append(ANALYZERS[name](self.settings, self.models))
            self._analyzers = built
        return self._analyzers

    @property
    def analysis_threads(self) -> int:
        return self.settings.analysis_threads or os.cpu_count() or 1

    def config_hash(
        self, frame_interval_s: float | None = None, media_type: MediaType | None = None, camera: str | None = None
    ) -> str:
        """Cache key part: everything besides the media bytes that shapes a result."""
        interval = frame_interval_s or self.settings.media.frame_interval_s
        key = f"{code_fingerprint()}-{self.settings.analysis_hash()}-{self.heads.fingerprint}-{interval:g}"
        weapon_file = self.settings.analyzers.weapons.model
        if weapon_file is not None and Path(weapon_file).is_file():
            # The card names its weights' sha256: a retrained detector under the same path is a new key.
            key += "-" + hashlib.sha256(Path(weapon_file).read_bytes()).hexdigest()[:16]
        key += f"-{media_type or 'auto'}"
        if camera in self.heads.cameras:
            key += f"-camera:{camera}"
        return key

    # -- analysis --------------------------------------------------------------------------------
    def analyze(
        self,
        source: Source,
        media_type: MediaType | None = None,
        *,
        frame_interval_s: float | None = None,
        use_cache: bool = True,
        when: datetime | None = None,
        camera: str | None = None,
        on_progress: Callable[[float], None] | None = None,
        provider: str | None = None,
    ) -> AnalysisResult:
        """Analyse one image, audio or video from a path, raw bytes or an http(s) URL.

        Raises ``MediaError`` subclasses for input that cannot be decoded;
        an analyzer that fails is reported in ``result.analyzer_errors`` and
        the rest of the analysis stands. ``when`` (local wall-clock time)
        drives the time-of-day factors; ``None`` means now. ``on_progress``
        hears the percent done as analyzers finish, chunk by chunk.
        ``provider`` names a configured model provider to refine the finding
        (default ``default_provider``; ``local`` for the local judgement only).
        """
        started = time.perf_counter()
        cache = self.cache if use_cache else None
        config_hash = self.config_hash(frame_interval_s, media_type, camera)
        source_name = describe_source(source)

        media_sha = None
        if cache is not None and not _is_url(source):
            media_sha = self._content_hash(cache, source)
            cached = cache.get(media_sha, config_hash) if media_sha else None
            if cached is not None:
                result = AnalysisResult.model_validate_json(cached)
                result.media.source = source_name
                result.cache_hit = True
                result.timings_ms = {"cache_lookup": round((time.perf_counter() - started) * 1000, 2)}
                if on_progress is not None:
                    on_progress(100.0)
                return self.reasoner.refine(result, provider=provider,
                                            pictures=lambda: self._keyframes(source, result, frame_interval_s),
                                            sound=lambda: self._sound(source, result))

        run = _Run()
        chunks = iter_media(
            source, media_type, self.settings.media, frame_interval_s=frame_interval_s,
            chunk_s=self.settings.media.chunk_s,
        )
        while True:
            t0 = time.perf_counter()
            media = next(chunks, None)
            run.add_time("decode", t0)
            if media is None:
                break
            on_analyzer_done = _chunk_progress(media, on_progress) if on_progress is not None else None
            run.add_chunk(media, self._run_analyzers(media, run, camera, on_analyzer_done))

        result = self._fuse(run, when=when, camera=camera)
        if on_progress is not None:
            on_progress(100.0)
        result.config_hash = config_hash
        if cache is not None:
            cache.put(result.media.sha256, config_hash, result.model_dump_json())
        t0 = time.perf_counter()
        result = self.reasoner.refine(result, provider=provider,
                                      pictures=lambda: self._keyframes(source, result, frame_interval_s),
                                      sound=lambda: self._sound(source, result))
        result.timings_ms["reasoning"] = round((time.perf_counter() - t0) * 1000, 2)
        result.timings_ms["total"] = round((time.perf_counter() - started) * 1000, 2)
        return result

    def _keyframes(self, source: Source, result: AnalysisResult, frame_interval_s: float | None) -> list[np.ndarray]:
        """The pictures a vision model sees: the frames nearest the incidents (or spread over the media)."""
        if result.media.media_type == "audio":
            return []
        count = self.settings.reasoning.max_frames
        duration = result.media.duration_s or 0.0
        wanted = ([(i.t_start_s + i.t_end_s) / 2 for i in result.incidents][:count]
                  or [duration * (k + 0.5) / count for k in range(count)])
        frames = nearest_frames(source, result.media.media_type, wanted, self.settings.media,
                                frame_interval_s=frame_interval_s)
        return [frame.rgb for frame in frames]

    def _sound(self, source: Source, result: AnalysisResult) -> np.ndarray | None:
        """The media's sound (a video's track decoded alone), for models that listen."""
        if result.media.media_type != "audio" and not result.media.has_audio:
            return None
        chunks = [m.audio for m in iter_media(source, "audio", self.settings.media, chunk_s=self.settings.media.chunk_s)
                  if m.audio is not None]
        return np.concatenate(chunks) if chunks else None

    def _content_hash(self, cache: ResultCache, source: Source) -> str | None:
        if isinstance(source, bytes):
            return hashlib.sha256(source).hexdigest()
        path = Path(source)
        try:
            return cache.file_sha256(path) if path.is_file() else None
        except OSError:
            return None  # the media layer reports unreadable files with a typed error

    def analyze_media(self, media: Media, *, when: datetime | None = None, camera: str | None = None,
                      zones: list[Zone] | None = None, thresholds: dict[str, float] | None = None,
                      provider: str | None = None,
                      reuse: Mapping[str, AnalyzerOutput] | None = None) -> AnalysisResult:
        """Analyse already decoded media (the live monitors call this, with their camera's zones and thresholds)."""
        return self.analyze_media_outputs(media, when=when, camera=camera, zones=zones, thresholds=thresholds,
                                          provider=provider, reuse=reuse)[0]

    def analyze_media_outputs(self, media: Media, *, when: datetime | None = None, camera: str | None = None,
                              zones: list[Zone] | None = None, thresholds: dict[str, float] | None = None,
                              provider: str | None = None, reuse: Mapping[str, AnalyzerOutput] | None = None,
                              ) -> tuple[AnalysisResult, dict[str, AnalyzerOutput]]:
        """``analyze_media``, with each analyzer's output. ``reuse``: outputs of another run on the same media
        that this pipeline's analyzers would give alike (the caller's promise); those analyzers do not run."""
        run = _Run()
        outputs = self._run_analyzers(media, run, camera, reuse=reuse)
        run.add_chunk(media, outputs)
        result = self._fuse(run, when=when, camera=camera, zones=zones, thresholds=thresholds)
        return self.reasoner.refine(result, provider=provider, pictures=lambda: [f.rgb for f in media.frames],
                                    sound=lambda: media.audio), outputs

    def alike(self, media: Media, outputs: Mapping[str, AnalyzerOutput],
              settings: Settings) -> dict[str, AnalyzerOutput]:
        """Those of another pipeline's ``outputs`` on the same media (made under ``settings``) that this one's
        analyzers would make alike (``Analyzer.gives_alike``), each input of theirs taken too or not made for
        such media here: what ``reuse`` may take (a live camera's tier 2 from its tier 1)."""
        analyzers = {a.name: a for a in self.analyzers if a.applies_to(media)}
        taken: dict[str, AnalyzerOutput] = {}
        while True:
            more = {name: output for name, output in outputs.items()
                    if name not in taken and name in analyzers and analyzers[name].gives_alike(output, settings)
                    and all(needed in taken or needed not in analyzers for needed in analyzers[name].requires)}
            if not more:
                return taken
            taken.update(more)

    def _run_analyzers(
        self, media: Media, run: _Run, camera: str | None = None,
        on_analyzer_done: Callable[[int, int], None] | None = None,
        reuse: Mapping[str, AnalyzerOutput] | None = None,
    ) -> dict[str, AnalyzerOutput]:
        """Run every applicable analyzer, each as soon as the analyzers it reads have finished.

        Independent chains (audio beside video, fire beside objects) share
        the cores; the models and OpenCV release the GIL while they compute.
        """
        context = AnalysisContext(self.settings, camera=camera)
        todo = {a.name: a for a in self.analyzers if a.applies_to(media)}
        reused = {name: output for name, output in (reuse or {}).items() if name in todo}
        context.outputs.update(reused)
        for name in reused:
            del todo[name]
        count, finished = len(todo), 0
        running: dict[Future[AnalyzerOutput], tuple[Analyzer, float]] = {}
        with ThreadPoolExecutor(self.analysis_threads, thread_name_prefix="analyzer") as pool:
            while todo or running:
                for name, analyzer in list(todo.items()):
                    unfinished = set(todo) | {a.name for a, _ in running.values()}
                    if not unfinished.intersection(analyzer.requires):
                        del todo[name]
                        running[pool.submit(_timed, analyzer, media, context)] = (analyzer, time.perf_counter())
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    analyzer, started = running.pop(future)
                    run.add_time(analyzer.name, started)
                    try:
                        context.outputs[analyzer.name] = future.result()
                    except WatchkeeperError as exc:
                        run.fail(analyzer.name, media, exc.to_dict())
                        log.warning("analyzer failed", extra={"analyzer": analyzer.name, "error": str(exc)})
                    except Exception as exc:  # an analyzer bug must not lose the other analyzers' work
                        log.error("analyzer crashed", exc_info=exc, extra={"analyzer": analyzer.name})
                        run.fail(analyzer.name, media,
                                 {"type": type(exc).__name__, "code": "analysis_error", "message": str(exc)})
                    finished += 1
                    if on_analyzer_done is not None:
                        on_analyzer_done(finished, count)
        # Keep the configured analyzer order so results read the same every run.
        return {a.name: context.outputs[a.name] for a in self.analyzers if a.name in context.outputs}

    def _fuse(self, run: _Run, *, when: datetime | None, camera: str | None, zones: list[Zone] | None = None,
              thresholds: dict[str, float] | None = None) -> AnalysisResult:
        t0 = time.perf_counter()
        fused = self.fusion.fuse(run.detections, run.duration_s, when=when or datetime.now(), camera=camera,
                                 t_start_s=run.infos[0].chunk_start_s if run.infos else 0.0, zones=zones,
                                 thresholds=thresholds)
        run.add_time("fusion", t0)
        incidents = fused.incidents
        top = incidents[0] if incidents else None
        if top is not None:
            description = " ".join(i.summary for i in incidents)
            confidence = confidence_word(top.confidence)
        else:
            highest = max(fused.scores.items(), key=lambda kv: kv[1])
            description = _quiet_description(run, highest)
            confidence = confidence_word(1.0 - highest[1])
        return AnalysisResult(
            media=run.media_info(),
            scores=fused.scores,
            score_timeline={category: [(round((w.t_start_s + w.t_end_s) / 2, 2), round(w.score, 3)) for w in ws]
                            for category, ws in fused.windows.items() if any(w.score >= 0.05 for w in ws)},
            incidents=incidents,
            detections=run.detections,
            frames=run.frame_summaries(),
            audio_events=run.collect("audio_events", "timeline"),
            transcript=[TranscriptSegment(**seg) for seg in run.collect("speech", "segments")],
            outputs=run.outputs_json(),
            timings_ms={k: round(v, 2) for k, v in run.timings.items()},
            analyzer_errors=run.errors,
            crime_detected=bool(incidents),
            crime_type=top.category_name if top else None,
            confidence=confidence,
            evidence_description=description,
        )

    def analyze_many(
        self,
        sources: Iterable[Source],
        *,
        workers: int | None = None,
        media_type: MediaType | None = None,
        frame_interval_s: float | None = None,
        use_cache: bool = True,
    ) -> Iterator[BatchItem]:
        """Analyse many inputs; one bad input fails alone.

        Yields a ``BatchItem`` per input (in completion order when
        ``workers`` > 1, each worker process loading the models once).
        """
        yield from run_batch(
            self, sources, workers=workers, media_type=media_type, frame_interval_s=frame_interval_s, use_cache=use_cache
        )


def _timed(analyzer: Analyzer, media: Media, context: AnalysisContext) -> AnalyzerOutput:
    """Run one analyzer, timed in its own thread for the metric (``_Run.timings`` include the wait for a thread)."""
    with ANALYZER_SECONDS.labels(analyzer.name, media.info.media_type).time():
        return analyzer.analyze(media, context)


def _chunk_progress(media: Media, on_progress: Callable[[float], None]) -> Callable[[int, int], None]:
    """Percent of the whole file done when ``done`` of this chunk's ``count`` analyzers have finished.

    Kept below 100 until fusion has run too.
    """
    total_s = media.duration_s

    def report(done: int, count: int) -> None:
        covered = media.t_start_s + (media.t_end_s - media.t_start_s) * done / max(count, 1)
        on_progress(min(99.0, 100.0 * covered / total_s) if total_s > 0 else 99.0 * done / max(count, 1))

    return report


class _Run:
    """What the analyzers found over every chunk of one input."""

    def __init__(self) -> None:
        self.infos: list[MediaInfo] = []
        self.frames: list[tuple[int, float]] = []
        self.chunk_outputs: list[dict[str, AnalyzerOutput]] = []
        self.detections: list[Detection] = []
        self.errors: dict[str, dict[str, str]] = {}
        self.timings: dict[str, float] = {}

    def add_time(self, stage: str, since: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + (time.perf_counter() - since) * 1000

    def fail(self, analyzer: str, media: Media, error: dict[str, str]) -> None:
        if media.info.chunk_end_s is not None:
            error = {**error, "message": f"{error['message']} (chunk from {media.t_start_s:.0f} s)"}
        self.errors.setdefault(analyzer, error)

    def add_chunk(self, media: Media, outputs: dict[str, AnalyzerOutput]) -> None:
        self.infos.append(media.info)
        self.frames.extend((f.index, f.t_s) for f in media.frames)
        self.chunk_outputs.append(outputs)
        self.detections.extend(d for out in outputs.values() for d in out.detections)

    @property
    def duration_s(self) -> float:
        last = self.infos[-1]
        if last.duration_s is not None:
            return last.duration_s
        return last.chunk_end_s or 0.0

    def media_info(self) -> MediaInfo:
        """The whole file's info: the last chunk knows the decoded duration."""
        return self.infos[-1].model_copy(update={
            "frames_sampled": sum(i.frames_sampled for i in self.infos),
            "has_audio": any(i.has_audio for i in self.infos),
            "chunk_index": 0, "chunk_start_s": 0.0, "chunk_end_s": None,
        })

    def collect(self, analyzer: str, key: str) -> list[Any]:
        return [item for outputs in self.chunk_outputs if analyzer in outputs
                for item in outputs[analyzer].data.get(key, [])]

    def outputs_json(self) -> dict[str, Any]:
        """Per-analyzer data; a video analysed in chunks has ``{"chunks": [...]}`` per analyzer."""
        if len(self.chunk_outputs) == 1:
            return {name: out.data for name, out in self.chunk_outputs[0].items()}
        names = dict.fromkeys(name for outputs in self.chunk_outputs for name in outputs)
        return {
            name: {"chunks": [{"t_start_s": info.chunk_start_s, "t_end_s": info.chunk_end_s, **outputs[name].data}
                              for info, outputs in zip(self.infos, self.chunk_outputs) if name in outputs]}
            for name in names
        }

    def frame_summaries(self) -> list[dict[str, Any]]:
        by_frame: dict[int, list[dict[str, Any]]] = {}
        for det in self.detections:
            if det.frame_index is not None:
                by_frame.setdefault(det.frame_index, []).append(
                    {"label": det.label, "score": round(det.score, 3), "box_xywh_norm": det.box_xywh_norm,
                     "analyzer": det.analyzer}
                )
        return [{"index": index, "t_s": round(t_s, 3), "detections": by_frame.get(index, [])}
                for index, t_s in self.frames]


def _quiet_description(run: _Run, highest: tuple[str, float]) -> str:
    info = run.media_info()
    what = {"image": "image", "audio": f"{run.duration_s:.1f} s of audio",
            "video": f"{run.duration_s:.1f} s of video ({info.frames_sampled} frames analysed)"}[info.media_type]
    text = f"No incident found in the {what}"
    if highest[1] > 0:
        text += f"; the highest score was {highest[0]} at {highest[1]:.2f}, below its threshold"
    speech = " ".join(seg.get("text", "").strip() for seg in run.collect("speech", "segments")).strip()
    if speech:
        text += f"; speech: \"{speech}\""
    return text + "."
