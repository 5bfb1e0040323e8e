"""End to end through the public Python API, on real models and media made here."""

import io

import numpy as np
import pytest
from skimage import data as skdata
from PIL import Image

from mediagen import noise, speak, still_room, write_audio, write_video
from watchkeeper import Pipeline
from watchkeeper.config import Settings
from watchkeeper.errors import CorruptMediaError, MediaError
from watchkeeper.samples import siren
from watchkeeper.taxonomy import BUILTIN_IDS


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    files = {}
    raw = speak("Help me! He has a gun!", folder / "raw.wav", speed_wpm=140)
    from watchkeeper.media import load_media

    voice = load_media(raw).audio
    padded = np.concatenate([np.zeros(8000, np.float32), voice, np.zeros(16000, np.float32)])
    files["help"] = write_audio(folder / "help.wav", padded + noise(len(padded) / 16000, amplitude=0.003))
    files["room"] = write_video(folder / "room.mp4", [still_room(seed=i) for i in range(4 * 15)], fps=15,
                                audio=noise(4.0, amplitude=0.001))
    files["siren_room"] = write_video(folder / "siren_room.mp4", [still_room(seed=i) for i in range(5 * 15)],
                                      fps=15, audio=siren(5.0))
    files["astronaut"] = folder / "astronaut.jpg"
    Image.fromarray(skdata.astronaut()).save(files["astronaut"])
    files["corrupt"] = folder / "corrupt.mp4"
    files["corrupt"].write_bytes(files["room"].read_bytes()[:600])
    return files


def test_spoken_call_for_help_is_a_distress_incident_quoting_the_transcript(pipeline, media):
    result = pipeline.analyze(media["help"])
    assert result.media.media_type == "audio"
    assert "help" in result.transcript_text.lower()
    distress = next(i for i in result.incidents if i.category == "distress")
    assert any("help" in (e.detection.attributes.get("text") or "").lower() for e in distress.evidence)
    assert "help" in distress.summary.lower()
    assert result.crime_detected and result.crime_type
    assert result.provider == "local" and result.confidence in ("medium", "high")


def test_quiet_empty_room_is_no_crime(pipeline, media):
    result = pipeline.analyze(media["room"])
    assert result.media.media_type == "video"
    assert result.crime_detected is False and result.crime_type is None and result.incidents == []
    assert set(result.scores) == set(BUILTIN_IDS)
    assert result.evidence_description.startswith("No incident found")
    assert result.media.frames_sampled == 4 and len(result.frames) == 4


def test_video_audio_track_is_analysed(pipeline, media):
    result = pipeline.analyze(media["siren_room"])
    assert any(e["label"] in ("audio:siren", "audio:alarm") for e in result.audio_events)
    assert "alarm" in {i.category for i in result.incidents}


def test_image_with_a_person(pipeline, media):
    result = pipeline.analyze(media["astronaut"])
    assert any(d.label == "person" for d in result.detections)
    assert result.frames[0]["detections"]
    assert not result.crime_detected
    assert {"decode", "objects", "fusion", "total"} <= set(result.timings_ms)


def test_bytes_input_and_cache(pipeline):
    buffer = io.BytesIO()
    Image.fromarray(skdata.chelsea()).save(buffer, format="PNG")
    data = buffer.getvalue()
    first = pipeline.analyze(data)
    second = pipeline.analyze(data)
    assert second.cache_hit and not first.cache_hit
    assert second.scores == first.scores
    assert pipeline.analyze(data, use_cache=False).cache_hit is False


def test_corrupt_input_is_a_typed_error(pipeline, media):
    with pytest.raises(MediaError):
        pipeline.analyze(media["corrupt"], use_cache=False)


def test_batch_of_five_with_one_corrupt_file(pipeline, media):
    inputs = [media[k] for k in ("help", "room", "corrupt", "astronaut", "siren_room")]
    items = list(pipeline.analyze_many(inputs, workers=1))
    assert len(items) == 5
    failed = [i for i in items if i.error]
    assert [i.source for i in failed] == [str(media["corrupt"])]
    assert failed[0].error["type"] in {CorruptMediaError.__name__, "EmptyMediaError"}
    assert all(i.result is not None for i in items if not i.error)


def test_process_pool_batch(tmp_path, media):
    pipeline = Pipeline(Settings(data_dir=tmp_path))
    inputs = [media["astronaut"], media["corrupt"], media["help"]]
    items = {i.source: i for i in pipeline.analyze_many(inputs, workers=2)}
    assert set(items) == {str(p) for p in inputs}
    assert items[str(media["corrupt"])].error is not None
    assert items[str(media["help"])].result.crime_detected


def test_a_failing_analyzer_does_not_lose_the_others(tmp_path, media):
    broken = Settings(data_dir=tmp_path, models={"weights_dirs": {"yamnet": str(tmp_path / "nowhere")}})
    result = Pipeline(broken).analyze(media["help"], use_cache=False)
    assert result.analyzer_errors["audio_events"]["type"] == "ModelUnavailableError"
    assert "help" in result.transcript_text.lower()  # speech still ran


def test_progress_rises_chunk_by_chunk_to_one_hundred(tmp_path, media):
    settings = Settings(data_dir=tmp_path)
    settings.media.chunk_s = 2.0
    heard: list[float] = []
    Pipeline(settings).analyze(media["siren_room"], use_cache=False, on_progress=heard.append)
    assert heard[-1] == 100.0 and heard == sorted(heard)
    assert any(40 <= p <= 60 for p in heard)  # the first of two chunks done: about half way
    image: list[float] = []
    Pipeline(settings).analyze(media["astronaut"], use_cache=False, on_progress=image.append)
    assert image[-1] == 100.0 and 0 < image[0] < 100 and image == sorted(image)
