"""The live event bus between server replicas, on the real brokers: PostgreSQL LISTEN/NOTIFY and Redis pub/sub."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import redis
from polling import wait_until
from sqlalchemy.engine import make_url

from watchkeeper.config import Settings, load_settings
from watchkeeper.errors import ConfigError
from watchkeeper.live.bus import CLIENT_NAME, EventBus, encode, open_event_bus

REDIS_URL = "redis://127.0.0.1:6379/0"
NOTIFY_LIMIT = 8000


@dataclass
class Broker:
    settings: Callable[[str], Settings]  # a replica's settings, on a channel of its own
    drop_connections: Callable[[], int]  # ends the bus connections on the broker's side; how many


@pytest.fixture(scope="module")
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis unavailable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(params=["postgres", "redis"])
def broker(request: pytest.FixtureRequest) -> Broker:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")

        def end_postgres_connections() -> int:
            conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(conninfo, autocommit=True) as conn:
                return len(conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                        "WHERE application_name = %s AND datname = current_database()",
                                        (CLIENT_NAME,)).fetchall())

        return Broker(lambda channel: Settings(database_url=url, events={"backend": "postgres", "channel": channel,
                                                                           "reconnect_max_s": 1}),
                      end_postgres_connections)
    url = request.getfixturevalue("redis_url")

    def end_redis_connections() -> int:
        with redis.Redis.from_url(url) as client:
            ids = [c["id"] for c in client.client_list() if c["name"] == CLIENT_NAME]
            for client_id in ids:
                client.client_kill_filter(_id=client_id)
            return len(ids)

    return Broker(lambda channel: Settings(events={"backend": "redis", "url": url, "channel": channel,
                                                   "reconnect_max_s": 1}),
                  end_redis_connections)


class Replica:
    """A bus as one server process has it, with what it delivered to its subscribers."""

    def __init__(self, settings: Settings) -> None:
        self.delivered: list[tuple[dict[str, Any], int]] = []
        self._lock = threading.Lock()
        self.bus = open_event_bus(settings, self._deliver)

    def _deliver(self, message: dict[str, Any], missed: int) -> None:
        with self._lock:
            self.delivered.append((message, missed))

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [message for message, _ in self.delivered]


@pytest.fixture
def replicas(broker: Broker) -> Iterator[Callable[[], Replica]]:
    """Replicas on one fresh channel, started (listening) and stopped at the end."""
    channel = f"wk_test_{secrets.token_hex(4)}"
    started: list[Replica] = []

    def start() -> Replica:
        replica = Replica(broker.settings(channel))
        started.append(replica)
        replica.bus.start()
        assert replica.bus.listening.is_set()
        return replica

    yield start
    for replica in started:
        replica.bus.stop()


def events(sender: str, count: int, start: int = 0) -> list[dict[str, Any]]:
    """Small events, and one every ten over NOTIFY's limit, in several languages (the JSON escapes them)."""
    return [{"type": "incident", "from": sender, "n": n,
             "summary": ("Ünfall – 火事 " * 2000) if n % 10 == 5 else f"event {n}"} for n in range(start, start + count)]


def test_replicas_get_each_others_events_once_in_order(replicas):
    a, b, c = replicas(), replicas(), replicas()
    from_a, from_b = events("a", 30), events("b", 12)
    for message in from_a:
        a.bus.publish(message)
    for message in from_b:
        b.bus.publish(message)
    wait_until(lambda: len(c.delivered) >= 42 and len(a.delivered) >= 12 and len(b.delivered) >= 30,
               "every replica hears the others", timeout_s=30)
    # Nothing more arrives: no echo, no second copy.
    assert not wait_until_or_none(lambda: len(c.delivered) > 42 or len(a.delivered) > 12 or len(b.delivered) > 30)
    assert a.messages() == from_b and b.messages() == from_a
    assert [m for m in c.messages() if m["from"] == "a"] == from_a
    assert [m for m in c.messages() if m["from"] == "b"] == from_b
    assert all(missed == 0 for replica in (a, b, c) for _, missed in replica.delivered)


def test_a_dropped_connection_is_opened_again_and_nothing_is_lost_or_doubled(replicas, broker, caplog):
    caplog.set_level(logging.INFO, logger="watchkeeper.live.bus")
    a, b = replicas(), replicas()
    a.bus.publish(events("a", 1)[0])
    wait_until(lambda: b.delivered, "the first event")
    assert broker.drop_connections() == 4  # each replica's sending and listening connection
    wait_until(lambda: sum("reconnected for listening" in r.getMessage() for r in caplog.records) == 2,
               "both listeners back", timeout_s=30)
    later = events("a", 15, start=1)
    for message in later:
        a.bus.publish(message)
    wait_until(lambda: len(b.delivered) >= 16, "the events sent after the drop", timeout_s=30)
    assert not wait_until_or_none(lambda: len(b.delivered) > 16)
    assert b.messages() == events("a", 16) and all(missed == 0 for _, missed in b.delivered)
    logged = [r.getMessage() for r in caplog.records]
    assert any("connection for listening failed, reconnecting" in line for line in logged)


def test_frames_fit_notify_and_a_repeated_or_missing_event_is_handled():
    """The receiving side alone: frames reassembled, a batch sent twice delivered once, a gap counted."""
    delivered: list[tuple[dict[str, Any], int]] = []
    settings = Settings(events={"backend": "redis", "url": REDIS_URL})
    a, b = (open_event_bus(settings, lambda message, missed: delivered.append((message, missed))) for _ in "ab")
    assert isinstance(a, EventBus) and isinstance(b, EventBus)
    big = events("a", 6)[5]
    frames = a.frames(1, encode(big))
    assert len(frames) > 1 and all(len(frame.encode()) < NOTIFY_LIMIT for frame in frames)
    for frame in frames + frames:  # the second time: sent again after a connection dropped mid-send
        b.receive(frame)
        a.receive(frame)  # its own echo
    assert delivered == [(big, 0)]
    b.receive(a.frames(2, encode({"n": 2}))[0])
    b.receive(a.frames(5, encode({"n": 5}))[0])  # 3 and 4 never came
    b.receive("not a frame")
    assert delivered[1:] == [({"n": 2}, 0), ({"n": 5}, 2)]


def test_local_is_the_default_and_a_broker_needs_a_url_of_its_kind():
    assert open_event_bus(Settings(), lambda message, missed: None) is None  # one process: nothing to carry
    with pytest.raises(ConfigError, match="events.backend postgres needs"):  # the SQLite default database
        load_settings(env={"WATCHKEEPER_EVENTS__BACKEND": "postgres"}, dotenv=None)
    with pytest.raises(ConfigError, match="events.backend redis needs"):
        load_settings(env={"WATCHKEEPER_EVENTS__BACKEND": "redis", "DATABASE_URL": "postgresql://db/wk"}, dotenv=None)
    settings = load_settings(env={"WATCHKEEPER_EVENTS__BACKEND": "postgres", "DATABASE_URL": "postgres://db/wk"},
                             dotenv=None)
    assert open_event_bus(settings, lambda message, missed: None).backend == "postgres"


def wait_until_or_none(check: Callable[[], Any], timeout_s: float = 1.0) -> Any:
    """``check``'s first truthy value within ``timeout_s``, or None: for asserting that nothing more comes."""
    try:
        return wait_until(check, "", timeout_s=timeout_s, every_s=0.05)
    except AssertionError:
        return None
