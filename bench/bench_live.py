"""Live monitoring benchmark: prints a table and writes bench/results/live.json.

For N = 1, 2, 4... cameras, each a 720p file played in real time on a loop
(decoding at its full 25 fps, as a camera stream would be), analysed once a
second on one shared pair of tier pipelines, for ``--seconds``; the room is
empty, or (``--people 0,3``) has that many photographed people standing in
it, whom the objects analyzer sees, so the weapon detector searches each
analysed frame (tier 1 searches only frames with someone in view):

- windows analysed vs skipped (a camera whose analysis falls behind skips to
  the newest window; no growing lag is skipped == 0 once running), and how
  many of them went on to tier 2 (a candidate: every enabled analyzer);
- CPU per camera (process CPU time over wall time, divided by N);
- analysis time per window (median);
- alert latency: from the first frame of a siren (at 3 s into each pass of
  the file) to the incident event, as a WebSocket client would get it (the
  gate waits for two supporting windows, so this is at least a window hop);
- event latency: from the end of the window that opened the incident (its
  newest frame) to the event.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from bench_weapons import with_people  # run as python bench/bench_live.py: bench/ is on the path
from watchkeeper.config import CameraSettings, Settings
from watchkeeper.live import IncidentEvent, Monitor
from watchkeeper.live.monitor import tier_pipelines
from watchkeeper.live.slots import AnalysisSlots
from watchkeeper.samples import noise, siren, still_room, write_video

SIREN_AT_S, PASS_S, FPS = 3.0, 20.0, 25


def make_camera_file(folder: Path, people: int) -> Path:
    room = np.kron(still_room(320, 180), np.ones((4, 4, 1), np.uint8))  # 1280 x 720
    with_people(room, people)
    audio = np.concatenate([noise(SIREN_AT_S), siren(6.0), noise(PASS_S - SIREN_AT_S - 6.0)])
    frames = (np.roll(room, i % 8, axis=1) for i in range(int(PASS_S * FPS)))
    return write_video(folder / f"camera-720p-{people}-people.mp4", frames, fps=FPS, audio=audio)


def run(n: int, people: int, source: Path, seconds: float, pipelines: Any, settings: Settings) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp())
    slots = AnalysisSlots()  # shared, as a server's cameras share it
    monitors = [Monitor(CameraSettings(name=f"cam{i}", source=str(source), loop=True), settings=settings,
                        pipelines=pipelines, evidence_dir=scratch / "evidence", reports_dir=scratch / f"reports{i}",
                        slots=slots)
                for i in range(n)]
    latencies: list[float] = []
    event_latencies: list[float] = []
    lock = threading.Lock()

    def heard(monitor: Monitor, event: IncidentEvent) -> None:
        if event.kind == "opened" and event.incident.category == "alarm":
            # Camera time runs with the wall clock from the monitor's start; the siren starts 3 s into a pass.
            camera_now = monitor.capture.now()
            siren_t = (event.t // PASS_S) * PASS_S + SIREN_AT_S
            with lock:
                latencies.append(camera_now - siren_t)
                event_latencies.append(camera_now - event.t)

    for monitor in monitors:
        monitor.on_incident(lambda event, m=monitor: heard(m, event))
    cpu0, wall0 = time.process_time(), time.monotonic()
    for monitor in monitors:
        monitor.start()
    time.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    stats = [m.statistics() for m in monitors]
    for monitor in monitors:
        monitor.stop()
    analysed = sum(s["windows_analysed"] for s in stats)
    skipped = sum(s["windows_skipped"] for s in stats)
    per_camera = [s["windows_analysed"] for s in stats]
    return {
        "cameras": n,
        "people": people,
        "windows_analysed": analysed,
        "windows_tier2": sum(s["windows_tier2"] for s in stats),
        "windows_skipped": skipped,
        "skipped_fraction": round(skipped / max(1, analysed + skipped), 3),
        "analysed_per_camera": per_camera,
        "cpu_per_camera": round(cpu / wall / n, 3),
        "analysis_ms_p50": median(s["analysis_ms_p50"] for s in stats if s["analysis_ms_p50"] is not None),
        "alert_latency_s": sorted(round(x, 2) for x in latencies),
        "alert_latency_s_median": round(median(latencies), 2) if latencies else None,
        "event_latency_s_median": round(median(event_latencies), 2) if event_latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", default="1,2,4")
    parser.add_argument("--people", default="0", help="people in view, e.g. 0,3: each count is run with each "
                        "number of cameras")
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "live.json")
    args = parser.parse_args()
    settings = Settings()
    pipelines = tier_pipelines(settings)
    with tempfile.TemporaryDirectory() as folder:
        rows = []
        for people in (int(k) for k in args.people.split(",")):
            source = make_camera_file(Path(folder), people)
            rows += [run(int(n), people, source, args.seconds, pipelines, settings)
                     for n in args.cameras.split(",")]
    print(f"{'cameras':>7} {'people':>6} {'analysed':>8} {'tier 2':>6} {'skipped':>8} {'cpu/cam':>8} "
          f"{'ms/window':>9} {'alert s':>8} {'event s':>8}")
    for r in rows:
        print(f"{r['cameras']:>7} {r['people']:>6} {r['windows_analysed']:>8} {r['windows_tier2']:>6} "
              f"{r['windows_skipped']:>8} {r['cpu_per_camera']:>8} {round(r['analysis_ms_p50']):>9} "
              f"{str(r['alert_latency_s_median']):>8} {str(r['event_latency_s_median']):>8}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    source = "1280x720 at 25 fps, H.264 + AAC; a room, empty or with photographed people standing in it"
    args.out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                                    "seconds": args.seconds, "source": source, "results": rows}, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
