"""`watchkeeper report` on real media with no provider configured: the report talks about what was found."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader

from mediagen import doom_sound, noise, write_audio

SECTION_TITLES = ["Situation overview", "Severity assessment", "Hazard analysis", "Immediate actions",
                  "Equipment required", "De-escalation strategy", "Resolution method"]


EXE = str(Path(sys.executable).with_name("watchkeeper"))


def watchkeeper(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WATCHKEEPER_DATA_DIR": str(cwd / "data")}
    return subprocess.run([EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def gunshot(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    shot = doom_sound("DSPISTOL")  # a recorded pistol shot
    quiet = noise(1.0, amplitude=0.003)
    return write_audio(folder / "some_gunshot.wav", np.concatenate([quiet, shot, quiet, shot, quiet, quiet]))


def test_a_gunshot_recording_gets_a_pdf_report_about_that_gunshot(gunshot):
    run = watchkeeper("report", gunshot.name, "--format", "pdf", cwd=gunshot.parent)
    assert run.returncode == 0, run.stderr
    pdf = gunshot.parent / "some_gunshot.pdf"
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    text = " ".join(text.split())
    positions = [text.find(title) for title in SECTION_TITLES]
    assert all(p >= 0 for p in positions) and positions == sorted(positions)
    assert "Gunfire" in text and "audio:gunshot" in text and "some_gunshot.wav" in text
    assert "Call" in text  # the template's first steps (emergency services) are there


def test_markdown_and_json_go_to_stdout_and_say_what_was_heard(gunshot):
    run = watchkeeper("report", gunshot.name, "--format", "markdown", cwd=gunshot.parent)
    assert run.returncode == 0, run.stderr
    assert "# Gunfire" in run.stdout and "Severity 5" in run.stdout and "audio:gunshot" in run.stdout
    run = watchkeeper("report", gunshot.name, "--format", "json", cwd=gunshot.parent)
    report = json.loads(run.stdout)
    assert report["written_by"] == "templates" and report["incidents"][0]["category"] == "shooting"
    assert report["assessment"]["audio_score"] > 0.5 and report["assessment"]["source"] == "local"
    assert set(report["incidents"][0]["sections"]) == {
        "situation_overview", "severity_assessment", "hazard_analysis", "immediate_actions",
        "equipment_required", "de_escalation_strategy", "resolution_method"}


def test_an_unknown_subject_is_a_clear_error(tmp_path):
    run = watchkeeper("report", "no-such-analysis", cwd=tmp_path)
    assert run.returncode == 2 and "neither a media file nor a stored analysis id" in run.stderr
