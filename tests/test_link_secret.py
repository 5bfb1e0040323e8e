"""The link-signing secret, shared through the database by every process of a deployment (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from watchkeeper.auth import links
from watchkeeper.store import Database
from watchkeeper.store.models import SigningSecret


def test_processes_starting_at_once_on_other_hosts_get_one_secret(db, tmp_path):
    """Each "process" has its own engine and its own data folder without a key file; all start together."""
    processes = 6
    start = threading.Barrier(processes)
    secrets: list[bytes | Exception] = [b""] * processes

    def run(index: int) -> None:
        database = Database(db.url)
        try:
            start.wait()
            secrets[index] = links.shared_secret(database, tmp_path / f"host{index}")
        except Exception as exc:  # the outcome under test
            secrets[index] = exc
        finally:
            database.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(processes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(secret, bytes) for secret in secrets), secrets
    assert len(set(secrets)) == 1 and len(secrets[0]) == links.SECRET_BYTES
    with db.session(write=False) as session:
        assert session.scalar(select(func.count()).select_from(SigningSecret)) == 1
    assert not any((tmp_path / f"host{index}").exists() for index in range(processes))  # no file written


def test_an_earlier_key_file_seeds_the_database_and_a_hosts_own_file_cannot_override_it(db, tmp_path):
    server, worker = tmp_path / "server", tmp_path / "worker"
    server.mkdir()
    (server / "link-signing.key").write_bytes(b"k" * links.SECRET_BYTES)
    assert links.shared_secret(db, server) == b"k" * links.SECRET_BYTES  # links already sent keep working

    worker.mkdir()
    (worker / "link-signing.key").write_bytes(b"w" * links.SECRET_BYTES)  # a worker host that once made its own
    worker_secret = links.shared_secret(db, worker)
    assert worker_secret == b"k" * links.SECRET_BYTES
    # What the worker signs in an alert, the API checks.
    expires, signature = links.sign(worker_secret, "/ack/7", 600, 3)
    assert links.check(links.shared_secret(db, server), "/ack/7", expires, signature) == 3
