"""Core pipeline benchmark: prints a table and writes bench/results/core.json.

Targets on a 2-core CPU: image <= 300 ms, audio >= 25x real time, 720p video
>= 5x real time at 1 analysed frame/s and within 3x of PyAV decode alone,
cache hit <= 20 ms, peak RSS <= 2 GB with every default model loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data as skdata

from watchkeeper import Pipeline
from watchkeeper.config import Settings
from watchkeeper.samples import noise, siren, write_audio, write_video

TARGETS = {
    "image_ms": ("<=", 300.0),
    "audio_x_realtime": (">=", 25.0),
    "video_x_realtime": (">=", 5.0),
    "video_vs_decode_ratio": ("<=", 3.0),
    "cache_hit_ms": ("<=", 20.0),
    "peak_rss_mb": ("<=", 2048.0),
}


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _street_frames(seconds: float, fps: int) -> Iterator[np.ndarray]:
    """720p frames of a real photo panning, with a person-shaped photo crossing: real texture, real motion."""
    backdrop = cv2.resize(skdata.coffee(), (1600, 900))
    person = cv2.resize(skdata.astronaut(), (300, 300))
    for i in range(int(seconds * fps)):
        x = int(150 + 150 * np.sin(i / fps))
        frame = backdrop[50:770, x: x + 1280].copy()
        px = int((i * 7) % (1280 - 300))
        frame[300:600, px: px + 300] = person
        yield frame


def decode_only(path: Path) -> float:
    start = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--video-seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "core.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="wk-bench-"))
    settings = Settings(data_dir=work / "data")
    pipeline = Pipeline(settings)

    image_path = work / "street.jpg"
    cv2.imwrite(str(image_path), cv2.cvtColor(next(_street_frames(0.1, 10)), cv2.COLOR_RGB2BGR))
    audio_path = write_audio(work / "street.wav", siren(30.0) * 0.3 + noise(30.0, amplitude=0.05))
    video_path = write_video(work / "street.mp4", _street_frames(args.video_seconds, 30), fps=30,
                             audio=noise(args.video_seconds, amplitude=0.05))

    start = time.perf_counter()
    pipeline.analyze(image_path, use_cache=False)  # loads the vision models
    pipeline.analyze(audio_path, use_cache=False)  # loads the audio models
    warmup_ms = (time.perf_counter() - start) * 1000

    image_ms = _median_ms(lambda: pipeline.analyze(image_path, use_cache=False), 5)
    audio_ms = _median_ms(lambda: pipeline.analyze(audio_path, use_cache=False), 3)
    video_result = None

    def run_video():
        nonlocal video_result
        video_result = pipeline.analyze(video_path, use_cache=False)

    video_ms = _median_ms(run_video, 2)
    decode_ms = min(decode_only(video_path) for _ in range(2))
    pipeline.analyze(image_path)  # fills the cache
    cache_ms = _median_ms(lambda: pipeline.analyze(image_path), 20)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    figures = {
        "image_ms": round(image_ms, 1),
        "audio_x_realtime": round(30_000 / audio_ms, 1),
        "video_x_realtime": round(args.video_seconds * 1000 / video_ms, 2),
        "video_decode_only_x_realtime": round(args.video_seconds * 1000 / decode_ms, 2),
        "video_vs_decode_ratio": round(video_ms / decode_ms, 2),
        "cache_hit_ms": round(cache_ms, 2),
        "peak_rss_mb": round(peak_rss_mb, 0),
        "model_warmup_ms": round(warmup_ms, 0),
        "video_stage_ms": video_result.timings_ms if video_result else {},
    }
    machine = {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
               "python": platform.python_version()}
    print(f"{'figure':28} {'value':>10}  target")
    for key, value in figures.items():
        if isinstance(value, dict):
            continue
        target = TARGETS.get(key)
        verdict = ""
        if target:
            op, bound = target
            met = value <= bound if op == "<=" else value >= bound
            verdict = f"{op} {bound:g}  {'ok' if met else 'MISSED'}"
        print(f"{key:28} {value:>10}  {verdict}")
    print("video stages (ms):", json.dumps(figures["video_stage_ms"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "figures": figures, "targets": TARGETS}, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
