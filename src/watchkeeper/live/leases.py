"""Cameras spread over ``watchkeeper camera-worker`` processes on several hosts, one PostgreSQL database.

Each camera has a row in ``camera_leases``: the worker that owns it (a random
id per process) and when that lease expires, by the database's clock. A worker
claims free or expired rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` and
sets itself as owner with a new expiry, all in one transaction, so two
claimers never both get a row. Every ``renew_s`` it extends its leases with
``UPDATE ... WHERE owner = me`` (a lease another worker took over stays
theirs) and beats its heartbeat in ``camera_workers``; on shutdown it stops
its cameras, then frees their rows.

Never two at once: a lease renewed in a transaction that began after the
worker's clock read ``t`` expires no sooner than ``t + lease_s``. The worker
watches the camera only until ``t + 2/3 lease_s`` unless a later renewal
succeeds: a guard thread stops the camera then, whatever the renewing thread
is waiting on. Another worker takes the row only once it has expired, a third
of a lease after the first stopped. A killed worker's cameras are free at most
``lease_s`` after its last renewal; the others look every ``renew_s``.

Balance: a worker holds at most ``ceil(cameras / live workers)`` (workers
whose heartbeat is younger than a lease) and at most ``max_cameras``; one that
holds more (a worker joined) hands the surplus back.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from ..config import LeaseSettings
from ..store.db import Database
from ..store.models import CameraLease, CameraWorker
from .service import LiveService, stop_side_by_side

log = logging.getLogger(__name__)

WATCH_SHARE = 2 / 3  # of a lease, from the start of the last successful renewal
# A lease row given back: claimable at once.
_FREE = {"owner": None, "host": None, "acquired_at": None, "expires_at": func.now(), "health": None}


class LeaseStore:
    """One worker's leases in the database; every time is the database's."""

    def __init__(self, db: Database, settings: LeaseSettings, *, worker_id: str | None = None,
                 host: str | None = None) -> None:
        self.db = db
        self.settings = settings
        self.worker_id = worker_id or uuid.uuid4().hex
        self.host = host or f"{socket.gethostname()}:{os.getpid()}"
        self._lease = timedelta(seconds=settings.lease_s)

    def renew(self, health: dict[str, dict[str, Any] | None]) -> tuple[set[str], int]:
        """Extend the leases of these cameras (name -> health to show) and beat the heartbeat; returns the
        cameras still this worker's and how many workers are alive, this one included."""
        now = func.now()
        with self.db.session() as session:
            session.execute(insert(CameraWorker).values(id=self.worker_id, host=self.host, started_at=now,
                                                        heartbeat_at=now)
                            .on_conflict_do_update(index_elements=[CameraWorker.id], set_={"heartbeat_at": now}))
            session.execute(delete(CameraWorker).where(CameraWorker.heartbeat_at < now - self._lease))
            kept = {name for name, camera_health in health.items() if session.scalar(
                update(CameraLease).where(CameraLease.camera == name, CameraLease.owner == self.worker_id)
                .values(expires_at=now + self._lease, health=camera_health).returning(CameraLease.camera))}
            workers = session.scalar(select(func.count()).select_from(CameraWorker))
        return kept, workers or 1

    def claim(self, cameras: Iterable[str], count: int) -> list[str]:
        """Take up to ``count`` of these cameras whose lease is free or expired (or still this worker's)."""
        names = sorted(cameras)
        if count <= 0 or not names:
            return []
        now = func.now()
        with self.db.session() as session:
            session.execute(insert(CameraLease).values([{"camera": name, "expires_at": now} for name in names])
                            .on_conflict_do_nothing(index_elements=[CameraLease.camera]))
            free = list(session.scalars(
                select(CameraLease.camera)
                .where(CameraLease.camera.in_(names),
                       or_(CameraLease.owner.is_(None), CameraLease.expires_at < now,
                           CameraLease.owner == self.worker_id))
                .order_by(CameraLease.camera).limit(count).with_for_update(skip_locked=True)))
            if free:
                session.execute(update(CameraLease).where(CameraLease.camera.in_(free))
                                .values(owner=self.worker_id, host=self.host, acquired_at=now,
                                        expires_at=now + self._lease, health=None))
        return free

    def release(self, cameras: Iterable[str] | None = None) -> None:
        """Free these leases of this worker (all of them by default) now: its monitors of them have stopped."""
        query = update(CameraLease).where(CameraLease.owner == self.worker_id)
        if cameras is not None:
            query = query.where(CameraLease.camera.in_(list(cameras)))
        with self.db.session() as session:
            session.execute(query.values(**_FREE))

    def leave(self) -> int:
        """Free every lease and take this worker off the heartbeat list (a clean shutdown), in one transaction, so
        that the others' next round sees both the free cameras and their larger share; returns how many were freed."""
        with self.db.session() as session:
            freed = session.execute(update(CameraLease).where(CameraLease.owner == self.worker_id)
                                    .values(**_FREE)).rowcount  # type: ignore[attr-defined]
            session.execute(delete(CameraWorker).where(CameraWorker.id == self.worker_id))
        return freed

    def forget(self, wanted: Iterable[str]) -> None:
        """Delete the free or expired rows of every other camera (removed, or disabled)."""
        with self.db.session() as session:
            session.execute(delete(CameraLease).where(
                CameraLease.camera.not_in(list(wanted)),
                or_(CameraLease.owner.is_(None), CameraLease.expires_at < func.now())))


def fair_share(cameras: int, workers: int, max_cameras: int | None) -> int:
    """The most cameras one worker should hold: an even split, rounded up, within its own limit."""
    share = math.ceil(cameras / max(workers, 1))
    return share if max_cameras is None else min(share, max_cameras)


class LeasedCameras:
    """Runs the cameras of ``live`` that this worker holds leases for: claims, renews, gives back.

    Every change of what is held and watched happens under one lock, so the guard never stops a camera
    that a renewal is just confirming, nor misses one a claim is just starting.
    """

    def __init__(self, live: LiveService, store: LeaseStore) -> None:
        self.live = live
        self.store = store
        self.settings = store.settings
        self._held: dict[str, float] = {}  # camera -> monotonic time its watching must have stopped by
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._held)

    def start(self) -> None:
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run, name="watchkeeper-leases", daemon=True),
                         threading.Thread(target=self._guard, name="watchkeeper-lease-guard", daemon=True)]
        for thread in self._threads:
            thread.start()
        log.info("camera worker started", extra={"worker": self.store.worker_id, "host": self.store.host})

    def stop(self) -> None:
        """Stop every camera (before waiting on a round that may hang on the database), then give back every
        lease, also those a last round claimed without starting."""
        self._stop.set()
        with self._lock:  # held no more: neither the guard nor a last round touches them now
            stopping = sorted(self._held)
            self._held.clear()
        log.info("camera worker stopping its cameras", extra={"worker": self.store.worker_id, "cameras": stopping})
        stop_side_by_side(stopping, lambda name: self._stop_watching(name, "shutdown"))
        for thread in self._threads:
            thread.join()
        try:
            freed = self.store.leave()
        except Exception:  # the leases expire by themselves
            log.exception("leases not given back; they lapse in lease_s", extra={"worker": self.store.worker_id})
        else:
            log.info("camera leases given back", extra={"worker": self.store.worker_id, "leases": freed})

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the database is away: the guard stops what can no longer be renewed
                log.exception("lease round failed", extra={"worker": self.store.worker_id})
            self._stop.wait(self.settings.renew_s)

    def _guard(self) -> None:
        while not self._stop.wait(min(0.1, self.settings.lease_s / 30)):
            with self._lock:
                for name in [n for n, deadline in self._held.items() if time.monotonic() >= deadline]:
                    self._unwatch(name, "not renewed in time")

    def tick(self) -> None:
        """One round: renew and heartbeat, drop what was lost, gone or over the share, claim up to it."""
        started = time.monotonic()
        with self._lock:
            held = list(self._held)
        kept, workers = self.store.renew({name: self._health(name) for name in held})
        with self._lock:
            for name in held:
                if name in self._held:  # not stopped by the guard meanwhile
                    if name in kept:
                        self._held[name] = started + WATCH_SHARE * self.settings.lease_s
                    else:
                        self._unwatch(name, "lease taken over")
        wanted = self.live.reload_cameras()
        share = fair_share(len(wanted), workers, self.settings.max_cameras)
        with self._lock:
            gone = [name for name in self._held if name not in wanted]
            surplus = sorted(name for name in self._held if name in wanted)[share:]
            for name in gone + surplus:
                self._unwatch(name, "removed or disabled" if name in gone else "over the fair share")
            room = share - len(self._held)
            candidates = [name for name in wanted if name not in self._held]
        self.store.release(gone + surplus)
        self.store.forget(wanted)
        if room <= 0:
            return
        started = time.monotonic()
        claimed = self.store.claim(candidates, room)
        with self._lock:
            if self._stop.is_set():  # stopping: leave() frees them
                return
            for name in claimed:
                self._held[name] = started + WATCH_SHARE * self.settings.lease_s
                log.info("watching camera", extra={"camera": name, "worker": self.store.worker_id})
                self.live.start_camera(name)

    def _unwatch(self, name: str, reason: str) -> None:  # under the lock
        del self._held[name]
        self._stop_watching(name, reason)

    def _stop_watching(self, name: str, reason: str) -> None:
        # One camera's failed stop must not cost the others theirs, the guard its thread, or a shutdown the
        # giving back of the leases.
        try:
            self.live.stop_camera(name)
        except Exception:
            log.exception("camera did not stop cleanly", extra={"camera": name, "worker": self.store.worker_id,
                                                                "reason": reason})
            return
        log.info("stopped watching camera", extra={"camera": name, "worker": self.store.worker_id, "reason": reason})

    def _health(self, name: str) -> dict[str, Any] | None:
        """The camera's capture health, with its analysis windows done and skipped so far (whether analysis keeps
        up, which capture alone does not show)."""
        if self.live.monitors.get(name) is None:
            return None
        status = self.live.status(name)
        statistics = status.statistics or {}
        return {**status.health, "windows_analysed": statistics.get("windows_analysed"),
                "windows_skipped": statistics.get("windows_skipped")}
