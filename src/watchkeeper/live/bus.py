"""The live event feed across ``watchkeeper serve`` replicas: PostgreSQL LISTEN/NOTIFY or Redis pub/sub.

A replica delivers its own events to its own subscribers at once (``EventHub``)
and hands them to the bus; from the bus it delivers only the other replicas'
events and ignores its own echo, so every WebSocket client of every replica
gets each event once, in the order its replica published them.

Each replica numbers what it sends. A receiver drops a number it has already
delivered (a batch sent again after the connection dropped mid-send) and
counts the numbers it never got (sent while it was disconnected, or dropped
from a full outbox) into the feed's ``dropped_before``. NOTIFY carries at most
8000 bytes, so an event goes as frames of at most ``FRAME_CHARS`` characters
of its JSON, every frame of a batch in one transaction (delivered together, in
order). A dropped connection is opened again after a doubling wait, logged
both ways; meanwhile the replica's own clients still get its events and up to
``OUTBOX`` of them wait to be sent.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import suppress
from functools import partial
from typing import Any, Protocol

import psycopg
import redis
from psycopg import sql
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.engine import make_url

from ..config import Settings
from ..store.db import resolve_database_url

log = logging.getLogger(__name__)

# Another replica's event, and how many of that replica's events before it this one never got.
Deliver = Callable[[dict[str, Any], int], None]
OUTBOX = 1000  # events waiting while the broker is unreachable; the oldest go first
BATCH = 100  # events per send (one transaction on PostgreSQL)
FRAME_CHARS = 7000  # with its header a frame stays well under NOTIFY's 8000 bytes
KNOWN_REPLICAS = 1000  # replicas whose last number is remembered (each restart is a new one)
POLL_S = 0.5  # the listener looks up this often to see whether to stop
FLUSH_S = 5.0  # at shutdown, how long the last events may take to leave
CONNECT_TIMEOUT_S = 10
RECONNECT_INITIAL_S = 0.5
CLIENT_NAME = "watchkeeper-events"  # the connections' name on the broker, for operators (and the tests)
BUS_ERRORS = (psycopg.Error, redis.RedisError, OSError)


class BrokerConnection(Protocol):
    """One connection to the broker, used by one thread: to send, or to listen."""

    def send(self, frames: list[str]) -> None:
        """Publish the frames in order, all at once, or raise."""

    def receive(self) -> Iterator[str]:
        """The frames that arrive within about ``POLL_S``."""

    def close(self) -> None: ...


class PostgresConnection:
    def __init__(self, conninfo: str, channel: str, *, listen: bool) -> None:
        self.channel = channel
        # Keepalives: a listener behind a silently dead network notices within a minute.
        self.conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                    application_name=CLIENT_NAME, keepalives=1, keepalives_idle=30,
                                    keepalives_interval=10, keepalives_count=3)
        if listen:
            self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

    def send(self, frames: list[str]) -> None:
        with self.conn.transaction():  # one commit: listeners get the frames together and in order
            for frame in frames:
                self.conn.execute("SELECT pg_notify(%s, %s)", (self.channel, frame))

    def receive(self) -> Iterator[str]:
        for notify in self.conn.notifies(timeout=POLL_S):
            yield notify.payload

    def close(self) -> None:
        self.conn.close()


class RedisConnection:
    def __init__(self, url: str, channel: str, *, listen: bool) -> None:
        self.channel = channel
        # No retries inside redis-py: the bus reconnects itself, and says so in the log.
        self.client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S, retry=Retry(NoBackoff(), 0),
                                           health_check_interval=30, client_name=CLIENT_NAME)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True) if listen else None
        if self.pubsub is not None:
            self.pubsub.subscribe(channel)
        else:
            self.client.ping()

    def send(self, frames: list[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for frame in frames:
            pipe.publish(self.channel, frame)
        pipe.execute()

    def receive(self) -> Iterator[str]:
        message = self.pubsub.get_message(timeout=POLL_S)
        if message is not None:
            yield message["data"].decode()

    def close(self) -> None:
        if self.pubsub is not None:
            self.pubsub.close()
        self.client.close()


class EventBus:
    """Carries this replica's events to the other replicas, and theirs to ``deliver``.

    Two threads, each with its own connection: one sends the outbox, one listens.
    """

    def __init__(self, connect: Callable[..., BrokerConnection], deliver: Deliver, *, backend: str,
                 reconnect_max_s: float) -> None:
        self.backend = backend
        self.origin = uuid.uuid4().hex  # this process; its events come back with it and are ignored
        self._connect = connect
        self._deliver = deliver
        self._reconnect_max_s = reconnect_max_s
        self._wake = threading.Condition()
        self._outbox: deque[tuple[int, str]] = deque(maxlen=OUTBOX)
        self._batch: list[tuple[int, str]] = []  # taken from the outbox, sent again until the broker takes it
        self._number = 0
        self._closing = threading.Event()
        self._stopped = threading.Event()
        self._last: OrderedDict[str, int] = OrderedDict()  # replica -> the last number delivered
        self._partial: dict[str, tuple[int, list[str]]] = {}  # replica -> the event being reassembled
        self.listening = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start sending and listening; returns once listening (or after ``CONNECT_TIMEOUT_S`` of trying)."""
        self._threads = [threading.Thread(target=self._run, args=(listen,), daemon=True,
                                          name=f"event-bus-{'listen' if listen else 'send'}")
                         for listen in (True, False)]
        for thread in self._threads:
            thread.start()
        if self.listening.wait(CONNECT_TIMEOUT_S):
            log.info("event bus (%s) listening", self.backend, extra={"backend": self.backend})

    def stop(self) -> None:
        """Send what is waiting (for ``FLUSH_S`` at most), then close."""
        if not self._threads:
            return
        self._closing.set()
        with self._wake:
            self._wake.notify_all()
        self._threads[1].join(FLUSH_S)
        self._stopped.set()
        for thread in self._threads:
            thread.join()

    def publish(self, message: dict[str, Any]) -> None:
        """Queue one of this replica's events; never blocks (a camera thread calls it)."""
        text = encode(message)  # now: the caller may change its dict afterwards
        with self._wake:
            self._number += 1
            self._outbox.append((self._number, text))
            self._wake.notify()

    def frames(self, number: int, text: str) -> list[str]:
        pieces = [text[i:i + FRAME_CHARS] for i in range(0, len(text), FRAME_CHARS)]
        return [f"{self.origin} {number} {index} {len(pieces)} {piece}" for index, piece in enumerate(pieces)]

    def receive(self, frame: str) -> None:
        """One frame from the broker: an event is delivered once its last frame is in."""
        try:
            origin, number, index, count, piece = frame.split(" ", 4)
            number, index, count = int(number), int(index), int(count)
        except ValueError:
            log.warning("event bus: ignored a malformed message on the channel", extra={"backend": self.backend})
            return
        if origin == self.origin:
            return  # the echo of our own event: delivered locally when it was published
        if index == 0:
            self._partial[origin] = (number, [])
        assembling = self._partial.get(origin)
        if assembling is None or assembling[0] != number or len(assembling[1]) != index:
            return  # a frame whose earlier ones were missed
        assembling[1].append(piece)
        if len(assembling[1]) < count:
            return
        del self._partial[origin]
        last = self._last.get(origin)
        if last is not None and number <= last:
            return  # sent again after a dropped connection: delivered already
        self._last[origin] = number
        self._last.move_to_end(origin)
        if len(self._last) > KNOWN_REPLICAS:
            self._last.popitem(last=False)
        self._deliver(json.loads("".join(assembling[1])), number - last - 1 if last is not None else 0)

    def _finished(self, listen: bool) -> bool:
        if listen:
            return self._stopped.is_set()
        return self._stopped.is_set() or (self._closing.is_set() and not self._outbox and not self._batch)

    def _run(self, listen: bool) -> None:
        """Keep a connection and use it; when it fails, log, wait (doubling) and open another."""
        role = "listening" if listen else "sending"
        delay, lost = RECONNECT_INITIAL_S, False
        while not self._finished(listen):
            connection: BrokerConnection | None = None
            try:
                connection = self._connect(listen=listen)
                if lost:
                    log.info("event bus (%s) reconnected for %s", self.backend, role, extra={"backend": self.backend})
                    delay, lost = RECONNECT_INITIAL_S, False
                (self._listen if listen else self._send)(connection)
            except BUS_ERRORS as exc:
                lost = True
                if listen:
                    self.listening.clear()
                log.warning("event bus (%s) connection for %s failed, reconnecting in %.1f s: %s", self.backend,
                            role, delay, str(exc).strip() or type(exc).__name__, extra={"backend": self.backend})
                self._stopped.wait(delay)
                delay = min(delay * 2, self._reconnect_max_s)
            finally:
                if connection is not None:
                    with suppress(*BUS_ERRORS):
                        connection.close()

    def _listen(self, connection: BrokerConnection) -> None:
        self.listening.set()
        while not self._stopped.is_set():
            for frame in connection.receive():
                self.receive(frame)

    def _send(self, connection: BrokerConnection) -> None:
        while True:
            if not self._batch:
                with self._wake:
                    while not self._outbox and not self._closing.is_set():
                        self._wake.wait()
                    if not self._outbox:
                        return  # closing, and everything sent
                    self._batch = [self._outbox.popleft() for _ in range(min(BATCH, len(self._outbox)))]
            connection.send([frame for number, text in self._batch for frame in self.frames(number, text)])
            self._batch = []


def encode(message: dict[str, Any]) -> str:
    """An event's JSON on the wire: compact, and ASCII, so that a frame's characters are its bytes."""
    return json.dumps(message, separators=(",", ":"))


def open_event_bus(settings: Settings, deliver: Deliver) -> EventBus | None:
    """The bus of ``events.backend``; None for ``local`` (one process: nothing to carry)."""
    events = settings.events
    if events.backend == "local":
        return None
    if events.backend == "postgres":
        url = make_url(resolve_database_url(settings) if events.url is None else events.url)
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        connect = partial(PostgresConnection, conninfo, events.channel)
    else:
        connect = partial(RedisConnection, events.url, events.channel)
    return EventBus(connect, deliver, backend=events.backend, reconnect_max_s=events.reconnect_max_s)
