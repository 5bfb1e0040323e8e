"""Shared artefacts across hosts: two `watchkeeper serve` processes, each with its own data folder, on one
PostgreSQL database and one artefact store (a shared folder, or S3-compatible storage over HTTP on loopback).

Replica A receives uploads and watches a camera, and runs no jobs; replica B, which has neither the files nor
the camera, analyses A's uploads (in the request, and as jobs only it runs) and serves them and A's evidence.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from apiserver import ApiServer, base_settings, finished_job, upload
from mediagen import noise, still_room, write_video
from polling import wait_until
from s3server import S3Server

from watchkeeper.samples import siren

FPS = 15


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture(scope="module", params=["shared-folder", "s3"])
def replicas(request, start_server, postgres, media_root: Path, tmp_path_factory) -> Iterator[tuple[ApiServer,
                                                                                                     ApiServer]]:
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3")
        artefacts = s3.settings(s3.new_bucket())
    else:  # a folder both hosts mount
        artefacts = {"local": {"path": str(tmp_path_factory.mktemp("network-folder"))}}
    audio = np.concatenate([noise(1.0), siren(4.0), noise(3.0)])
    hall = write_video(tmp_path_factory.mktemp("artefact-cams") / "hall.mp4",
                       (still_room(seed=i % 3) for i in range(8 * FPS)), fps=FPS, audio=audio)
    shared = {**base_settings(media_root), "database_url": postgres.create_database(), "artefacts": artefacts}
    a = start_server(f"artefacts-a-{request.param}", {
        **shared, "server": {**shared["server"], "job_workers": 0},
        "live": {"cameras": [{"name": "hall", "source": str(hall), "location": "Main hall", "realtime": False}],
                 "evidence": {"pre_event_s": 1.0, "post_event_s": 2.0}, "gate": {"cooldown_s": 3.0}}})
    b = ApiServer(tmp_path_factory.mktemp(f"artefacts-b-{request.param}"), shared)
    b.admin_key = a.admin_key  # one database: the same users and keys
    b.start()
    yield a, b
    b.stop()
    a.stop()


def files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def test_an_upload_through_one_replica_is_analysed_and_served_by_the_other(replicas, media_root):
    a, b = replicas
    room = (media_root / "room.jpg").read_bytes()
    with a.client(a.admin_key) as on_a, b.client(b.admin_key) as on_b:
        stored = upload(on_a, media_root / "room.jpg", name="lobby.jpg")
        served = on_b.get(f"/{stored['file_path']}")
        assert served.status_code == 200, served.text
        assert served.content == room and served.headers["content-type"] == "image/jpeg"
        part = on_b.get(f"/{stored['file_path']}", headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == room[:10]
        now = on_b.post("/analyze/image/path", json={"image_path": stored["file_path"], "async": False})
        assert now.status_code == 200, now.text
        assert now.json()["media"]["sha256"] == stored["sha256"] and now.json()["image_path"] == stored["file_path"]
        # Submitted to A, which runs no jobs: B's worker takes the job and reads the upload from the store.
        queued = on_a.post("/analyze/image/path", json={"image_path": stored["file_path"], "async": True}).json()
        done = finished_job(on_a, queued["job_id"])
        assert done["status"] == "success" and done["media"]["sha256"] == stored["sha256"]
        report = on_a.get(f"/api/v1/analyses/{done['analysis_id']}/report", params={"format": "json"})
        assert report.status_code == 200
        # The same bytes uploaded again through B: a new name, the same object.
        again = upload(on_b, media_root / "room.jpg", name="lobby.jpg")
        assert again["filename"] != stored["filename"] and again["sha256"] == stored["sha256"]
    assert not files_in(a.data_dir / "uploads") and not files_in(b.data_dir / "uploads")


def incident_with_evidence(client: httpx.Client) -> int:
    """The first incident of A's camera whose snapshot, clip and sound are stored (waiting for it)."""

    def complete() -> int | None:
        items = client.get("/api/v1/incidents", params={"camera": "hall"}).json()["items"]
        ids = [i["id"] for i in items if {"snapshot", "clip", "audio"} <= set(
            client.get(f"/api/v1/incidents/{i['id']}").json()["evidence_files"])]
        return ids[0] if ids else None

    return wait_until(complete, "an incident of A's camera with its evidence", 120, every_s=0.5)


def test_a_host_that_cannot_reach_the_store_still_gives_the_incident_report(replicas, tmp_path_factory):
    a, _ = replicas
    settings = yaml.safe_load(a.config.read_text())
    if "s3" not in settings["artefacts"]:
        pytest.skip("an outage of S3-compatible storage")
    with a.client(a.admin_key) as on_a:
        incident = incident_with_evidence(on_a)
    unreachable = {**settings["artefacts"], "s3": {**settings["artefacts"]["s3"], "endpoint_url": "http://127.0.0.1:9"}}
    c = ApiServer(tmp_path_factory.mktemp("artefacts-c-outage"), {**settings, "artefacts": unreachable, "live": {}})
    c.admin_key = a.admin_key
    c.start()
    try:
        with c.client(c.admin_key) as on_c:
            report = on_c.get(f"/api/v1/incidents/{incident}/report", params={"format": "json"})
            assert report.status_code == 200, report.text  # without its pictures, as for a deleted snapshot
            assert on_c.get(f"/api/v1/incidents/{incident}/evidence/snapshot").status_code == 503
    finally:
        c.stop()


def test_a_camera_on_one_replica_has_its_evidence_served_by_the_other(replicas):
    a, b = replicas
    with b.client(b.admin_key) as on_b:
        incident = incident_with_evidence(on_b)
        snapshot = on_b.get(f"/api/v1/incidents/{incident}/evidence/snapshot")
        assert snapshot.status_code == 200 and snapshot.headers["content-type"] == "image/jpeg"
        assert snapshot.content.startswith(b"\xff\xd8\xff")
        clip = on_b.get(f"/api/v1/incidents/{incident}/evidence/clip")
        assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
        assert clip.headers["content-length"] == str(len(clip.content)) and len(clip.content) > 1000
        assert f'filename="incident-{incident}-clip.mp4"' in clip.headers["content-disposition"]
        # A browser seeking in the clip asks for a range: only those bytes come, from either store.
        size = len(clip.content)
        part = on_b.get(f"/api/v1/incidents/{incident}/evidence/clip", headers={"Range": "bytes=100-299"})
        assert part.status_code == 206 and part.content == clip.content[100:300]
        assert part.headers["content-range"] == f"bytes 100-299/{size}" and part.headers["content-length"] == "200"
        tail = on_b.get(f"/api/v1/incidents/{incident}/evidence/clip", headers={"Range": "bytes=-50"})
        assert tail.status_code == 206 and tail.content == clip.content[-50:]
        past = on_b.get(f"/api/v1/incidents/{incident}/evidence/clip", headers={"Range": f"bytes={size}-"})
        assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
        assert clip.headers["accept-ranges"] == "bytes"
        # Deleted through B, gone for A too.
        assert on_b.delete(f"/api/v1/incidents/{incident}/evidence/snapshot").status_code == 204
    with a.client(a.admin_key) as on_a:
        assert on_a.get(f"/api/v1/incidents/{incident}/evidence/snapshot").status_code == 404
        assert on_a.get(f"/api/v1/incidents/{incident}/evidence/clip").content == clip.content
    assert not files_in(b.data_dir / "evidence")  # B never held any of it
