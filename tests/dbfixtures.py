"""Database fixtures, a pytest plugin (``pytest_plugins = ["dbfixtures"]`` in conftest.py).

``database_url`` (and ``db`` on top of it) is parametrised over a fresh SQLite
file and the local PostgreSQL server, so a test that takes it runs on both.
PostgreSQL tests use one randomly named database per test session, emptied
before each test and dropped at the end. When no server answers on
127.0.0.1:5432 the suite tries to start the local cluster, and skips the
PostgreSQL cases with the reason only if that fails.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text

from watchkeeper.store.db import Database
from watchkeeper.store.models import Base

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PG_START_WAIT_S = 30


class PostgresServer:
    """The local server: hands out databases with random names and drops them when the session ends."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def create_database(self) -> str:
        name = f"wk_test_{secrets.token_hex(6)}"
        with _admin_connection() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"

    def drop_all(self) -> None:
        with _admin_connection() as conn:
            for name in self.created:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _admin_connection() -> psycopg.Connection:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True,
                           connect_timeout=5)


def _postgres_problem() -> str | None:
    """None once the server answers (starting the local cluster if needed), else why it cannot."""
    try:
        _admin_connection().close()
        return None
    except psycopg.OperationalError as exc:
        first_error = str(exc).strip()
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").is_dir() else []
    if not versions:
        return f"no server on {PG_HOST}:{PG_PORT} ({first_error}) and no cluster in /etc/postgresql to start"
    start = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]
    try:
        done = subprocess.run(start, capture_output=True, text=True, timeout=PG_START_WAIT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no server on {PG_HOST}:{PG_PORT} and `{' '.join(start)}` failed: {exc}"
    deadline = time.monotonic() + PG_START_WAIT_S
    while time.monotonic() < deadline:
        try:
            _admin_connection().close()
            return None
        except psycopg.OperationalError as exc:
            last_error = str(exc).strip()
        time.sleep(0.5)
    return (f"no server on {PG_HOST}:{PG_PORT}; `{' '.join(start)}` exited {done.returncode} "
            f"({(done.stderr or done.stdout).strip()}) and the server still refuses: {last_error}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    problem = _postgres_problem()
    if problem is not None:
        pytest.skip(f"PostgreSQL unavailable, its test cases skipped: {problem}")
    server = PostgresServer()
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """The session's PostgreSQL database, migrated once."""
    url = postgres.create_database()
    database = Database(url)
    database.upgrade()
    database.close()
    return url


def _empty_tables(url: str) -> None:
    database = Database(url)
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text("SET LOCAL lock_timeout = '30s'"))  # a connection left open errs, not hangs
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    database.close()


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no rows, per backend: a new SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'watchkeeper.db'}"
    url = request.getfixturevalue("postgres_url")
    _empty_tables(url)
    return url


@pytest.fixture(params=BACKENDS)
def new_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that was never migrated, per backend (for tests of migrating itself)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'new' / 'watchkeeper.db'}"
    return request.getfixturevalue("postgres").create_database()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.upgrade()
    yield database
    database.close()
