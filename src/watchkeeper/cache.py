"""On-disk result cache: media content hash + analysis settings hash -> result JSON.

SQLite in the data directory, safe for several processes (WAL, busy
timeout). Least recently used entries go first once the entry count or the
total size passes its bound. File hashes are memoised by (path, size, mtime)
so a repeated file costs a stat and two lookups, not a re-read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
import zlib
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    media_sha256 TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    payload BLOB NOT NULL,
    size_bytes INTEGER NOT NULL,
    last_used REAL NOT NULL,
    PRIMARY KEY (media_sha256, config_hash)
);
CREATE INDEX IF NOT EXISTS results_last_used ON results(last_used);
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT PRIMARY KEY,
    size_bytes INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
"""


# Everything in the package that can change a result: code, rules, shipped heads.
CODE_SUFFIXES = frozenset({".py", ".yaml", ".json"})


def source_fingerprint(package: Path) -> str:
    """Hash of a package folder's code and data files, their names included."""
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.suffix in CODE_SUFFIXES and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(package)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@cache
def code_fingerprint() -> str:
    """This installed package's ``source_fingerprint`` (a cache key part).

    Editing an analyzer or an extractor, or upgrading, then never serves a
    result computed by the old code; no version number to remember to bump.
    """
    return source_fingerprint(Path(__file__).parent)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ResultCache:
    def __init__(self, path: Path, *, max_entries: int, max_bytes: int) -> None:
        self.path = path
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db, self._local.pid = db, os.getpid()
        return db

    def file_sha256(self, path: Path) -> str:
        """Content hash of a file, memoised by path, size and modification time."""
        resolved = str(path.resolve())
        stat = path.stat()
        db = self._connect()
        row = db.execute(
            "SELECT sha256 FROM file_hashes WHERE path=? AND size_bytes=? AND mtime_ns=?",
            (resolved, stat.st_size, stat.st_mtime_ns),
        ).fetchone()
        if row:
            return row[0]
        digest = sha256_file(path)
        db.execute(
            "INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)", (resolved, stat.st_size, stat.st_mtime_ns, digest)
        )
        return digest

    def get(self, media_sha256: str, config_hash: str) -> str | None:
        db = self._connect()
        row = db.execute(
            "SELECT payload FROM results WHERE media_sha256=? AND config_hash=?", (media_sha256, config_hash)
        ).fetchone()
        if row is None:
            return None
        db.execute(
            "UPDATE results SET last_used=? WHERE media_sha256=? AND config_hash=?",
            (time.time(), media_sha256, config_hash),
        )
        return zlib.decompress(row[0]).decode()

    def put(self, media_sha256: str, config_hash: str, result_json: str) -> None:
        payload = zlib.compress(result_json.encode(), 6)
        db = self._connect()
        db.execute(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?)",
            (media_sha256, config_hash, payload, len(payload), time.time()),
        )
        self._evict(db)

    def _evict(self, db: sqlite3.Connection) -> None:
        count, total = db.execute("SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM results").fetchone()
        if count <= self.max_entries and total <= self.max_bytes:
            return
        rows = db.execute("SELECT media_sha256, config_hash, size_bytes FROM results ORDER BY last_used").fetchall()
        doomed = []
        for sha, cfg, size in rows:
            if count <= self.max_entries and total <= self.max_bytes:
                break
            doomed.append((sha, cfg))
            count, total = count - 1, total - size
        db.executemany("DELETE FROM results WHERE media_sha256=? AND config_hash=?", doomed)
        log.info("cache evicted entries", extra={"evicted": len(doomed)})

    def stats(self) -> dict[str, int]:
        count, total = self._connect().execute(
            "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM results"
        ).fetchone()
        return {"entries": count, "bytes": total}
