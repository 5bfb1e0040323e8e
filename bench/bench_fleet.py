"""Camera fleet benchmark: prints a table and writes bench/results/fleet.json.

``--cameras`` (32) synthetic cameras over ``--workers`` (4) real ``watchkeeper
camera-worker`` processes on this machine, leased in a fresh PostgreSQL
database (127.0.0.1:5432, user postgres, dropped at the end). Each camera
loops a generated test pattern (a room with a bar sweeping across it) at low
resolution and frame rate, played in real time, and is analysed once a
second by the cheap analyzers only (motion and its gate): the bench measures
the fleet's machinery, not the models.

Everything is read where an operator would read it, in the camera state each
worker renews into its leases (``camera_leases.health``, what the API shows):

- spread: cameras per worker once all are watched;
- per-camera lag: the age of the camera's newest frame at each renewal (the
  ``watchkeeper_camera_lag_seconds`` gauge), median, p95 and worst over the
  steady phase; bounded lag is the claim under test;
- fps achieved per camera: frames counted between the first and the last
  renewal of the steady phase, over the time between them;
- analysis per camera: windows analysed per second (one a second expected)
  and windows skipped (analysis behind the camera moves on to the newest
  window), counted the same way; capture can keep up while analysis does not;
- CPU: the workers' processor time over the steady phase (from /proc), in
  all and per camera;
- failover: one worker killed with SIGKILL, then another stopped with
  SIGTERM; for each of their cameras, the seconds from the signal until
  another worker leased it (its monitor starts on the claim) and until that
  worker's renewal showed frames from it (an upper bound: a renewal comes
  every ``renew_s``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median, quantiles
from typing import Any

import yaml
from psycopg import sql
from sqlalchemy import select

from bench_queue import EXE, PG, admin_sql  # run as python bench/bench_fleet.py: bench/ is on the path
from watchkeeper.config import Settings
from watchkeeper.samples import still_room, write_video
from watchkeeper.store.db import Database
from watchkeeper.store.models import CameraLease

CHEAP = ("motion", "gate")  # every other analyzer is switched off


@dataclass
class Lease:
    worker: int | None  # the pid of its owner, None when free
    renewed_at: float  # epoch seconds of its last renewal (or claim)
    acquired_at: float | None
    health: dict[str, Any]


def pattern_video(folder: Path, fps: int, width: int, height: int, seconds: int = 10) -> Path:
    """A room with a bright bar sweeping across it: some motion in every window, decoded for next to nothing."""
    room = still_room(width, height)
    frames = []
    for i in range(seconds * fps):
        frame = room.copy()
        x = i * width // (seconds * fps)
        frame[:, x:x + max(2, width // 20)] = 255
        frames.append(frame)
    return write_video(folder / f"pattern-{width}x{height}-{fps}fps.mp4", frames, fps=fps)


def read_leases(db: Database, lease_s: float) -> dict[str, Lease]:
    with db.session(write=False) as session:
        rows = session.scalars(select(CameraLease)).all()
    now = time.time()
    return {r.camera: Lease(
        int(r.host.rsplit(":", 1)[1]) if r.owner and r.expires_at.timestamp() > now else None,
        r.expires_at.timestamp() - lease_s, r.acquired_at.timestamp() if r.acquired_at else None, r.health or {})
        for r in rows}


def watched(leases: dict[str, Lease], cameras: list[str], alive: set[int]) -> bool:
    """Every camera leased to a live worker whose renewal shows frames from it."""
    return all(c in leases and leases[c].worker in alive and leases[c].health.get("frames", 0) > 0 for c in cameras)


def wait_for(check: Callable[[], bool], what: str, timeout_s: float, every_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout_s} s")
        time.sleep(every_s)


def steady(db: Database, cameras: list[str], seconds: float, lease_s: float) -> dict[str, dict[str, Any]]:
    """Per camera: its worker, its lag at each renewal, and between the phase's first and last renewal its fps,
    windows analysed per second and windows skipped."""
    # (camera, worker) -> renewal time -> (newest frame's age, frames, windows analysed, windows skipped so far);
    # a camera that moved counts anew.
    renewals: dict[tuple[str, int | None], dict[float, tuple[float, int, int, int]]] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for camera, lease in read_leases(db, lease_s).items():
            age = lease.health.get("last_frame_age_s")
            if age is not None:
                renewals.setdefault((camera, lease.worker), {})[lease.renewed_at] = (
                    age, lease.health["frames"], lease.health["windows_analysed"], lease.health["windows_skipped"])
        time.sleep(0.5)
    leases = read_leases(db, lease_s)
    out = {}
    for camera in cameras:
        seen = renewals[camera, leases[camera].worker]
        ages = [age for age, *_ in seen.values()]
        (t0, (_, f0, a0, s0)), (t1, (_, f1, a1, s1)) = min(seen.items()), max(seen.items())
        out[camera] = {"worker": leases[camera].worker, "renewals": len(ages),
                       "lag_median_s": round(median(ages), 3), "lag_p95_s": round(percentile95(ages), 3),
                       "lag_max_s": round(max(ages), 3),
                       "fps": round((f1 - f0) / (t1 - t0), 2) if t1 > t0 else None,
                       "analysed_per_s": round((a1 - a0) / (t1 - t0), 2) if t1 > t0 else None,
                       "skipped": s1 - s0}
    return out


def cpu_seconds(pid: int) -> float:
    """Processor time (user + system, all threads) of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile95(values: list[float]) -> float:
    return quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def failover(db: Database, victim: subprocess.Popen, how: signal.Signals, alive: set[int],
             lease_s: float, timeout_s: float) -> dict[str, Any]:
    """Signal one worker; per camera it held, seconds until another leased it and until frames showed again."""
    held = [c for c, lease in read_leases(db, lease_s).items() if lease.worker == victim.pid]
    alive.discard(victim.pid)
    signalled = time.time()
    victim.send_signal(how)
    exited: float | None = None
    back: dict[str, tuple[float, float]] = {}  # camera -> (claimed by another, seen with frames there)
    deadline = time.monotonic() + timeout_s
    while len(back) < len(held):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(held) - len(back)} camera(s) not watched again after {timeout_s} s")
        if exited is None and victim.poll() is not None:
            exited = time.time()
        leases = read_leases(db, lease_s)
        for camera in held:
            if camera not in back and watched(leases, [camera], alive):
                back[camera] = (leases[camera].acquired_at or 0.0, time.time())
        time.sleep(0.1)
    victim.wait(60)
    leased_after = [claimed - signalled for claimed, _ in back.values()]
    seen_after = [seen - signalled for _, seen in back.values()]
    return {"signal": how.name, "cameras": len(held), "exit_s": round((exited or time.time()) - signalled, 2),
            "exit_code": victim.returncode,
            "leased_again_median_s": round(median(leased_after), 2), "leased_again_max_s": round(max(leased_after), 2),
            "frames_again_max_s": round(max(seen_after), 2),
            "spread_after": spread(read_leases(db, lease_s), alive)}


def spread(leases: dict[str, Lease], workers: set[int]) -> list[int]:
    return sorted((sum(lease.worker == pid for lease in leases.values()) for pid in workers), reverse=True)


def balanced(leases: dict[str, Lease], cameras: list[str], workers: set[int]) -> bool:
    """Every camera watched, and each worker holding its fair share (one more or less)."""
    counts = spread(leases, workers)
    return watched(leases, cameras, workers) and counts[0] - counts[-1] <= 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60, help="Length of the steady phase.")
    parser.add_argument("--fps", type=int, default=5, help="The test pattern's frame rate.")
    parser.add_argument("--size", default="160x120", help="The test pattern's width x height.")
    parser.add_argument("--lease-s", type=float, default=15.0, help="live.leases.lease_s (the default).")
    parser.add_argument("--renew-s", type=float, default=5.0, help="live.leases.renew_s (the default).")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fleet.json")
    args = parser.parse_args()
    if args.workers < 3:
        parser.error("--workers: at least 3 (one is killed, one stopped, one keeps watching)")
    width, height = (int(n) for n in args.size.split("x"))
    scratch = Path(tempfile.mkdtemp())
    source = pattern_video(scratch, args.fps, width, height)
    cameras = [f"cam{i:02}" for i in range(args.cameras)]
    name = f"wk_bench_{secrets.token_hex(4)}"
    admin_sql(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    config = scratch / "settings.yaml"
    config.write_text(yaml.safe_dump({
        "database_url": url, "data_dir": str(scratch / "data"), "logging": {"format": "json"},
        "analyzers": {analyzer: {"enabled": False} for analyzer, _ in Settings().analyzers if analyzer not in CHEAP},
        "live": {"leases": {"enabled": True, "lease_s": args.lease_s, "renew_s": args.renew_s},
                 "cameras": [{"name": c, "source": str(source), "loop": True} for c in cameras]}}))
    db = Database(url)
    db.upgrade()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    load_before = os.getloadavg()
    workers = [subprocess.Popen([EXE, "--config", str(config), "camera-worker", "--data-dir", str(scratch / f"w{i}")],
                                env=env, start_new_session=True, stdout=(scratch / f"worker-{i}.log").open("wb"),
                                stderr=subprocess.STDOUT) for i in range(args.workers)]
    alive = {w.pid for w in workers}
    try:
        started = time.monotonic()
        wait_for(lambda: watched(read_leases(db, args.lease_s), cameras, alive), "every camera watched", 180)
        all_watched_s = time.monotonic() - started
        # Workers that came up late take their share from the others: the steady phase starts once they have.
        wait_for(lambda: balanced(read_leases(db, args.lease_s), cameras, alive), "an even spread", 180)
        cpu_before, steady_started = {pid: cpu_seconds(pid) for pid in alive}, time.monotonic()
        per_camera = steady(db, cameras, args.seconds, args.lease_s)
        cpu_percent = 100 * sum(cpu_seconds(pid) - cpu_before[pid] for pid in alive) / (
            time.monotonic() - steady_started)
        spread_steady = spread(read_leases(db, args.lease_s), alive)
        by_load = sorted(workers, key=lambda w: -sum(c["worker"] == w.pid for c in per_camera.values()))
        budget_s = args.lease_s + 3 * args.renew_s + 30  # a lapsed lease, a renewal or two, a loaded machine
        killed = failover(db, by_load[0], signal.SIGKILL, alive, args.lease_s, budget_s)
        stopped = failover(db, by_load[1], signal.SIGTERM, alive, args.lease_s, budget_s)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(60)
        db.close()
        admin_sql(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    load_after = os.getloadavg()

    print(f"{args.cameras} cameras ({width}x{height}, {args.fps} fps test pattern, analysed every second) over "
          f"{args.workers} camera-worker processes; leases {args.lease_s:g} s, renewed every {args.renew_s:g} s; "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"all watched {all_watched_s:.1f} s after start; cameras per worker {spread_steady}; "
          f"steady phase {args.seconds:g} s")
    print(f"{'camera':>7} {'worker':>7} {'fps':>6} {'lag med s':>10} {'lag p95 s':>10} {'lag max s':>10} "
          f"{'analysed/s':>11} {'skipped':>8} {'renewals':>9}")
    for camera, row in per_camera.items():
        print(f"{camera:>7} {row['worker']:>7} {row['fps'] if row['fps'] is not None else '-':>6} "
              f"{row['lag_median_s']:>10.3f} {row['lag_p95_s']:>10.3f} {row['lag_max_s']:>10.3f} "
              f"{row['analysed_per_s'] if row['analysed_per_s'] is not None else '-':>11} {row['skipped']:>8} "
              f"{row['renewals']:>9}")
    rates = [row["fps"] for row in per_camera.values() if row["fps"] is not None]
    analysed = [row["analysed_per_s"] for row in per_camera.values() if row["analysed_per_s"] is not None]
    summary = {"fps_min": min(rates), "fps_median": median(rates),
               "analysed_per_s_min": min(analysed), "analysed_per_s_median": median(analysed),
               "windows_skipped": sum(row["skipped"] for row in per_camera.values()),
               "lag_median_s": median(row["lag_median_s"] for row in per_camera.values()),
               "lag_max_s": max(row["lag_max_s"] for row in per_camera.values()),
               "cpu_percent_of_one_core": round(cpu_percent, 1),
               "cpu_percent_per_camera": round(cpu_percent / len(cameras), 2)}
    print(f"all cameras: fps min {summary['fps_min']:.2f}, median {summary['fps_median']:.2f} (source {args.fps}); "
          f"lag median {summary['lag_median_s']:.3f} s, worst {summary['lag_max_s']:.3f} s; windows analysed per "
          f"second min {summary['analysed_per_s_min']:.2f}, median {summary['analysed_per_s_median']:.2f}, "
          f"{summary['windows_skipped']} skipped; workers' CPU "
          f"{cpu_percent:.0f}% of one core, {summary['cpu_percent_per_camera']:.1f}% per camera")
    print(f"{'failover':>9} {'cameras':>8} {'exit s':>7} {'leased again s (med/max)':>25} {'frames again max s':>19} "
          f"{'spread after':>14}")
    for row in (killed, stopped):
        print(f"{row['signal']:>9} {row['cameras']:>8} {row['exit_s']:>7.2f} "
              f"{row['leased_again_median_s']:>12.2f} / {row['leased_again_max_s']:<10.2f} "
              f"{row['frames_again_max_s']:>19.2f} {str(row['spread_after']):>14}")
    report = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in load_after]},
        "cameras": args.cameras, "workers": args.workers,
        "source": {"kind": "looping file, played in real time", "width": width, "height": height, "fps": args.fps},
        "analyzers": list(CHEAP), "lease_s": args.lease_s, "renew_s": args.renew_s,
        "all_watched_after_start_s": round(all_watched_s, 2), "steady_seconds": args.seconds,
        "cameras_per_worker": spread_steady, "summary": summary, "per_camera": per_camera,
        "failover": [killed, stopped],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
