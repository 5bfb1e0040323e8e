"""Two `watchkeeper serve` replicas on one PostgreSQL database (events.backend: postgres): what one replica's
camera reports reaches the WebSocket clients of both, once each and in the same order, also after the
database dropped their bus connections."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import websockets
from apiserver import ApiServer, base_settings
from mediagen import noise, still_room, write_video
from polling import wait_until
from sqlalchemy.engine import make_url

from watchkeeper.live.bus import CLIENT_NAME
from watchkeeper.samples import siren

FPS = 15


@pytest.fixture(scope="module")
def replicas(start_server, postgres, media_root: Path,
             tmp_path_factory) -> Iterator[tuple[ApiServer, ApiServer, str]]:
    """Replica A watches a looping file camera (a siren from 1 s to 6 s of every 12 s); replica B has none."""
    url = postgres.create_database()
    audio = np.concatenate([noise(1.0), siren(5.0), noise(6.0)])
    hall = write_video(tmp_path_factory.mktemp("replica-cams") / "hall.mp4",
                       (still_room(seed=i % 3) for i in range(12 * FPS)), fps=FPS, audio=audio)
    shared = {**base_settings(media_root), "database_url": url, "events": {"backend": "postgres"}}
    a = start_server("replica-a", {**shared, "live": {
        "cameras": [{"name": "hall", "source": str(hall), "location": "Main hall", "loop": True}],
        "evidence": {"pre_event_s": 1.0, "post_event_s": 2.0}, "gate": {"cooldown_s": 3.0}}})
    b = ApiServer(tmp_path_factory.mktemp("replica-b"), shared)
    b.admin_key = a.admin_key  # one database: the same users and keys
    b.start()
    yield a, b, url
    b.stop()
    a.stop()  # its camera would otherwise run on through the other modules' tests


def test_a_camera_on_one_replica_reaches_the_clients_of_both_once(replicas):
    a, b, database_url = replicas
    # The database ends both replicas' bus connections first: they come back, and the processes live on.
    conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        ended = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
                             "AND datname = current_database()", (CLIENT_NAME,)).fetchall()
    assert len(ended) == 4  # each replica's listening and sending connection
    for server in (a, b):
        wait_until(lambda: "reconnected for listening" in server.log.read_text(), "the replica listening again", 30)

    def feed_url(server: ApiServer) -> str:
        return server.url.replace("http://", "ws://") + f"/ws/events?api_key={server.admin_key}"

    async def read(feed: Any, into: list[dict[str, Any]]) -> None:
        while True:
            into.append(json.loads(await feed.recv()))

    def incident_seen_whole(messages: list[dict[str, Any]], incident: int) -> bool:
        kinds = {(m["type"], m.get("event")) for m in messages if m.get("incident") == incident}
        return {("incident", "opened"), ("evidence", None)} <= kinds

    async def both_feeds() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        at_a: list[dict[str, Any]] = []
        at_b: list[dict[str, Any]] = []
        async with websockets.connect(feed_url(a)) as feed_a, websockets.connect(feed_url(b)) as feed_b:
            readers = [asyncio.ensure_future(read(feed_a, at_a)), asyncio.ensure_future(read(feed_b, at_b))]
            try:
                async with asyncio.timeout(120):
                    while True:  # an incident both clients saw open and get its evidence
                        opened = [m["incident"] for m in at_a if m["type"] == "incident" and m["event"] == "opened"]
                        both = [i for i in opened if incident_seen_whole(at_a, i) and incident_seen_whole(at_b, i)]
                        if both:
                            break
                        await asyncio.sleep(0.1)
                with a.client(a.admin_key) as client:  # a change made through replica A's API
                    assert not (await asyncio.to_thread(client.post, "/api/v1/cameras/hall/stop")).json()["running"]
                await asyncio.sleep(3)  # long enough for a second copy to show
            finally:
                for reader in readers:
                    reader.cancel()
            return at_a, at_b, both[0]

    at_a, at_b, incident = asyncio.run(both_feeds())

    def from_opening(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        start = next(i for i, m in enumerate(messages) if m.get("incident") == incident and m["type"] == "incident")
        return messages[start:]

    # Both clients got the same messages in the same order, from the incident opening to the camera stopping.
    assert from_opening(at_a) == from_opening(at_b)
    seen = from_opening(at_a)
    assert {m["camera"] for m in seen if m["type"] != "evidence"} == {"hall"}
    assert len({json.dumps(m, sort_keys=True) for m in seen}) == len(seen)  # each message once
    assert seen[-1]["type"] == "camera" and seen[-1]["state"] == "stopped"
    assert [m["type"] for m in seen].count("evidence") >= 1
    assert all("dropped_before" not in m for m in at_a + at_b)
