"""Camera leases on PostgreSQL: two claimers never hold one camera, an expired lease changes hands, workers
split the cameras fairly, a worker that cannot renew stops watching before its lease runs out, and a
server with leases watches nothing itself but shows the leases."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from polling import wait_until
from sqlalchemy import select, text

from watchkeeper.config import CameraSettings, LeaseSettings, Settings
from watchkeeper.errors import ConflictError
from watchkeeper.live.leases import LeasedCameras, LeaseStore, fair_share
from watchkeeper.live.service import LiveService
from watchkeeper.store.db import Database
from watchkeeper.store.models import CameraLease


@pytest.fixture(scope="module")
def pg(postgres) -> Iterator[Database]:
    database = Database(postgres.create_database())
    database.upgrade()
    yield database
    database.close()


@pytest.fixture
def db(pg: Database) -> Database:
    with pg.engine.begin() as connection:
        connection.execute(text("TRUNCATE camera_leases, camera_workers"))
    return pg


def store(db: Database, name: str, lease_s: float = 3.0, renew_s: float = 1.0) -> LeaseStore:
    return LeaseStore(db, LeaseSettings(enabled=True, lease_s=lease_s, renew_s=renew_s), host=name)


class FakeLive:
    """What a camera worker uses of ``LiveService``; every worker's fake shares ``watching`` (camera -> worker
    names), so a second watcher of a camera fails the test at once."""

    def __init__(self, name: str, cameras: list[str], watching: dict[str, set[str]]) -> None:
        self.name = name
        self.enabled = cameras
        self.watching = watching
        self.monitors: dict[str, Any] = {}
        self.stopped_at: dict[str, float] = {}

    def reload_cameras(self) -> list[str]:
        return list(self.enabled)

    def start_camera(self, camera: str) -> None:
        assert not self.watching.setdefault(camera, set()), f"{camera} already watched by {self.watching[camera]}"
        self.watching[camera].add(self.name)
        self.monitors[camera] = object()

    def stop_camera(self, camera: str) -> None:
        self.watching[camera].discard(self.name)
        del self.monitors[camera]
        self.stopped_at[camera] = time.time()

    def status(self, camera: str) -> Any:
        return type("Status", (), {"health": {"frames": 1},
                                   "statistics": {"windows_analysed": 1, "windows_skipped": 0}})()


def test_lease_settings_leave_room_for_a_second_renewal():
    with pytest.raises(ValueError, match="a third of lease_s"):
        LeaseSettings(lease_s=3, renew_s=2)
    with pytest.raises(ValueError, match="PostgreSQL database_url"):
        Settings.model_validate({"live": {"leases": {"enabled": True}}})


def test_two_claimers_never_hold_one_camera(db):
    cameras = [f"cam{i:02}" for i in range(24)]
    stores = [store(db, f"w{i}") for i in range(6)]
    claimed: dict[str, set[str]] = {}
    start = threading.Barrier(len(stores))

    def claim(worker: LeaseStore) -> None:
        start.wait()
        claimed[worker.host] = {c for _ in range(3) for c in worker.claim(cameras, 24)}  # again: its own again

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [camera for got in claimed.values() for camera in got]
    assert sorted(every) == cameras  # each camera once, to one claimer
    with db.session(write=False) as session:
        owners = dict(session.execute(select(CameraLease.camera, CameraLease.host)).all())
    assert owners == {camera: host for host, got in claimed.items() for camera in got}
    # An unexpired lease is its owner's: the others cannot take it, the owner renews it.
    owner = next(s for s in stores if claimed[s.host])
    other = next(s for s in stores if s is not owner)
    mine = claimed[owner.host]
    assert other.claim(mine, 24) == []
    assert owner.renew({camera: {"frames": 3} for camera in mine}) == (mine, 1)  # the only heartbeat yet


def test_an_expired_lease_goes_to_another_worker_and_the_first_cannot_renew_it(db):
    first, second = store(db, "first", lease_s=0.6, renew_s=0.15), store(db, "second", lease_s=0.6, renew_s=0.15)
    assert first.claim(["door"], 1) == ["door"]
    assert second.claim(["door"], 1) == []
    time.sleep(0.7)
    assert second.claim(["door"], 1) == ["door"]
    kept, _ = first.renew({"door": None})
    assert kept == set()
    # A clean shutdown frees a lease at once.
    second.leave()
    assert first.claim(["door"], 1) == ["door"]


def test_workers_split_the_cameras_fairly_and_hand_the_surplus_back(db):
    assert fair_share(4, 3, None) == 2 and fair_share(4, 3, 1) == 1 and fair_share(0, 2, None) == 0
    cameras, watching = ["a", "b", "c", "d"], {}
    workers = [LeasedCameras(FakeLive(f"w{i}", cameras, watching), store(db, f"w{i}")) for i in range(3)]
    workers[0].tick()
    assert workers[0].held == cameras  # alone so far: all of them
    for _ in range(2):
        for worker in workers:
            worker.tick()
    held = [worker.held for worker in workers]
    assert sorted(c for h in held for c in h) == cameras and max(len(h) for h in held) == 2
    # One limited to a single camera never takes more, however many are free.
    limited = LeasedCameras(FakeLive("solo", cameras, {}), LeaseStore(
        db, LeaseSettings(enabled=True, lease_s=3, renew_s=1, max_cameras=1), host="solo"))
    for worker in workers:
        worker.stop()
    limited.tick()
    assert len(limited.held) == 1
    # Removed cameras are let go.
    limited.live.enabled = []
    limited.tick()
    assert limited.held == [] and limited.live.monitors == {}


def test_a_camera_that_fails_to_stop_does_not_keep_the_others_running_or_the_leases_held(db):
    live = FakeLive("w", ["a", "b", "c"], {})
    broken = live.stop_camera

    def stop_camera(camera: str) -> None:
        if camera == "b":
            raise RuntimeError("decoder wedged")
        broken(camera)

    live.stop_camera = stop_camera
    worker = LeasedCameras(live, store(db, "w"))
    worker.tick()
    assert worker.held == ["a", "b", "c"]
    worker.stop()  # does not raise
    assert set(live.stopped_at) == {"a", "c"}
    assert store(db, "other").claim(["a", "b", "c"], 3) == ["a", "b", "c"]  # given back, not left to lapse


def test_a_worker_that_cannot_renew_stops_watching_before_its_lease_expires(db):
    watching: dict[str, set[str]] = {}
    stuck = LeasedCameras(FakeLive("stuck", ["gate"], watching), store(db, "stuck", lease_s=1.5, renew_s=0.5))
    stuck.start()
    wait_until(lambda: watching.get("gate") == {"stuck"}, "the first worker watching", 10)
    unblock = threading.Event()
    renew = stuck.store.renew

    def hanging(health: dict[str, Any]) -> tuple[set[str], int]:
        unblock.wait()  # the database answers no more (a partition, a stalled connection)
        return renew(health)

    stuck.store.renew = hanging  # type: ignore[method-assign]
    wait_until(lambda: not watching["gate"], "the first worker to stop watching", 10)
    with db.session(write=False) as session:
        expires_at = session.scalar(select(CameraLease.expires_at).where(CameraLease.camera == "gate"))
    stopped_at = stuck.live.stopped_at["gate"]
    assert stopped_at < expires_at.timestamp() - 0.1  # at 2/3 of the lease: 0.5 s before it runs out
    taker = LeasedCameras(FakeLive("taker", ["gate"], watching), store(db, "taker", lease_s=1.5, renew_s=0.5))
    wait_until(lambda: (taker.tick(), taker.held)[1] == ["gate"], "the second worker taking the camera", 10, 0.2)
    assert watching["gate"] == {"taker"} and time.time() >= expires_at.timestamp()
    unblock.set()
    stuck.stop()
    assert watching["gate"] == {"taker"}  # the first worker's late renewal found the lease gone
    taker.stop()


def test_with_leases_the_server_starts_no_camera_and_shows_the_lease(db, tmp_path):
    settings = Settings.model_validate({
        "data_dir": str(tmp_path), "database_url": db.url, "live": {
            "leases": {"enabled": True}, "cameras": [{"name": "lobby", "source": str(tmp_path / "lobby.mp4")}]}})
    live = LiveService(settings, db, pipelines=lambda: pytest.fail("no models in a server that watches nothing"))
    live.start()
    live.add_camera(CameraSettings(name="door", source=str(tmp_path / "door.mp4")))
    assert live.monitors == {} and not live.status("door").running
    live.set_running("door", False)  # remembered for the workers
    assert live.reload_cameras() == ["lobby"]
    with pytest.raises(ConflictError, match="settings file"):
        live.set_running("lobby", False)
    worker = store(db, "cams-1:42")
    worker.claim(["lobby"], 1)
    worker.renew({"lobby": {"frames": 7}})
    lobby = live.status("lobby")
    assert lobby.running and lobby.health == {"frames": 7} and lobby.worker["host"] == "cams-1:42"
    live.stop()
