"""Opening the database: SQLite (WAL) by default, PostgreSQL by URL, migrated to the newest schema."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from ..config import Settings

log = logging.getLogger(__name__)

# How long an SQLite writer waits for another's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000
# pg_advisory_xact_lock key: servers starting together migrate one at a time.
_MIGRATION_LOCK_KEY = 0x5741_5443  # "WATC"
_MIGRATIONS = "watchkeeper.store:migrations"
_BEGIN_OPTION = "sqlite_begin"


def resolve_database_url(settings: Settings) -> str:
    """The configured URL, or an SQLite file in the data folder; PostgreSQL URLs get the psycopg 3 driver."""
    url = settings.database_url or f"sqlite:///{settings.data_dir}/watchkeeper.db"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Database:
    """An engine plus transaction-scoped sessions.

    On SQLite every write transaction starts with ``BEGIN IMMEDIATE``: it takes
    the write lock before its first read, so read-then-write transactions
    (claiming a job, a delivery) from threads or processes queue behind each
    other instead of failing with "database is locked" when a WAL snapshot goes stale.
    """

    url: str
    engine: Engine

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(parsed)
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self.engine = create_engine(parsed, pool_pre_ping=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readonly_sessions = sessionmaker(
            self.engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"}), expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises.

        ``write=False`` (reads only) lets SQLite readers run beside a writer.
        """
        with (self._sessions if write else self._readonly_sessions)() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Apply the migrations the database lacks (idempotent; safe when several processes start at once)."""
        with self.engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            command.upgrade(alembic_config(connection), "head")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration without an ini file: the packaged migrations, run on ``connection``."""
    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    config.attributes["connection"] = connection
    return config


def open_database(settings: Settings) -> Database:
    database = Database(resolve_database_url(settings))
    database.upgrade()
    log.info("database ready", extra={"dialect": database.dialect})
    return database


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3's own transaction handling off: _sqlite_begin emits BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    _use_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL (it stays so). SQLite answers "locked" at once, without its busy handler, when
    another connection holds the file meanwhile (servers starting together on a new file): wait our turn."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
    connection.exec_driver_sql(f"BEGIN {mode}")
