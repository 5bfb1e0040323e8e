"""The persistent job queue and its workers, on real SQLite files and a real PostgreSQL server.

Run as a script, this file is a worker process (``python tests/test_jobs.py URL LEASE_S THREADS``)
that the tests kill and restart.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

import pytest
from PIL import Image
from polling import wait_until
from sqlalchemy import select
from sqlalchemy.orm import Session

from watchkeeper.artefacts import LocalArtefactStore
from watchkeeper.errors import CorruptMediaError
from watchkeeper.jobs import DatabaseJobQueue, JobContext, JobView, WorkerPool, new_job_id
from watchkeeper.jobs.analysis import analysis_handler
from watchkeeper.jobs.queue import OnCommit
from watchkeeper.samples import siren, still_room, write_audio
from watchkeeper.store.db import Database
from watchkeeper.store.models import Analysis, AuditEntry, Job

COMPLETED = "test.job_completed"


def finished(queue: DatabaseJobQueue, job_id: str) -> JobView:
    return wait_until(lambda: (v := queue.get(job_id)) and v.state in ("succeeded", "failed", "cancelled") and v,
                    f"job {job_id} to finish")


def mark_completed(job_id: str) -> OnCommit:
    """A marker row written in the completing transaction: counting them counts completions."""
    def write(session: Session) -> None:
        session.add(AuditEntry(actor_name=f"pid {os.getpid()}", via="system", action=COMPLETED, target_type="job",
                               target_id=job_id))
    return write


def completions(db: Database) -> list[str]:
    with db.session(write=False) as session:
        return list(session.scalars(select(AuditEntry.target_id).where(AuditEntry.action == COMPLETED)))


class Ended:
    """An ``on_finish`` hook that records each job's end as it is committed with it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, session: Session, job: JobView) -> None:
        self.seen.append((job.id, job.state))


@pytest.fixture
def ended() -> Ended:
    return Ended()


@pytest.fixture
def queue(db, ended) -> DatabaseJobQueue:
    return DatabaseJobQueue(db, lease_s=30, max_attempts=2, retry_delay_s=0, on_finish=ended)


@pytest.fixture
def pool_for(queue) -> Iterator[Callable[..., WorkerPool]]:
    pools: list[WorkerPool] = []

    def start(handlers: dict[str, Callable[[JobContext], dict]], *, threads: int = 2, poll_s: float = 0.05,
              lease_s: float = 30, on: DatabaseJobQueue | None = None) -> WorkerPool:
        pool = WorkerPool(on or queue, handlers, threads=threads, lease_s=lease_s, poll_s=poll_s)
        pool.start()
        pools.append(pool)
        return pool

    yield start
    for pool in pools:
        pool.stop()


# -- the queue ---------------------------------------------------------------------------------

def test_job_ids_have_seed_000s_shape():
    assert re.fullmatch(r"video_file_\d{10}_[0-9a-f]{6}", new_job_id("video_file"))


def test_submit_claim_heartbeat_complete(queue, db, ended):
    job_id = queue.submit("analyze", {"source": "a.jpg"}, media_type="image_file", callback_url="https://x.org/h",
                          notify=True)
    assert job_id.startswith("image_file_")
    pending = queue.get(job_id)
    assert (pending.state, pending.progress, pending.attempts, pending.started_at) == ("pending", 0.0, 0, None)

    claimed = queue.claim("w1")
    assert (claimed.id, claimed.kind, claimed.params, claimed.attempts) == (job_id, "analyze", {"source": "a.jpg"}, 1)
    assert (claimed.callback_url, claimed.notify, claimed.media_type) == ("https://x.org/h", True, "image_file")
    assert queue.claim("w2") is None  # leased: nobody else gets it
    assert queue.heartbeat(job_id, claimed.token, progress=40)
    running = queue.get(job_id)
    assert (running.state, running.progress) == ("running", 40.0) and running.started_at is not None

    assert queue.complete(job_id, claimed.token, {"ok": 1}, analysis_id="a-1", on_commit=mark_completed(job_id))
    done = queue.get(job_id)
    assert (done.state, done.progress, done.result, done.analysis_id) == ("succeeded", 100.0, {"ok": 1}, "a-1")
    assert done.finished_at >= done.started_at
    # The same lease cannot finish it again.
    assert not queue.complete(job_id, claimed.token, {"ok": 2}, on_commit=mark_completed(job_id))
    assert not queue.heartbeat(job_id, claimed.token)
    assert completions(db) == [job_id] and ended.seen == [(job_id, "succeeded")]


def test_claim_by_id_takes_that_job_only_and_only_when_it_can_run(queue):
    older, newer = queue.submit("analyze", {}), queue.submit("analyze", {})
    claimed = queue.claim("w1", job_id=newer)
    assert claimed.id == newer
    assert queue.claim("w2", job_id=newer) is None  # leased
    assert queue.claim("w2", job_id="no-such-job") is None
    assert queue.complete(newer, claimed.token, {})
    assert queue.claim("w2", job_id=newer) is None  # done
    assert queue.claim("w2").id == older


def test_list_pages_newest_first_and_filters_by_state(queue):
    ids = [queue.submit("analyze", {"n": n}) for n in range(5)]
    queue.cancel(ids[0])
    page, total = queue.list(limit=2, offset=1)
    assert total == 5 and [j.id for j in page] == [ids[3], ids[2]]
    pending, total = queue.list(state="pending")
    assert total == 4 and {j.id for j in pending} == set(ids[1:])


def test_an_expired_lease_passes_the_job_to_another_worker_and_voids_the_old_token(db, ended):
    queue = DatabaseJobQueue(db, lease_s=0.05, max_attempts=3, on_finish=ended)
    job_id = queue.submit("analyze", {})
    first = queue.claim("dead-worker")
    time.sleep(0.1)  # let the lease lapse, as when its worker is gone
    second = queue.claim("live-worker")
    assert (second.id, second.attempts) == (job_id, 2) and second.token != first.token
    assert not queue.heartbeat(job_id, first.token)
    assert not queue.complete(job_id, first.token, {"by": "dead"}, on_commit=mark_completed(job_id))
    assert not queue.fail(job_id, first.token, {"code": "x"}, retry=False)
    assert queue.complete(job_id, second.token, {"by": "live"}, on_commit=mark_completed(job_id))
    assert queue.get(job_id).result == {"by": "live"}
    assert completions(db) == [job_id] and ended.seen == [(job_id, "succeeded")]


def test_a_crashed_job_waits_a_doubling_delay_before_each_further_run(db):
    queue = DatabaseJobQueue(db, lease_s=30, max_attempts=3, retry_delay_s=0.3)
    job_id = queue.submit("analyze", {})
    claimed = queue.claim("w")
    for attempt, delay_s in ((1, 0.3), (2, 0.6)):
        failed_at = time.monotonic()
        assert queue.fail(job_id, claimed.token, {"code": "boom"}, retry=True)
        assert queue.claim("w") is None  # not before its delay
        while (claimed := queue.claim("w")) is None:
            time.sleep(0.02)
        assert claimed.attempts == attempt + 1 and time.monotonic() - failed_at >= delay_s


def test_submit_runs_on_commit_in_the_transaction_that_adds_the_job(queue, db):
    def audit(session):
        assert session.get(Job, job_id) is not None  # the job is in this transaction
        session.add(AuditEntry(actor_name="tester", via="cli", action="job.submit", target_type="job", target_id=job_id))

    job_id = "video_file_1_abc"
    assert queue.submit("analyze", {}, job_id=job_id, on_commit=audit) == job_id
    with db.session(write=False) as session:
        assert session.scalar(select(AuditEntry.target_id).where(AuditEntry.action == "job.submit")) == job_id

    def broken(session):
        raise RuntimeError("audit store down")

    with pytest.raises(RuntimeError):
        queue.submit("analyze", {}, job_id="video_file_2_abc", on_commit=broken)
    assert queue.get("video_file_2_abc") is None  # no job without its audit entry


def test_retries_stop_at_max_attempts(queue, db, ended):
    job_id = queue.submit("analyze", {})
    first = queue.claim("w")
    assert queue.fail(job_id, first.token, {"code": "boom"}, retry=True, on_commit=mark_completed(job_id))
    again = queue.get(job_id)
    assert (again.state, again.attempts, again.error) == ("pending", 1, {"code": "boom"})
    second = queue.claim("w")
    assert queue.fail(job_id, second.token, {"code": "boom"}, retry=True, on_commit=mark_completed(job_id))
    final = queue.get(job_id)
    assert (final.state, final.attempts) == ("failed", 2) and final.finished_at is not None
    # on_commit runs once: when the job fails for good, not when it goes back for a retry.
    assert completions(db) == [job_id] and ended.seen == [(job_id, "failed")]

    bad_input = queue.submit("analyze", {})
    assert queue.fail(bad_input, queue.claim("w").token, {"code": "corrupt_media"}, retry=False)
    assert (queue.get(bad_input).state, queue.get(bad_input).attempts) == ("failed", 1)


def test_a_job_whose_last_allowed_run_died_fails_as_worker_lost(db, ended):
    queue = DatabaseJobQueue(db, lease_s=0.05, max_attempts=1, on_finish=ended)
    job_id = queue.submit("analyze", {})
    queue.claim("dead-worker")
    time.sleep(0.1)
    assert queue.claim("live-worker") is None
    lost = queue.get(job_id)
    assert (lost.state, lost.error["code"], lost.attempts) == ("failed", "worker_lost", 1)
    assert ended.seen == [(job_id, "failed")]


def test_cancel(queue, ended):
    waiting = queue.submit("analyze", {})
    assert queue.cancel(waiting) and queue.get(waiting).state == "cancelled"
    assert queue.claim("w") is None
    assert not queue.cancel(waiting) and not queue.cancel("no_such_job")

    busy = queue.submit("analyze", {})
    claimed = queue.claim("w")
    assert queue.cancel(busy)
    assert not queue.heartbeat(busy, claimed.token)  # how a running handler learns it
    assert not queue.complete(busy, claimed.token, {})
    assert queue.get(busy).state == "cancelled"
    assert ended.seen == [(waiting, "cancelled"), (busy, "cancelled")]


def test_cancel_runs_on_commit_in_the_transaction_that_cancels(queue, db, ended):
    job_id = queue.submit("analyze", {})

    def broken(session):
        assert session.get(Job, job_id).state == "cancelled"  # the cancel is in this transaction
        raise RuntimeError("audit store down")

    with pytest.raises(RuntimeError):
        queue.cancel(job_id, on_commit=broken)
    assert queue.get(job_id).state == "pending" and ended.seen == []  # no cancel without its audit entry

    assert queue.cancel(job_id, on_commit=mark_completed(job_id))
    assert queue.get(job_id).state == "cancelled" and completions(db) == [job_id]
    assert ended.seen == [(job_id, "cancelled")]


def test_threads_claiming_at_once_never_share_a_job(queue):
    ids = {queue.submit("analyze", {"n": n}) for n in range(40)}
    claimed: list[str] = []
    start = threading.Barrier(8)

    def drain() -> None:
        start.wait()
        while (job := queue.claim(threading.current_thread().name)) is not None:
            claimed.append(job.id)
            assert queue.complete(job.id, job.token, {})

    threads = [threading.Thread(target=drain) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)
    jobs, _ = queue.list(limit=100)
    assert {(j.state, j.attempts) for j in jobs} == {("succeeded", 1)}


# -- the worker pool ---------------------------------------------------------------------------

def test_pool_runs_handlers_and_maps_their_errors(queue, pool_for):
    calls: list[int] = []

    def crash(ctx: JobContext) -> dict:
        calls.append(ctx.job.attempts)
        raise RuntimeError("handler bug")

    def bad_input(ctx: JobContext) -> dict:
        raise CorruptMediaError("truncated file")

    def echo(ctx: JobContext) -> dict:
        ctx.analysis_id = "a-echo"
        ctx.on_commit = mark_completed(ctx.job.id)
        return {"echo": ctx.job.params}

    pool_for({"crash": crash, "bad_input": bad_input, "echo": echo})
    ok, corrupt, buggy, unknown = (queue.submit(kind, {"k": kind}) for kind in ("echo", "bad_input", "crash", "nope"))
    done = finished(queue, ok)
    assert (done.state, done.result, done.analysis_id) == ("succeeded", {"echo": {"k": "echo"}}, "a-echo")
    failed = finished(queue, corrupt)
    assert (failed.state, failed.attempts, failed.error) == ("failed", 1, CorruptMediaError("truncated file").to_dict())
    crashed = finished(queue, buggy)
    assert (crashed.state, crashed.attempts, crashed.error["code"]) == ("failed", 2, "internal_error")
    assert calls == [1, 2]
    assert finished(queue, unknown).error["code"] == "unknown_job_kind"


def test_progress_and_cancellation_reach_a_running_handler(queue, pool_for):
    halfway, returned = threading.Event(), threading.Event()

    def long_task(ctx: JobContext) -> dict:
        ctx.progress(50)
        halfway.set()
        while not ctx.cancelled():
            time.sleep(0.02)
            ctx.progress(50)
        returned.set()
        return {"finished": "anyway"}

    pool_for({"long": long_task}, threads=1)
    job_id = queue.submit("long", {})
    wait_until(halfway.is_set, "the handler to start")
    assert (queue.get(job_id).state, queue.get(job_id).progress) == ("running", 50.0)
    assert queue.cancel(job_id)
    wait_until(returned.is_set, "the handler to see its cancellation")
    cancelled = queue.get(job_id)
    assert (cancelled.state, cancelled.result) == ("cancelled", None)


def test_heartbeats_keep_a_long_job_leased_to_its_worker(db, pool_for):
    queue = DatabaseJobQueue(db, lease_s=1.5, max_attempts=3)
    release = threading.Event()

    def long_task(ctx: JobContext) -> dict:
        release.wait()
        return {}

    pool_for({"long": long_task}, threads=1, lease_s=1.5, on=queue)
    job_id = queue.submit("long", {})
    wait_until(lambda: queue.get(job_id).state == "running", "the job to start")
    # Over twice the lease, with no progress calls from the handler: only heartbeats keep others away.
    for _ in range(7):
        assert queue.claim("rival") is None
        time.sleep(0.5)
    release.set()
    done = finished(queue, job_id)
    assert (done.state, done.attempts) == ("succeeded", 1)


def test_wake_starts_a_submitted_job_without_waiting_for_the_poll(queue, pool_for):
    pool = pool_for({"echo": lambda ctx: {}}, poll_s=3600)
    time.sleep(0.1)  # the workers found nothing and went idle
    job_id = queue.submit("echo", {})
    pool.wake()
    assert finished(queue, job_id).state == "succeeded"


# -- worker processes: crashes and concurrency -------------------------------------------------

def hold_handler(ctx: JobContext) -> dict:
    """Runs while the file ``params["hold"]`` exists; notes each start in ``params["starts"]``."""
    with open(ctx.job.params["starts"], "a") as starts:
        starts.write(f"{os.getpid()}\n")
    while Path(ctx.job.params["hold"]).exists():
        time.sleep(0.02)
    ctx.on_commit = mark_completed(ctx.job.id)
    return {"pid": os.getpid()}


def quick_handler(ctx: JobContext) -> dict:
    ctx.on_commit = mark_completed(ctx.job.id)
    return {"pid": os.getpid()}


def worker_process(url: str, lease_s: float, threads: int) -> None:
    """A worker process: a pool on ``url`` until SIGTERM, then a clean stop."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # before any thread starts: they inherit it
    db = Database(url)
    queue = DatabaseJobQueue(db, lease_s=lease_s, max_attempts=3)
    pool = WorkerPool(queue, {"hold": hold_handler, "quick": quick_handler}, threads=threads, lease_s=lease_s,
                      poll_s=0.05)
    pool.start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM})
    pool.stop()
    db.close()


@pytest.fixture
def spawn(tmp_path) -> Iterator[Callable[..., subprocess.Popen]]:
    started: list[tuple[subprocess.Popen, IO[str]]] = []

    def start(url: str, *, lease_s: float, threads: int) -> subprocess.Popen:
        """A worker process, returned once its pool runs (and SIGTERM stops it cleanly)."""
        log_path = tmp_path / f"worker-{len(started)}.log"
        log = log_path.open("w")
        process = subprocess.Popen([sys.executable, __file__, url, str(lease_s), str(threads)],
                                   stdout=subprocess.PIPE, stderr=log, text=True)
        started.append((process, log))
        assert process.stdout.readline() == "ready\n", log_path.read_text()
        return process

    yield start
    for process, log in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()
        log.close()


def stop_gracefully(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0


def test_a_job_whose_worker_process_is_killed_completes_once_in_a_new_one(db, database_url, spawn, tmp_path):
    queue = DatabaseJobQueue(db, lease_s=1.0, max_attempts=3)
    hold, starts = tmp_path / "hold", tmp_path / "starts"
    hold.touch()
    job_id = queue.submit("hold", {"hold": str(hold), "starts": str(starts)})

    first = spawn(database_url, lease_s=1.0, threads=2)
    wait_until(lambda: starts.exists() and starts.read_text().split() == [str(first.pid)], "the first worker to start")
    assert queue.get(job_id).state == "running"
    first.send_signal(signal.SIGKILL)
    first.wait()
    hold.unlink()

    second = spawn(database_url, lease_s=1.0, threads=2)
    done = finished(queue, job_id)
    stop_gracefully(second)
    assert (done.state, done.attempts, done.result) == ("succeeded", 2, {"pid": second.pid})
    assert starts.read_text().split() == [str(first.pid), str(second.pid)]
    assert completions(db) == [job_id]


def test_worker_processes_sharing_a_queue_run_each_job_once(db, database_url, spawn, tmp_path):
    queue = DatabaseJobQueue(db, lease_s=30, max_attempts=3)
    workers = [spawn(database_url, lease_s=30, threads=3) for _ in range(2)]
    # Six long jobs for six threads: each process must hold three at once, so both are claiming.
    hold, starts = tmp_path / "hold", tmp_path / "starts"
    hold.touch()
    held = [queue.submit("hold", {"hold": str(hold), "starts": str(starts)}) for _ in range(6)]
    wait_until(lambda: starts.exists() and len(starts.read_text().split()) == 6, "six jobs to be held")
    assert sorted(starts.read_text().split()) == sorted([str(w.pid) for w in workers] * 3)
    quick = [queue.submit("quick", {}) for _ in range(30)]
    hold.unlink()
    results = [finished(queue, job_id) for job_id in held + quick]
    for worker in workers:
        stop_gracefully(worker)
    assert {(job.state, job.attempts) for job in results} == {("succeeded", 1)}
    assert sorted(completions(db)) == sorted(held + quick)


# -- the analysis handler, on the real pipeline ------------------------------------------------

@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("job-media")
    room = folder / "room.png"
    Image.fromarray(still_room()).save(room)
    corrupt = folder / "corrupt.png"
    corrupt.write_bytes(room.read_bytes()[:300])
    return {"siren": write_audio(folder / "siren.wav", siren(3.0)), "room": room, "corrupt": corrupt}


@pytest.fixture(scope="module")
def media_server(media) -> Iterator[str]:
    """The media folder over HTTP on loopback."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(media["room"].parent))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_analyze_jobs_store_their_analysis_with_the_completion(queue, db, pool_for, pipeline, media, media_server,
                                                               tmp_path):
    fetched: list[str] = []

    def fetch(url: str) -> tuple[bytes, str | None]:
        fetched.append(url)
        with urllib.request.urlopen(url) as response:
            return response.read(), response.headers.get("Content-Type")

    pool_for({"analyze": analysis_handler(lambda: pipeline, LocalArtefactStore(tmp_path / "artefacts"),
                                          fetch_guard=fetch)})
    room_url = f"{media_server}/room.png"
    siren_job, room_job, url_job = (
        queue.submit("analyze", {"source": str(source), "media_type": media_type, "camera": "gate"})
        for source, media_type in [(media["siren"], "audio"), (media["room"], "image"), (room_url, None)]
    )
    corrupt_job = queue.submit("analyze", {"source": str(media["corrupt"]), "media_type": "image",
                                           "client_source": "uploads/corrupt.png"})

    alarm = finished(queue, siren_job)
    assert alarm.state == "succeeded" and alarm.result["crime_detected"] is True
    assert alarm.analysis_id == alarm.result["analysis_id"]
    with db.session(write=False) as session:
        row = session.get(Analysis, alarm.analysis_id)
        assert (row.job_id, row.source, row.camera, row.media_type) == (siren_job, str(media["siren"]), "gate", "audio")
        assert [i.category for i in row.incidents] == [i["category"] for i in alarm.result["incidents"]]
        assert [len(i.detections) for i in row.incidents] == [len(i["evidence"]) for i in alarm.result["incidents"]]
        assert all(i.camera == "gate" for i in row.incidents)

    for job_id, source in [(room_job, str(media["room"])), (url_job, room_url)]:
        quiet = finished(queue, job_id)
        assert quiet.state == "succeeded" and quiet.result["crime_detected"] is False
        assert quiet.result["media"]["source"] == source
        with db.session(write=False) as session:
            row = session.get(Analysis, quiet.analysis_id)
            assert (row.source, row.media_type, row.incidents) == (source, "image", [])
    assert fetched == [room_url]

    broken = finished(queue, corrupt_job)
    assert (broken.state, broken.error["code"], broken.attempts, broken.analysis_id) == (
        "failed", "corrupt_media", 1, None)
    # The error is the client's to read (and its webhook's): it names the file as the client did.
    assert "uploads/corrupt.png" in broken.error["message"] and str(media["corrupt"]) not in broken.error["message"]
    with db.session(write=False) as session:
        assert len(session.scalars(select(Analysis)).all()) == 3


if __name__ == "__main__":
    worker_process(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))
