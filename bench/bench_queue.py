"""Job queue benchmark on Celery: prints a table and writes bench/results/queue.json.

Real ``watchkeeper worker`` processes (1, 2 and 4) on Redis (127.0.0.1:6379,
database 12, emptied) and a fresh PostgreSQL database (127.0.0.1:5432, user
postgres, dropped at the end) run short audio analyses (distinct 2 s clips,
so no result comes from the cache). Each round first warms every worker (its
models load on its first job), then submits ``--jobs`` at once through the
queue and reports jobs per second (first submit to last finish), its ratio to
one worker, and queue latency (submit to start: median and p95).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median, quantiles
from typing import Any

import psycopg
import redis
import yaml
from psycopg import sql
from sqlalchemy import func, select

from watchkeeper.api.submissions import ANALYZE_JOB
from watchkeeper.config import Settings
from watchkeeper.jobs.celery_app import CeleryJobQueue, configure
from watchkeeper.samples import noise, siren, write_audio
from watchkeeper.store.db import Database
from watchkeeper.store.models import Job

REDIS_URL = "redis://127.0.0.1:6379/12"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
EXE = str(Path(sys.executable).with_name("watchkeeper"))
SEEDS = itertools.count()


def admin_sql(statement: sql.Composed) -> None:
    with psycopg.connect(**PG, dbname="postgres", autocommit=True) as conn:
        conn.execute(statement)


def wait_done(db: Database, job_ids: list[str], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with db.session(write=False) as session:
            left = session.scalar(select(func.count()).select_from(Job).where(
                Job.id.in_(job_ids), Job.state.in_(("pending", "running"))))
        if not left:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{left} jobs still unfinished after {timeout_s} s")


def clips(folder: Path, name: str, count: int) -> list[Path]:
    """Short clips (a siren over noise), each different, so no result comes from the cache."""
    return [write_audio(folder / f"{name}-{i}.wav", siren(1.0) + noise(1.0, amplitude=0.02, seed=next(SEEDS)))
            for i in range(count)]


def submit(queue: CeleryJobQueue, clips: list[Path]) -> list[str]:
    return [queue.submit(ANALYZE_JOB, {"source": str(clip), "media_type": "audio"}, media_type="audio_file")
            for clip in clips]


def run_round(workers: int, jobs: int, config: Path, queue: CeleryJobQueue, media: Path) -> dict[str, Any]:
    redis.Redis.from_url(REDIS_URL).flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    processes = [subprocess.Popen([EXE, "--config", str(config), "worker"], env=env, start_new_session=True,
                                  stdout=(media / f"worker-{workers}-{i}.log").open("wb"), stderr=subprocess.STDOUT)
                 for i in range(workers)]
    try:
        wait_done(queue.db, submit(queue, clips(media, f"warm{workers}", 2 * workers)))  # every worker loads models
        job_ids = submit(queue, clips(media, f"round{workers}", jobs))
        wait_done(queue.db, job_ids)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)
    with queue.db.session(write=False) as session:
        jobs = list(session.scalars(select(Job).where(Job.id.in_(job_ids))))
    failed = [job.id for job in jobs if job.state != "succeeded"]
    span_s = (max(j.finished_at for j in jobs) - min(j.created_at for j in jobs)).total_seconds()
    waits = sorted((j.started_at - j.created_at).total_seconds() for j in jobs)
    return {"workers": workers, "jobs": len(jobs), "failed": len(failed), "seconds": round(span_s, 2),
            "jobs_per_s": round(len(jobs) / span_s, 2), "latency_median_s": round(median(waits), 3),
            "latency_p95_s": round(quantiles(waits, n=20)[-1], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40, help="Jobs per round.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "queue.json")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp())
    media = scratch / "media"
    media.mkdir()
    name = f"wk_bench_{secrets.token_hex(4)}"
    admin_sql(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    raw = {"database_url": url, "data_dir": str(scratch / "data"), "queue": "celery",
           "celery": {"broker_url": REDIS_URL}, "server": {"media_roots": [str(media)], "job_lease_s": 10}}
    config = scratch / "settings.yaml"
    config.write_text(yaml.safe_dump(raw))
    settings = Settings.model_validate(raw)
    db = Database(url)
    db.upgrade()
    queue = CeleryJobQueue(db, configure(settings), lease_s=10, max_attempts=3)
    try:
        rounds = [run_round(n, args.jobs, config, queue, media) for n in args.workers]
    finally:
        db.close()
        admin_sql(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    base = rounds[0]["jobs_per_s"]
    for r in rounds:
        r["ratio_to_one"] = round(r["jobs_per_s"] / base, 2)
    print(f"{'workers':>7} {'jobs':>5} {'failed':>6} {'jobs/s':>7} {'ratio':>6} {'wait median s':>14} "
          f"{'wait p95 s':>11}")
    for r in rounds:
        print(f"{r['workers']:>7} {r['jobs']:>5} {r['failed']:>6} {r['jobs_per_s']:>7.2f} {r['ratio_to_one']:>6.2f} "
              f"{r['latency_median_s']:>14.3f} {r['latency_p95_s']:>11.3f}")
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "broker": "redis", "database": "postgresql", "job": "analyze, 2 s audio clip", "rounds": rounds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
