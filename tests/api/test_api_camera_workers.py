"""Cameras on several hosts: three real `watchkeeper camera-worker` processes lease four looping file cameras in
one PostgreSQL database, beside a `watchkeeper serve` that only serves the API. Every camera is watched once;
a worker killed with SIGKILL has its cameras resume on the others within a lease and a renewal, never on two
at once; a worker stopped cleanly gives its cameras back."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import websockets
from apiserver import EXE, ApiServer, base_settings
from mediagen import still_room, write_video
from polling import wait_until
from sqlalchemy import select

from watchkeeper.store.db import Database
from watchkeeper.store.models import CameraLease, CameraWorker

CAMERAS = ["dock", "gate", "hall", "yard"]
LEASE_S, RENEW_S = 3.0, 1.0
STARTUP_SLACK_S = 3.0  # a loaded machine's late rounds and the new monitor's start


class Worker:
    def __init__(self, root: Path, server: ApiServer) -> None:
        self.log = root / "worker.log"
        self.data_dir = root / "data"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [EXE, "--config", str(server.config), "camera-worker", "--data-dir", str(self.data_dir)],
                cwd=root, env=server.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.host_suffix = f":{self.process.pid}"

    def events(self) -> list[dict[str, Any]]:
        """Its JSON log lines about starting and stopping cameras."""
        lines = [json.loads(line) for line in self.log.read_text(errors="replace").splitlines()
                 if line.startswith("{")]
        return [e for e in lines if e["message"] in ("watching camera", "stopped watching camera")]

    def stop(self, number: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(number)
            self.process.wait(60)


@pytest.fixture(scope="module")
def site(start_server, postgres, media_root: Path,
         tmp_path_factory) -> Iterator[tuple[ApiServer, list[Worker], Database]]:
    url = postgres.create_database()
    folder = tmp_path_factory.mktemp("leased-cams")
    cameras = [{"name": name, "source": str(write_video(folder / f"{name}.mp4", (still_room(
        160, 120, seed=(i + k) % 3) for k in range(20)), fps=10)), "loop": True, "analysis_interval_s": 2.0}
        for i, name in enumerate(CAMERAS)]
    settings = {**base_settings(media_root), "database_url": url, "events": {"backend": "postgres"},
                "logging": {"format": "json"},
                "live": {"cameras": cameras, "leases": {"enabled": True, "lease_s": LEASE_S, "renew_s": RENEW_S}}}
    server = start_server("leased-api", settings)
    workers = [Worker(tmp_path_factory.mktemp(f"worker{i}"), server) for i in range(3)]
    db = Database(url)
    yield server, workers, db
    for worker in workers:
        worker.stop()
    db.close()
    server.stop()


def leases(db: Database) -> dict[str, str | None]:
    """Camera -> the host:pid of its unexpired lease's owner."""
    with db.session(write=False) as session:
        rows = session.scalars(select(CameraLease)).all()
    return {r.camera: r.host for r in rows if r.owner is not None and r.expires_at.timestamp() > time.time()}


def watching(worker: Worker) -> set[str]:
    held: set[str] = set()
    for event in worker.events():
        (held.add if event["message"] == "watching camera" else held.discard)(event["camera"])
    return held


def assert_never_two_at_once(workers: list[Worker], ended: dict[int, float]) -> None:
    """From the workers' logs: per camera, one watcher's span ends before the next one's begins (a killed
    worker's spans end when it was killed)."""
    spans: dict[str, list[tuple[float, float, int]]] = {}
    for index, worker in enumerate(workers):
        opened: dict[str, float] = {}
        for event in worker.events():
            at = datetime.fromisoformat(event["time"]).timestamp()
            if event["message"] == "watching camera":
                opened[event["camera"]] = at
            else:
                spans.setdefault(event["camera"], []).append((opened.pop(event["camera"]), at, index))
        for camera, start in opened.items():
            spans.setdefault(camera, []).append((start, ended.get(index, float("inf")), index))
    for camera, camera_spans in spans.items():
        ordered = sorted(camera_spans)
        for (_, end, before), (start, _, after) in zip(ordered, ordered[1:]):
            assert end <= start, f"{camera}: worker {before} until {end}, worker {after} from {start}"


def test_every_camera_is_watched_once_and_a_killed_workers_cameras_move_on(site):
    server, workers, db = site

    def spread() -> bool:
        held = [watching(w) for w in workers]
        owners = leases(db)
        return (sorted(c for h in held for c in h) == CAMERAS and max(map(len, held)) <= 2
                and sorted(owners) == CAMERAS)

    wait_until(spread, "the four cameras spread over the three workers", 120, 0.5)
    with server.client(server.admin_key) as client:
        shown = wait_until(lambda: (cams := client.get("/api/v1/cameras").json()) and all(
            c["running"] and (c["health"] or {}).get("frames", 0) > 0 for c in cams) and cams,
            "every camera's health from its worker", 60, 0.5)
    owners = leases(db)
    assert {c["name"]: c["worker"]["host"] for c in shown} == owners
    assert "monitor started" not in server.log.read_text()  # the API server watches nothing itself
    # Their alerts' links are signed with the database's secret, not a key each made in its own data folder.
    assert not any((w.data_dir / "link-signing.key").exists() for w in [*workers, server])

    victim_index = max(range(3), key=lambda i: len(watching(workers[i])))
    victim = workers[victim_index]
    moved = watching(victim)
    feed_url = server.url.replace("http://", "ws://") + f"/ws/events?api_key={server.admin_key}"

    async def kill_and_see_them_start_elsewhere() -> float:
        async with websockets.connect(feed_url) as feed:
            killed_at = time.time()
            victim.stop(signal.SIGKILL)
            started: set[str] = set()
            while not moved <= started:  # the survivors' events reach the API server's clients over the bus
                message = json.loads(await asyncio.wait_for(feed.recv(), timeout=60))
                if message["type"] == "camera" and message["state"] == "started":
                    started.add(message["camera"])
            return killed_at

    killed_at = asyncio.run(kill_and_see_them_start_elsewhere())
    survivors = [w for w in workers if w is not victim]
    resumed = sorted((datetime.fromisoformat(e["time"]).timestamp(), e["camera"]) for w in survivors
                     for e in w.events() if e["message"] == "watching camera" and e["camera"] in moved)
    first_resumed = {camera: at for at, camera in reversed(resumed) if at > killed_at}
    assert set(first_resumed) == moved
    assert max(first_resumed.values()) - killed_at <= LEASE_S + RENEW_S + STARTUP_SLACK_S
    wait_until(lambda: sorted(c for w in survivors for c in watching(w)) == CAMERAS
               and all(not h.endswith(victim.host_suffix) for h in leases(db).values()) and len(leases(db)) == 4,
               "every camera on the two survivors", 30, 0.5)
    assert_never_two_at_once(workers, {victim_index: killed_at})

    # A clean stop gives the leases back at once and leaves the worker list.
    for worker in survivors:
        worker.stop()
    assert leases(db) == {}
    with db.session(write=False) as session:
        hosts = session.scalars(select(CameraWorker.host)).all()
    assert all(h.endswith(victim.host_suffix) for h in hosts)  # only the killed one's stale heartbeat
    with server.client(server.admin_key) as client:
        assert not any(c["running"] for c in client.get("/api/v1/cameras").json())
