"""Seed 000's README examples replayed against a real server, with an API key: same paths, shapes and words."""

from __future__ import annotations

import io
import sqlite3

import pytest
from apiserver import assert_problem, finished_job, upload
from loopback_http import LoopbackServer, Reply

from mediagen import still_room, write_video
from watchkeeper.samples import siren

SEED_FLAT_FIELDS = {"crime_detected", "crime_type", "confidence", "evidence_description", "timestamp", "source",
                    "provider"}


def test_health_is_open_and_shows_details_only_to_users(api_server, admin):
    import httpx

    anonymous = httpx.get(f"{api_server.url}/health").json()
    assert anonymous["status"] == "healthy" and "timestamp" in anonymous
    assert "providers" not in anonymous and "notification_enabled" not in anonymous
    detailed = admin.get("/health").json()
    assert detailed["status"] == "healthy"
    assert detailed["providers"] == ["local"] and detailed["notification_enabled"] is False
    assert detailed["database"] == "sqlite"


def test_providers(admin):
    assert admin.get("/providers").json() == {"providers": ["local"], "default_provider": "local"}


def test_upload_then_download(operator, media_root):
    body = upload(operator, media_root / "room.jpg", name="suspect image.jpg")
    assert body["status"] == "success"
    assert body["file_path"] == f"uploads/{body['filename']}" and body["filename"].endswith(".jpg")
    assert body["media_type"] == "image"
    served = operator.get(f"/uploads/{body['filename']}")
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert served.content == (media_root / "room.jpg").read_bytes()


def test_analyze_image_path_synchronous(operator, media_root):
    path = upload(operator, media_root / "room.jpg")["file_path"]
    response = operator.post("/analyze/image/path", json={"image_path": path, "provider": "local", "async": False,
                                                           "notify": False})
    assert response.status_code == 200, response.text
    body = response.json()
    assert SEED_FLAT_FIELDS <= set(body)
    assert body["image_path"] == path and body["source"] == "api" and body["provider"] == "local"
    assert body["confidence"] in ("low", "medium", "high") and isinstance(body["crime_detected"], bool)
    assert body["media"]["media_type"] == "image" and "scores" in body and "incidents" in body
    # The analysis is stored and listed.
    stored = operator.get(f"/api/v1/analyses/{body['analysis_id']}").json()
    assert stored["source"] == path and stored["result"]["media"]["sha256"] == body["media"]["sha256"]


def test_analyze_image_path_asynchronous_then_poll(operator, media_root):
    path = upload(operator, media_root / "noise.png")["file_path"]
    queued = operator.post("/analyze/image/path", json={"image_path": path, "async": True}).json()
    assert queued["status"] == "queued" and queued["media_type"] == "image_file"
    assert queued["job_id"].startswith("image_file_") and "timestamp" in queued
    done = finished_job(operator, queued["job_id"])
    assert done["status"] == "success" and done["job_id"] == queued["job_id"]
    assert SEED_FLAT_FIELDS <= set(done) and done["image_path"] == path


def test_analyze_image_url(operator, media_root):
    jpeg = (media_root / "room.jpg").read_bytes()
    with LoopbackServer() as site:
        site.replies["/activity.jpg"] = Reply(200, jpeg, {"Content-Type": "image/jpeg"})
        url = f"{site.url}/activity.jpg"
        response = operator.post("/analyze/image/url", json={"image_url": url, "provider": "local"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert SEED_FLAT_FIELDS <= set(body) and body["image_url"] == url and body["media"]["media_type"] == "image"


def test_analyze_audio_synchronous_has_transcription_and_finds_the_siren(operator, media_root):
    response = operator.post("/analyze/audio", json={"audio_path": str(media_root / "siren.wav")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert SEED_FLAT_FIELDS <= set(body) and "transcription" in body
    assert body["audio_path"] == str(media_root / "siren.wav")
    assert body["crime_detected"] is True and any(i["category"] == "alarm" for i in body["incidents"])


def test_analyze_video_is_asynchronous_by_default_with_a_5_s_frame_interval(operator, media_root):
    path = upload(operator, media_root / "room.mp4")["file_path"]
    queued = operator.post("/analyze/video", json={"video_path": path, "provider": "local"}).json()
    assert queued["status"] == "queued" and queued["media_type"] == "video_file"
    job = operator.get(f"/api/v1/jobs/{queued['job_id']}").json()
    assert job["params"]["frame_interval_s"] == 5.0 and job["params"]["media_type"] == "video"
    done = finished_job(operator, queued["job_id"])
    assert done["status"] == "success" and done["video_path"] == path
    assert done["media"]["media_type"] == "video" and done["media"]["frame_interval_s"] == 5.0


def test_failed_job_answers_error_with_a_message(operator, media_root, api_server):
    # A file that passes the door (it sniffs as JPEG) but cannot be decoded fails inside the job.
    broken = api_server.data_dir / "uploads" / "truncated.jpg"
    broken.write_bytes((media_root / "room.jpg").read_bytes()[:200])
    queued = operator.post("/analyze/image/path", json={"image_path": "uploads/truncated.jpg", "async": True}).json()
    done = finished_job(operator, queued["job_id"])
    assert done["status"] == "error" and done["job_id"] == queued["job_id"]
    assert done["error"] and done["code"] == "corrupt_media"


def test_job_status_of_an_unknown_job_is_404(operator):
    assert_problem(operator.get("/jobs/image_file_1_abcdef"), 404, "not_found")


def test_notify_without_a_notifier_is_a_clear_409(operator):
    response = operator.post("/notify", json={"detection_result": {"crime_detected": True, "crime_type": "Vandalism",
                                                                     "potential_severity": "medium"}})
    body = assert_problem(response, 409, "conflict")
    assert "notification" in body["detail"]


def test_uploads_need_a_user(api_server, operator, media_root):
    import httpx

    name = upload(operator, media_root / "room.jpg")["filename"]
    assert_problem(httpx.get(f"{api_server.url}/uploads/{name}"), 401, "unauthenticated")


@pytest.mark.parametrize("path, body", [
    ("/analyze/image/path", {"image_path": "uploads/none.jpg", "async": "maybe"}),
    ("/analyze/video", {"video_path": "uploads/none.mp4", "frame_interval": 0}),
    ("/analyze/audio", {"audio_path": "uploads/none.wav", "unknown_option": 1}),
])
def test_bad_request_fields_are_422_problems_naming_the_field(operator, path, body):
    problem = assert_problem(operator.post(path, json=body), 422, "validation_error")
    assert problem["errors"] and all(e["loc"][0] == "body" for e in problem["errors"])


def test_missing_file_and_unknown_provider_are_4xx(operator):
    assert_problem(operator.post("/analyze/image/path", json={"image_path": "uploads/none.jpg"}), 422,
                   "media_fetch_failed")
    assert_problem(operator.post("/analyze/image/path", json={"image_path": "uploads/none.jpg",
                                                              "provider": "nonesuch"}), 400, "bad_request")


def test_multipart_without_a_file_is_422(operator):
    assert_problem(operator.post("/upload", files={"other": ("x.jpg", io.BytesIO(b"x"))}), 422, "validation_error")


@pytest.mark.parametrize("run_async", [False, True])
def test_files_that_are_not_the_endpoints_media_are_415_at_submission(operator, api_server, media_root, run_async):
    (api_server.data_dir / "uploads" / "fake.mp3").write_text("just some text, not a song\n")
    for path, body in (("/analyze/audio", {"audio_path": "uploads/fake.mp3"}),
                       ("/analyze/audio", {"audio_path": "room.jpg"}),
                       ("/analyze/image/path", {"image_path": "siren.wav"}),
                       ("/analyze/video", {"video_path": "room.jpg"})):
        problem = assert_problem(operator.post(path, json={**body, "async": run_async}), 415, "unsupported_media")
        # Named as the request named it, not by its path on the server.
        assert problem["detail"].startswith(f"{next(iter(body.values()))}: ")
        assert str(api_server.data_dir) not in problem["detail"] and str(media_root) not in problem["detail"]


def test_the_sound_track_of_a_video_is_analysed_as_audio(operator, api_server):
    write_video(api_server.data_dir / "uploads" / "talking.mp4", [still_room(64, 48, seed=i) for i in range(10)],
                fps=10, audio=siren(1.0))
    response = operator.post("/analyze/audio", json={"audio_path": "uploads/talking.mp4"})
    assert response.status_code == 200, response.text
    assert response.json()["media"]["media_type"] == "audio"


def test_decoding_errors_name_the_clients_path(operator, media_root, api_server):
    (api_server.data_dir / "uploads" / "torn.jpg").write_bytes((media_root / "room.jpg").read_bytes()[:200])
    problem = assert_problem(operator.post("/analyze/image/path", json={"image_path": "uploads/torn.jpg"}), 422,
                             "corrupt_media")
    assert problem["detail"].startswith("uploads/torn.jpg: ") and str(api_server.data_dir) not in problem["detail"]


def test_a_refused_host_name_does_not_reveal_its_address(strict_server):
    with strict_server.client(strict_server.admin_key) as client:
        response = client.post("/analyze/image/url", json={"image_url": "http://localhost:8080/x.jpg"})
    detail = assert_problem(response, 403, "unsafe_target")["detail"]
    assert "localhost resolves to a loopback address" in detail
    assert "127.0.0.1" not in detail and "::1" not in detail


def test_an_upload_whose_row_cannot_be_written_leaves_no_file(operator, operator_key, api_server, media_root):
    database = api_server.data_dir / "watchkeeper.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TRIGGER refuse_upload BEFORE INSERT ON uploads WHEN NEW.original_name = "
                           "'refused.png' BEGIN SELECT RAISE(ABORT, 'forced failure'); END")
    try:
        # A client of its own: the server closes the connection after an unexpected error.
        with (media_root / "noise.png").open("rb") as handle, api_server.client(operator_key) as client:
            response = client.post("/upload", files={"file": ("refused.png", handle)})
    finally:
        with sqlite3.connect(database) as connection:
            connection.execute("DROP TRIGGER refuse_upload")
    assert_problem(response, 500)
    assert not [p.name for p in (api_server.data_dir / "uploads").iterdir() if p.name.startswith(("refused", ".upload"))]
    assert upload(operator, media_root / "noise.png", name="refused.png")["filename"] == "refused.png"
