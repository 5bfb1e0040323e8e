"""Judged incidents exported as a data set that `watchkeeper train` reads."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from mediagen import noise, still_room, write_audio, write_video
from watchkeeper.artefacts import LocalArtefactStore, as_reference
from watchkeeper.errors import ConfigError
from watchkeeper.heads.dataset import load_dataset
from watchkeeper.heads.feedback import export_feedback
from watchkeeper.media import load_media
from watchkeeper.samples import siren
from watchkeeper.store.analyses import save_analysis
from watchkeeper.store.models import IncidentRecord

EXE = str(Path(sys.executable).with_name("watchkeeper"))


@pytest.fixture(scope="module")
def analysed(pipeline, tmp_path_factory):
    """Real analyses of a siren, a video and a photo, and where their media lie."""
    root = tmp_path_factory.mktemp("feedback-media")
    alarm = write_audio(root / "siren.wav", siren(6.0) + noise(6.0, amplitude=0.01))
    video = write_video(root / "room.mp4", [still_room(seed=i // 15) for i in range(8 * 15)], fps=15)
    from skimage import data as skdata
    from PIL import Image

    photo = root / "coffee.jpg"
    Image.fromarray(skdata.coffee()).save(photo)
    return [(path, pipeline.analyze(path)) for path in (alarm, video, photo)]


def judge(db, analysed, verdicts):
    """Store the analyses; give every analysis one incident of its own and set the statuses asked for.

    A path of None stands for media fetched from a URL: the client named the URL and no file was kept.
    """
    with db.session() as session:
        for (path, result), (category, status, span) in zip(analysed, verdicts, strict=True):
            # The export reads the file this machine analysed, whatever name the client gave.
            source = f"https://cams.example/{result.media.sha256}" if path is None else f"uploads/{Path(path).name}"
            analysis = save_analysis(session, result, source=source, media_path=path and str(path))
            template = result.incidents[0] if result.incidents else None
            record = IncidentRecord(
                category=category, category_name=category, severity=3, confidence=0.9, status=status,
                t_start_s=span[0], t_end_s=span[1], summary="judged by an operator",
                requires_immediate_action=False, modalities=["audio"],
                data=template.model_dump(mode="json") if template else {},
            )
            analysis.incidents.append(record)


def test_judged_incidents_become_a_grouped_folder_per_label_data_set(db, analysed, tmp_path):
    artefacts = LocalArtefactStore(tmp_path / "artefacts")
    alarm, video, (photo, photo_result) = analysed
    uploaded = as_reference(artefacts.put_file(photo, photo.suffix))  # an upload: only in the artefact store
    judge(db, [alarm, video, (uploaded, photo_result)], [
        ("alarm", "confirmed", (1.0, 3.0)), ("alarm", "false_alarm", (2.0, 4.0)), ("alarm", "false_alarm", (0.0, 0.0))])
    with db.session() as session:  # the siren's own incidents stay open: not judged, not exported
        assert session.scalars(select(IncidentRecord).where(IncidentRecord.status == "open")).all()
    out = tmp_path / "feedback"
    export = export_feedback(db, out, "alarm", artefacts=artefacts, context_s=0.5)
    assert not export.skipped
    assert [p.name for p in export.written["confirmed"]] and len(export.written["false_alarm"]) == 2
    clip = load_media(export.written["confirmed"][0])
    assert clip.info.media_type == "audio" and clip.info.duration_s == pytest.approx(3.0, abs=0.1)
    suffixes = sorted(p.suffix for p in export.written["false_alarm"])
    assert suffixes == [".jpg", ".mp4"]
    with (out / "groups.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and len({r["group"] for r in rows}) == 3
    dataset = load_dataset(out, ["confirmed"], group_file=out / "groups.csv")
    assert dataset.files_per_label == {"confirmed": 1, "false_alarm": 2}
    assert export_feedback(db, tmp_path / "fire", "fire", artefacts=artefacts).written == {
        "confirmed": [], "false_alarm": []}
    with pytest.raises(ConfigError, match="not empty"):
        export_feedback(db, out, "alarm", artefacts=artefacts)


def test_incidents_whose_media_is_gone_are_skipped_not_fatal(db, analysed, tmp_path):
    gone = tmp_path / "gone.wav"
    gone.write_bytes(Path(analysed[0][0]).read_bytes())
    artefacts = LocalArtefactStore(tmp_path / "artefacts")
    deleted = artefacts.put_file(analysed[2][0], ".jpg")
    artefacts.delete(deleted)
    judge(db, [(gone, analysed[0][1]), analysed[1], (None, analysed[2][1]), (as_reference(deleted), analysed[2][1])],
          [("alarm", "confirmed", (1.0, 2.0))] * 4)
    gone.unlink()
    export = export_feedback(db, tmp_path / "out", "alarm", artefacts=artefacts)
    assert len(export.written["confirmed"]) == 1
    reasons = sorted(reason for _, reason in export.skipped)
    assert len(reasons) == 3 and "no longer on this machine" in reasons[0] and "fetched from a URL" in reasons[1]
    assert reasons[2] == f"no artefact {deleted}"


def test_the_feedback_command_exports_from_the_configured_database(analysed, tmp_path):
    from watchkeeper.store.db import Database

    data = tmp_path / "data"
    db = Database(f"sqlite:///{data / 'watchkeeper.db'}")
    db.upgrade()
    judge(db, analysed[:2], [("alarm", "confirmed", (1.0, 3.0)), ("alarm", "false_alarm", (2.0, 4.0))])
    db.close()
    env = {**os.environ, "WATCHKEEPER_DATA_DIR": str(data)}
    proc = subprocess.run([EXE, "feedback", str(tmp_path / "set"), "--category", "alarm"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "1 confirmed and 1 false-alarm file(s)" in proc.stdout and "--positive confirmed" in proc.stdout
    assert (tmp_path / "set" / "confirmed").is_dir() and (tmp_path / "set" / "groups.csv").is_file()
