"""The real `watchkeeper` program, run as a user would."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from skimage import data as skdata

from mediagen import noise, still_room, write_audio, write_video
from watchkeeper.samples import siren

EXE = str(Path(sys.executable).with_name("watchkeeper"))


def run(*args, cwd, env_extra=None):
    env = {**os.environ, "WATCHKEEPER_DATA_DIR": str(cwd / "data"), **(env_extra or {})}
    return subprocess.run([EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    media = root / "media"
    (media / "sub").mkdir(parents=True)
    Image.fromarray(skdata.coffee()).save(media / "coffee.png")
    write_audio(media / "siren.flac", siren(4.0))
    write_video(media / "sub" / "room.mp4", [still_room(seed=i) for i in range(30)], fps=15,
                audio=noise(2.0, amplitude=0.001))
    (media / "notes.txt").write_text("not media")  # skipped when walking a directory
    (media / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    return root


def test_jsonl_over_a_directory_with_one_broken_file(folder):
    proc = run("analyze", "media", "--recursive", "--format", "jsonl", "--workers", "1", cwd=folder)
    assert proc.returncode == 2, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == 4
    by_name = {Path(r["path"]).name: r for r in records}
    assert by_name["broken.jpg"]["error"]["type"] == "CorruptMediaError"
    siren_record = by_name["siren.flac"]
    assert siren_record["crime_detected"] and siren_record["media_type"] == "audio"
    assert siren_record["scores"]["alarm"] >= 0.5 and len(siren_record["scores"]) == 20
    for key in ("path", "media_type", "scores", "incidents", "crime_detected", "crime_type", "error"):
        assert key in by_name["coffee.png"]
    assert "broken.jpg" in proc.stderr


def test_non_recursive_walk_and_out_file_and_cache(folder):
    out = folder / "result.json"
    first = run("analyze", "media", "--format", "json", "--out", str(out), cwd=folder)
    assert first.returncode == 0, first.stderr
    results = json.loads(out.read_text())
    assert sorted(Path(r["path"]).name for r in results) == ["coffee.png", "siren.flac"]
    again = run("analyze", "media/coffee.png", "--format", "jsonl", cwd=folder)
    assert json.loads(again.stdout)["cache_hit"] is True
    fresh = run("analyze", "media/coffee.png", "--format", "jsonl", "--no-cache", cwd=folder)
    assert json.loads(fresh.stdout)["cache_hit"] is False


def test_table_and_markdown(folder):
    table = run("analyze", "media/siren.flac", cwd=folder)
    assert table.returncode == 0 and "alarm" in table.stdout
    md = run("analyze", "media/siren.flac", "--format", "markdown", cwd=folder)
    assert md.stdout.startswith("| file | type |") and "alarm" in md.stdout


def test_usage_errors_exit_1(folder):
    for wrong in (run("analyze", "--format", "xml", "media", cwd=folder),
                  run("analyze", "media", "--no-such-option", cwd=folder)):
        assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert "No such option: --no-such-option" in wrong.stderr
    assert run("analyze", "media/notes.txt", "--frame-interval", "0", cwd=folder).returncode == 1
    empty = folder / "empty"
    empty.mkdir()
    assert run("analyze", "empty", cwd=folder).returncode == 1
    bad_settings = run("analyze", "media", cwd=folder, env_extra={"SECURITY_LEVEL": "ultra"})
    assert bad_settings.returncode == 1 and "event.security_level" in bad_settings.stderr


def test_missing_and_unsupported_files_fail_alone(folder):
    proc = run("analyze", "media/coffee.png", "media/notes.txt", "media/absent.mp4", "--format", "jsonl", cwd=folder)
    assert proc.returncode == 2
    errors = {Path(r["path"]).name: r["error"] for r in map(json.loads, proc.stdout.splitlines())}
    assert errors["coffee.png"] is None
    assert errors["notes.txt"]["type"] == "UnsupportedMediaError"
    assert errors["absent.mp4"]["type"] in ("MediaFetchError", "MediaError")


def test_models_and_doctor(folder):
    models = run("models", "--no-load", cwd=folder)
    assert models.returncode == 0, models.stdout
    for name in ("yamnet", "whisper-tiny.en", "yolov3-tiny", "mediapipe-pose", "minilm"):
        assert name in models.stdout
    doctor = run("doctor", cwd=folder)
    assert doctor.returncode == 0, doctor.stdout
    assert "all checks passed" in doctor.stdout
