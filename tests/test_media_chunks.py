"""Chunked video decoding: the chunks of a video hold exactly what one whole pass holds, in bounded memory."""

from __future__ import annotations

import gc
import logging
import math
from pathlib import Path

import av
import numpy as np
import pytest
import skimage.data
from PIL import Image

from mediagen import tone, write_audio, write_video
from watchkeeper.config import MediaSettings
from watchkeeper.domain import Frame, Media
from watchkeeper.errors import CorruptMediaError, MediaError
from watchkeeper.media import iter_media, load_media

SR = 16_000
FPS = 15
SECONDS = 7


def level(index: int) -> int:
    """The grey level of frame ``index``, so a frame's pixels tell its number."""
    return 30 + (3 * index) % 200


def ramp(n_frames: int, width: int, height: int) -> list[np.ndarray]:
    return [np.full((height, width, 3), level(i), np.uint8) for i in range(n_frames)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chunks")


@pytest.fixture(scope="module")
def seven_s(workdir: Path) -> dict[str, Path]:
    """7 s with sound, written after the pictures: in the Matroska file the video runs seconds ahead."""
    frames = ramp(FPS * SECONDS, 320, 240)
    return {ext: write_video(workdir / f"seven.{ext}", frames, fps=FPS, audio=tone(440, SECONDS),
                             sound_after_pictures=True)
            for ext in ("mp4", "mkv")}


def frame_keys(media: list[Media]) -> list[tuple[int, float]]:
    return [(f.index, f.t_s) for m in media for f in m.frames]


def assert_chunks_match_whole(chunks: list[Media], whole: Media) -> None:
    """Concatenated, the chunks are the whole video: frames, pixels, motion (less the overlaps) and audio."""
    assert frame_keys(chunks) == frame_keys([whole])
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip([f for c in chunks for f in c.frames], whole.frames))
    own_motion = [c.motion.times_s[1 if c.info.chunk_index else 0:] for c in chunks]
    assert np.array_equal(np.concatenate(own_motion), whole.motion.times_s)
    own_gray = [c.motion.gray[1 if c.info.chunk_index else 0:] for c in chunks]
    assert np.array_equal(np.concatenate(own_gray), whole.motion.gray)
    audio = [c.audio for c in chunks if c.audio is not None]
    assert np.array_equal(np.concatenate(audio), whole.audio)


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_chunks_concatenate_to_the_whole_video(seven_s: dict[str, Path], ext: str) -> None:
    whole = load_media(seven_s[ext], frame_interval_s=0.5)
    chunks = list(iter_media(seven_s[ext], frame_interval_s=0.5, chunk_s=2))

    assert_chunks_match_whole(chunks, whole)
    spans = [(c.info.chunk_index, c.info.chunk_start_s, c.info.chunk_end_s) for c in chunks]
    assert spans[:3] == [(0, 0.0, 2.0), (1, 2.0, 4.0), (2, 4.0, 6.0)]
    assert spans[3][:2] == (3, 6.0) and spans[3][2] == whole.info.duration_s == pytest.approx(SECONDS, abs=0.1)
    for chunk in chunks:
        info = chunk.info
        span_s = info.chunk_end_s - info.chunk_start_s
        assert (chunk.t_start_s, chunk.t_end_s) == (info.chunk_start_s, info.chunk_end_s)
        assert info.sha256 == whole.info.sha256 and info.duration_s == pytest.approx(SECONDS, abs=0.1)
        assert info.frames_sampled == len(chunk.frames) == round(span_s / 0.5) and info.has_audio
        # Absolute times, inside the span; the pixels are those of the frame the index names.
        assert all(info.chunk_start_s <= f.t_s < info.chunk_end_s for f in chunk.frames)
        assert all(abs(f.rgb.mean() - level(f.index)) < 4 for f in chunk.frames)
        # Motion frames: the previous chunk's last one, then this span's at 8 per second.
        times = chunk.motion.times_s
        assert np.all(np.diff(times) > 0) and np.all(times[1 if info.chunk_index else 0:] >= info.chunk_start_s)
        assert len(times) == round(span_s * 8) + (info.chunk_index > 0) and times[-1] < info.chunk_end_s
        # Audio sample i of a chunk is at chunk_start_s + i / 16 kHz; the encoder pads the last audio frame.
        if chunk is chunks[-1]:
            assert abs(len(chunk.audio) - span_s * SR) < 0.05 * SR
        else:
            assert len(chunk.audio) == span_s * SR
    for previous, chunk in zip(chunks, chunks[1:]):
        assert chunk.motion.times_s[0] == previous.motion.times_s[-1] < chunk.info.chunk_start_s
        assert np.array_equal(chunk.motion.gray[0], previous.motion.gray[-1])


def test_tail_joins_the_last_chunk_and_short_videos_are_one_media(seven_s: dict[str, Path]) -> None:
    whole = load_media(seven_s["mp4"], frame_interval_s=0.5)
    # 3.2 + 3.2 leaves 0.6 s, under a quarter chunk: it joins the second chunk.
    chunks = list(iter_media(seven_s["mp4"], frame_interval_s=0.5, chunk_s=3.2))
    assert [(c.info.chunk_start_s, c.info.chunk_end_s) for c in chunks] == [
        (0.0, 3.2), (3.2, whole.info.duration_s)]
    assert_chunks_match_whole(chunks, whole)

    # Up to 1.25 chunks is one Media, the same as load_media's.
    [single] = iter_media(seven_s["mp4"], frame_interval_s=0.5, chunk_s=6)
    assert single.info == whole.info and single.info.chunk_end_s is None and single.t_end_s == whole.duration_s
    assert_chunks_match_whole([single], whole)


def test_max_frames_is_an_overall_cap(seven_s: dict[str, Path]) -> None:
    settings = MediaSettings(max_frames=5)
    chunks = list(iter_media(seven_s["mkv"], settings=settings, frame_interval_s=0.5, chunk_s=1.5))
    assert [len(c.frames) for c in chunks] == [3, 2, 0, 0, 0]
    assert_chunks_match_whole(chunks, load_media(seven_s["mkv"], settings=settings, frame_interval_s=0.5))


def video_lead_s(path: Path) -> float:
    """How far the file's video runs ahead of its audio: the time of the last video packet before any audio."""
    with av.open(str(path)) as container:
        lead = 0.0
        for packet in container.demux():
            if packet.stream.type == "audio":
                return lead
            lead = float(packet.pts * packet.time_base)
    raise AssertionError("no audio packet")


def live_frames() -> int:
    return sum(isinstance(o, Frame) for o in gc.get_objects())


def test_memory_follows_the_chunk_not_the_file(workdir: Path) -> None:
    fps, seconds = 10, 60
    path = write_video(workdir / "minute.mkv", ramp(fps * seconds, 640, 360), fps=fps, audio=tone(440, seconds),
                       sound_after_pictures=True)
    assert video_lead_s(path) > 30  # the premise: one demuxer would have to hold the frames of that lead

    before = live_frames()
    in_chunk, alive, n_audio = [], [], 0
    for chunk in iter_media(path, frame_interval_s=0.2, chunk_s=5):
        in_chunk.append(len(chunk.frames))
        alive.append(live_frames() - before)  # the chunk in hand and whatever the decoder holds besides
        n_audio += len(chunk.audio)
        assert abs(chunk.frames[-1].rgb.mean() - level(chunk.frames[-1].index)) < 4

    assert len(in_chunk) == 12 and max(in_chunk) <= 25 + 1 and sum(in_chunk) == 300
    # The decoder reads a quarter chunk ahead to see whether the file ends there, and no further.
    assert max(alive) <= 25 + 7 + 1
    assert n_audio == pytest.approx(seconds * SR, abs=0.05 * SR)


def test_truncated_video_gives_the_chunks_decoded(seven_s: dict[str, Path], workdir: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    data = seven_s["mkv"].read_bytes()
    cut = workdir / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    intact = list(iter_media(seven_s["mkv"], frame_interval_s=0.5, chunk_s=2))

    with caplog.at_level(logging.WARNING, logger="watchkeeper.media"):
        chunks = list(iter_media(cut, frame_interval_s=0.5, chunk_s=2))

    assert 1 <= len(chunks) < len(intact) and chunks[-1].info.chunk_end_s < SECONDS - 1
    assert frame_keys(chunks[:-1]) == frame_keys(intact[: len(chunks) - 1])
    assert any("cut.mkv" in r.getMessage() and "truncated" in r.getMessage() for r in caplog.records)
    assert_chunks_match_whole(chunks, load_media(cut, frame_interval_s=0.5))

    # Nothing decodable (the MP4 index is at the end): the error comes from the first next().
    half = workdir / "half.mp4"
    half.write_bytes(seven_s["mp4"].read_bytes()[: seven_s["mp4"].stat().st_size // 2])
    chunks_of_half = iter_media(half, chunk_s=2)
    with pytest.raises(CorruptMediaError, match="half.mp4"):
        next(chunks_of_half)


def test_images_and_audio_are_one_media(workdir: Path) -> None:
    image = workdir / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(image)
    [media] = iter_media(image, chunk_s=1)
    assert media.info == load_media(image).info and np.array_equal(media.frames[0].rgb, skimage.data.astronaut())
    assert (media.t_start_s, media.t_end_s) == (0.0, 0.0)

    wav = write_audio(workdir / "three.wav", tone(440, 3.0))
    [sound] = iter_media(wav, chunk_s=1)
    assert sound.info == load_media(wav).info and sound.info.chunk_end_s is None
    assert np.array_equal(sound.audio, load_media(wav).audio) and sound.t_end_s == sound.duration_s > 2.9


def test_arguments_are_checked_at_the_call(seven_s: dict[str, Path]) -> None:
    for bad in (0, -1.0, math.nan):
        with pytest.raises(MediaError, match="chunk_s"):
            iter_media(seven_s["mp4"], chunk_s=bad)
    # Stopping early closes the file without complaint.
    chunks = iter_media(seven_s["mp4"], chunk_s=2)
    assert next(chunks).info.chunk_index == 0
    chunks.close()
