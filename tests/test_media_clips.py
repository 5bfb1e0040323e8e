"""Cutting spans out of audio and video files for feedback data sets."""

import pytest

from mediagen import still_room, tone, write_audio, write_video
from watchkeeper.errors import CorruptMediaError, EmptyMediaError
from watchkeeper.media import load_media
from watchkeeper.media.clips import cut_clip


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    video = write_video(root / "ten.mp4", [still_room(seed=i // 15) for i in range(150)], fps=15,
                        audio=tone(440, 10.0))
    audio = write_audio(root / "ten.wav", tone(440, 10.0))
    return root, video, audio


def test_audio_span_is_cut_to_the_sample(sources, tmp_path):
    _, _, audio = sources
    clip = load_media(cut_clip(audio, tmp_path / "span.wav", 4.0, 6.0))
    assert clip.info.duration_s == pytest.approx(2.0, abs=0.1)


def test_video_span_starts_at_a_keyframe_and_ends_at_the_span(sources, tmp_path):
    _, video, _ = sources
    whole = load_media(video)
    clip = load_media(cut_clip(video, tmp_path / "span.mp4", 4.0, 6.0))
    # Copied packets start at the keyframe at or before 4 s, so the clip may begin early, never late.
    assert 2.0 - 0.1 <= clip.info.duration_s <= 6.0 + 0.2
    assert clip.info.duration_s < whole.info.duration_s - 3.5
    assert clip.audio is not None and clip.audio.size > 0


def test_spans_outside_the_media_and_broken_files_are_typed_errors(sources, tmp_path):
    root, video, _ = sources
    with pytest.raises(EmptyMediaError):
        cut_clip(video, tmp_path / "late.mp4", 50.0, 60.0)
    assert not (tmp_path / "late.mp4").exists()
    broken = root / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a movie")
    with pytest.raises(CorruptMediaError):
        cut_clip(broken, tmp_path / "x.mp4", 0.0, 1.0)
    with pytest.raises(ValueError):
        cut_clip(video, tmp_path / "x.mp4", 3.0, 3.0)
