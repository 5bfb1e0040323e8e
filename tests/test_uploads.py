"""Uploads (size limit, content sniffing, safe names, kept in the artefact store) and server paths confined to the
media roots."""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mediagen import tone, write_audio, write_video
from PIL import Image
from sqlalchemy import text

from watchkeeper.errors import (
    CorruptMediaError, EmptyMediaError, MediaFetchError, MediaTooLargeError, NotFoundError, UnsafePathError,
    UnsupportedMediaError,
)
from watchkeeper.artefacts import LocalArtefactStore
from watchkeeper.store.db import Database
from watchkeeper.store.models import Analysis, Job, Upload
from watchkeeper.uploads import MediaRoots, StoredUpload, UploadStore, named_as_requested, secure_name


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("samples")
    image = np.zeros((32, 48, 3), np.uint8)
    image[8:24, 12:36] = (200, 40, 40)
    out: dict[str, bytes] = {}
    for fmt in ("jpeg", "png"):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format=fmt.upper())
        out[fmt] = buffer.getvalue()
    out["wav"] = write_audio(folder / "tone.wav", tone(440, 0.5)).read_bytes()
    out["m4a"] = write_audio(folder / "tone.m4a", tone(440, 0.5)).read_bytes()
    frames = [np.full((64, 64, 3), i * 20, np.uint8) for i in range(5)]
    out["mp4"] = write_video(folder / "clip.mp4", frames, fps=5).read_bytes()
    return out


@pytest.fixture
def artefacts(tmp_path: Path) -> LocalArtefactStore:
    return LocalArtefactStore(tmp_path / "artefacts")


@pytest.fixture
def store(artefacts: LocalArtefactStore, db: Database, tmp_path: Path) -> UploadStore:
    return UploadStore(artefacts, db, spool_dir=tmp_path / "spool", max_bytes=200_000)


def save(store: UploadStore, data: bytes, name: str, content_type: str | None = None) -> StoredUpload:
    return store.save(io.BytesIO(data), name, content_type)


def upload(store: UploadStore, data: bytes, name: str) -> str:
    """As POST /upload does: stored, then recorded; the name it got."""
    with store.saving(io.BytesIO(data), name) as stored, store.db.session() as session:
        return store.record(session, stored, uploaded_by=None).filename


def leftovers(store: UploadStore) -> list[str]:
    """Objects in the artefact store and files being checked in the spool folder."""
    assert isinstance(store.artefacts, LocalArtefactStore)
    return sorted(p.name for folder in (store.artefacts.root, store.spool_dir) for p in folder.rglob("*")
                  if p.is_file())


def test_save(store: UploadStore, samples: dict[str, bytes]) -> None:
    stored = save(store, samples["jpeg"], "lobby.jpg", "image/jpeg")
    assert (stored.filename, stored.media_type, stored.content_type) == ("lobby.jpg", "image", "image/jpeg")
    assert stored.sha256 == hashlib.sha256(samples["jpeg"]).hexdigest() and stored.artefact == f"{stored.sha256}.jpg"
    assert stored.size_bytes == len(samples["jpeg"]) and stored.original_name == "lobby.jpg"
    with store.artefacts.local_path(stored.artefact) as path:
        assert path.read_bytes() == samples["jpeg"]
    assert store.find("lobby.jpg") is None  # stored, but not an upload until it is recorded

    audio = save(store, samples["wav"], "Alarm.WAV")
    video = save(store, samples["mp4"], "door.mp4")
    assert (audio.filename, audio.media_type, audio.content_type) == ("Alarm.wav", "audio", "audio/wav")
    assert (video.media_type, video.content_type) == ("video", "video/mp4")


def test_requests_name_recorded_uploads(store: UploadStore, samples: dict[str, bytes]) -> None:
    name = upload(store, samples["jpeg"], "lobby.jpg")
    found = store.get(name)
    assert found.artefact == f"{hashlib.sha256(samples['jpeg']).hexdigest()}.jpg" and found.media_type == "image"
    for requested in ("uploads/lobby.jpg", "lobby.jpg", "./uploads/./lobby.jpg"):
        assert store.find(requested) == found
    for elsewhere in ("door/lobby.jpg", "/srv/uploads/lobby.jpg", "uploads/absent.jpg", "uploads/../lobby.jpg",
                      "lobby.jpg\x00.png"):
        assert store.find(elsewhere) is None  # perhaps a file in a media root, not an upload


def test_same_name_gets_a_suffix_and_the_same_bytes_are_one_object(store: UploadStore,
                                                                   samples: dict[str, bytes]) -> None:
    first = upload(store, samples["jpeg"], "cam.jpg")
    second = upload(store, samples["jpeg"], "cam.jpg")
    assert first == "cam.jpg" and second != "cam.jpg"
    assert second.startswith("cam-") and second.endswith(".jpg")
    assert store.get(first).artefact == store.get(second).artefact
    assert len(leftovers(store)) == 1


@pytest.mark.parametrize(("original", "expected"), [
    ("../../etc/passwd.jpg", ("passwd", ".jpg")),
    ("C:\\Users\\guard\\Évidence 1.JPG", ("Evidence_1", ".jpg")),
    ("..\\..\\boot.ini.png", ("boot_ini", ".png")),
    ("photo.php.jpg", ("photo_php", ".jpg")),
    ("监控.mp4", ("upload", ".mp4")),
    (".hidden.wav", ("hidden", ".wav")),
    ("-rf .jpg", ("rf", ".jpg")),
    ("name\x00.jpg", ("name", ".jpg")),
    ("noextension", ("noextension", "")),
    ("a" * 300 + ".jpg", ("a" * 100, ".jpg")),
])
def test_secure_name(original: str, expected: tuple[str, str]) -> None:
    assert secure_name(original) == expected


def test_traversal_in_the_name_is_only_a_name(store: UploadStore, samples: dict[str, bytes]) -> None:
    assert upload(store, samples["jpeg"], "../../../../tmp/evil.jpg") == "evil.jpg"


def test_size_limit(store: UploadStore, samples: dict[str, bytes]) -> None:
    with pytest.raises(MediaTooLargeError, match="upload_max_bytes"):
        save(store, samples["jpeg"] + bytes(300_000), "big.jpg")
    with pytest.raises(EmptyMediaError):
        save(store, b"", "empty.jpg")
    assert leftovers(store) == []  # no partial files stay behind


@pytest.mark.parametrize(("sample", "name", "message"), [
    ("png", "photo.jpg", r"named '\.jpg' \(jpeg\) but holds png data"),
    ("wav", "clip.mp4", "holds wav data"),
    ("mp4", "clip.wav", "holds mp4 data"),
    ("text", "photo.jpg", "a text file"),
    ("html", "photo.png", "a text file"),
    ("pdf", "report.jpg", "a pdf file"),
    ("garbage", "photo.jpg", "not recognised as media"),
    ("jpeg", "photo.svg", r"extension '\.svg' names no supported media format"),
    ("jpeg", "photo.html", r"extension '\.html'"),
    ("jpeg", "photo", "no extension"),
])
def test_content_must_agree_with_the_name(store: UploadStore, samples: dict[str, bytes], sample: str, name: str,
                                          message: str) -> None:
    data = {
        "text": b"hello, this is not an image\n",
        "html": b"<html><script>alert(1)</script></html>",
        "pdf": b"%PDF-1.7\n" + bytes(100),
        "garbage": bytes(range(1, 200)) * 3,
    }.get(sample) or samples[sample]
    with pytest.raises(UnsupportedMediaError, match=message):
        save(store, data, name)
    assert leftovers(store) == []


def test_container_families_and_declared_types(store: UploadStore, samples: dict[str, bytes]) -> None:
    # The same ISO container goes by .m4a, .mp4 and .mov; the content decides audio or video.
    audio_as_mp4 = save(store, samples["m4a"], "voice.mp4")
    assert (audio_as_mp4.media_type, audio_as_mp4.content_type) == ("audio", "audio/mp4")
    # A browser's blob has no extension: its declared type names the format, which must still agree.
    blob = save(store, samples["png"], "blob", "image/png")
    assert blob.filename == "blob.png" and blob.media_type == "image"
    with pytest.raises(UnsupportedMediaError, match="holds png data"):
        save(store, samples["png"], "blob", "image/jpeg")


def test_saving_keeps_the_object_only_when_the_block_succeeds(store: UploadStore, samples: dict[str, bytes]) -> None:
    kept = upload(store, samples["jpeg"], "kept.jpg")
    assert leftovers(store) == [store.get(kept).artefact]
    # As when the upload's database row or audit entry cannot be written.
    with pytest.raises(RuntimeError), store.saving(io.BytesIO(samples["png"]), "orphan.png") as orphan:
        assert store.artefacts.exists(orphan.artefact)
        raise RuntimeError("database down")
    assert leftovers(store) == [store.get(kept).artefact]
    # The same bytes as a recorded upload: one object, which stays for that upload.
    with pytest.raises(RuntimeError), store.saving(io.BytesIO(samples["jpeg"]), "again.jpg"):
        raise RuntimeError("database down")
    assert leftovers(store) == [store.get(kept).artefact]


def test_recording_stores_the_bytes_again_when_a_failed_upload_deleted_them(store: UploadStore,
                                                                            samples: dict[str, bytes]) -> None:
    with store.saving(io.BytesIO(samples["jpeg"]), "b.jpg") as b:
        # Upload A of the same bytes fails before B's row exists: no row names the object, so it goes.
        with pytest.raises(RuntimeError), store.saving(io.BytesIO(samples["jpeg"]), "a.jpg"):
            raise RuntimeError("database down")
        assert not store.artefacts.exists(b.artefact)
        with store.db.session() as session:
            store.record(session, b, uploaded_by=None)
    assert store.artefacts.exists(b.artefact)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite's writers cannot interleave
def test_a_failed_upload_waits_for_a_row_being_written_for_the_same_bytes(store: UploadStore,
                                                                         samples: dict[str, bytes]) -> None:
    def fail_upload_a() -> None:
        with contextlib.suppress(RuntimeError), store.saving(io.BytesIO(samples["jpeg"]), "a.jpg"):
            raise RuntimeError("database down")

    upload_a = threading.Thread(target=fail_upload_a)
    with store.saving(io.BytesIO(samples["jpeg"]), "b.jpg") as b, store.db.session() as session:
        store.record(session, b, uploaded_by=None)  # B's row is written, not yet committed
        upload_a.start()
        deadline = time.monotonic() + 10
        while upload_a.is_alive() and not _waiting_for_an_advisory_lock(store.db) and time.monotonic() < deadline:
            time.sleep(0.02)
    upload_a.join(10)
    assert not upload_a.is_alive()
    assert store.artefacts.exists(b.artefact) and store.get("b.jpg").artefact == b.artefact


def _waiting_for_an_advisory_lock(db: Database) -> bool:
    with db.engine.connect() as connection:
        waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return bool(connection.scalar(waiting))


@pytest.mark.parametrize("name", ["../lobby.jpg", "sub/lobby.jpg", ".upload-x.part", "", "lobby", "%2e%2e.jpg",
                                  "lobby.jpg\x00.png"])
def test_get_refuses_names_it_never_makes(store: UploadStore, name: str) -> None:
    with pytest.raises(UnsafePathError):
        store.get(name)


def test_get_a_missing_upload(store: UploadStore) -> None:
    with pytest.raises(NotFoundError):
        store.get("absent.jpg")


def test_uploads_from_before_the_store_are_adopted(store: UploadStore, samples: dict[str, bytes],
                                                   tmp_path: Path) -> None:
    folder = tmp_path / "data" / "uploads"
    folder.mkdir(parents=True)
    (folder / "old.jpg").write_bytes(samples["jpeg"])
    (tmp_path / "secret.wav").write_bytes(samples["wav"])
    (folder / "planted.wav").symlink_to(tmp_path / "secret.wav")
    old_path = str((folder / "old.jpg").resolve())  # as analyses and jobs recorded it: MediaRoots.resolve's
    with store.db.session() as session:
        for name in ("old.jpg", "gone.png", "planted.wav"):
            session.add(Upload(filename=name, original_name=name, size_bytes=1, sha256="0" * 64, media_type="image"))
        session.add(Analysis(id="a1", source="uploads/old.jpg", media_path=old_path, media_type="image",
                             crime_detected=False, result={}))
        for job_id, state in (("waiting", "pending"), ("done", "succeeded")):
            session.add(Job(id=job_id, kind="analyze", state=state, params={"source": old_path, "camera": "c"}))
    assert store.adopt(folder) == 1
    address = f"{hashlib.sha256(samples['jpeg']).hexdigest()}.jpg"
    assert store.get("old.jpg").artefact == address
    with store.db.session(write=False) as session:
        assert session.get(Analysis, "a1").media_path == f"artefact:{address}"
        assert session.get(Job, "waiting").params == {"source": f"artefact:{address}", "camera": "c"}
        assert session.get(Job, "done").params["source"] == old_path  # finished: its record stays as it was
    assert not (folder / "old.jpg").exists() and store.adopt(folder) == 0
    for left in ("gone.png", "planted.wav"):  # no file, or not one of ours: nothing to serve
        with pytest.raises(NotFoundError):
            store.get(left)


# ---------------------------------------------------------------- media roots


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """data/uploads (a root), /srv/cameras (a root), and files outside both."""
    data = tmp_path / "data"
    uploads = data / "uploads"
    cameras = tmp_path / "srv" / "cameras"
    outside = tmp_path / "private"
    for folder in (uploads, cameras / "door", outside):
        folder.mkdir(parents=True)
    (uploads / "x.jpg").write_bytes(b"upload")
    (cameras / "door" / "clip.mp4").write_bytes(b"video")
    (outside / "secret.jpg").write_bytes(b"secret")
    (data / "watchkeeper.db").write_bytes(b"database")
    return {"data": data, "uploads": uploads, "cameras": cameras, "outside": outside}


@pytest.fixture
def roots(layout: dict[str, Path]) -> MediaRoots:
    return MediaRoots([layout["uploads"], layout["cameras"]], base=layout["data"])


def test_resolve_inside_the_roots(roots: MediaRoots, layout: dict[str, Path]) -> None:
    upload = (layout["uploads"] / "x.jpg").resolve()
    assert roots.resolve("uploads/x.jpg") == upload  # seed 000's file_path, relative to the data folder
    assert roots.resolve("x.jpg") == upload  # relative to a root
    assert roots.resolve("./uploads/./x.jpg") == upload
    assert roots.resolve(str(layout["uploads"] / "x.jpg")) == upload
    assert roots.resolve("door/clip.mp4") == (layout["cameras"] / "door" / "clip.mp4").resolve()
    assert roots.resolve(str(layout["cameras"] / "door" / "clip.mp4")).read_bytes() == b"video"


@pytest.mark.parametrize("requested", [
    "../private/secret.jpg",
    "uploads/../../private/secret.jpg",
    "uploads/../watchkeeper.db",
    "door/../../../private/secret.jpg",
    "/etc/passwd",
    "uploads/x.jpg\x00.png",
])
def test_resolve_refuses_escapes(roots: MediaRoots, layout: dict[str, Path], requested: str) -> None:
    with pytest.raises(UnsafePathError):
        roots.resolve(requested)


def test_resolve_refuses_absolute_paths_outside(roots: MediaRoots, layout: dict[str, Path]) -> None:
    with pytest.raises(UnsafePathError, match="not inside the media roots"):
        roots.resolve(str(layout["outside"] / "secret.jpg"))
    with pytest.raises(UnsafePathError):  # whether or not the file exists: nothing is revealed
        roots.resolve(str(layout["outside"] / "absent.jpg"))


def test_resolve_symlinks(roots: MediaRoots, layout: dict[str, Path]) -> None:
    uploads = layout["uploads"]
    (uploads / "escape.jpg").symlink_to(layout["outside"] / "secret.jpg")
    (uploads / "linked-dir").symlink_to(layout["outside"], target_is_directory=True)
    (uploads / "loop.jpg").symlink_to(uploads / "loop.jpg")
    (uploads / "alias.jpg").symlink_to(uploads / "x.jpg")  # a link that stays inside is fine
    for requested in ("uploads/escape.jpg", "escape.jpg", "linked-dir/secret.jpg", "uploads/loop.jpg"):
        with pytest.raises(UnsafePathError):
            roots.resolve(requested)
    assert roots.resolve("alias.jpg") == (uploads / "x.jpg").resolve()


def test_resolve_through_a_symlinked_root(layout: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "media-link").symlink_to(layout["cameras"], target_is_directory=True)
    roots = MediaRoots([tmp_path / "media-link"], base=tmp_path)
    assert roots.resolve("media-link/door/clip.mp4").read_bytes() == b"video"
    assert roots.resolve("door/clip.mp4").read_bytes() == b"video"


def test_resolve_missing_files(roots: MediaRoots) -> None:
    with pytest.raises(MediaFetchError, match="no such file") as raised:
        roots.resolve("uploads/absent.jpg")
    assert not isinstance(raised.value, UnsafePathError)
    with pytest.raises(MediaFetchError, match="no such file"):
        roots.resolve("door")  # a folder is not a media file
    with pytest.raises(MediaFetchError, match="no such file"):
        roots.resolve("watchkeeper.db")  # in the data folder (the base), which is not a root
    with pytest.raises(MediaFetchError, match="empty"):
        roots.resolve("  ")


def test_errors_name_the_file_as_the_request_did(roots: MediaRoots, layout: dict[str, Path]) -> None:
    resolved = roots.resolve("x.jpg")
    with pytest.raises(CorruptMediaError) as raised, named_as_requested(resolved, "x.jpg"):
        raise CorruptMediaError(f"{resolved}: cannot decode")
    assert str(raised.value) == "x.jpg: cannot decode" and str(layout["data"]) not in str(raised.value)
