"""The media layer on real files: images, audio and video written here, served over real HTTP."""

from __future__ import annotations

import hashlib
import io
import logging
import math
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import matplotlib.cbook
import numpy as np
import pytest
import skimage.data
from PIL import Image

from mediagen import tone, write_audio, write_video
from watchkeeper.config import MediaSettings
from watchkeeper.errors import (
    CorruptMediaError,
    EmptyMediaError,
    MediaError,
    MediaFetchError,
    MediaTooLargeError,
    UnsupportedMediaError,
)
from watchkeeper.media import detect_media_type, load_media

SR = 16_000
FPS, SECONDS, WIDTH, HEIGHT = 15, 4, 320, 240
VIDEO_CODECS = {"mp4": "libx264", "mkv": "libx264", "avi": "mpeg4", "mov": "libx264", "webm": "libvpx-vp9"}


def spectral_peak_hz(samples: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * sr / len(samples))


def background_level(index: int) -> int:
    """The grey level of video frame ``index``: a ramp, so a frame's content tells its number."""
    return 40 + 3 * index


def ramp_frames() -> list[np.ndarray]:
    frames = []
    for index in range(FPS * SECONDS):
        frame = np.full((HEIGHT, WIDTH, 3), background_level(index), np.uint8)
        frame[40:100, 40:100] = (220, 30, 30)  # a red square shows the channel order
        frames.append(frame)
    return frames


def reference_picks(times: list[float], interval_s: float) -> list[int]:
    """Indices of the first frame at or after each multiple of the interval, by brute force."""
    picks: list[int] = []
    for k in range(math.floor(times[-1] / interval_s + 1e-6) + 1):
        index = next(i for i, t in enumerate(times) if t >= k * interval_s - 1e-6)
        if index not in picks:
            picks.append(index)
    return picks


def write_stereo_tone(path: Path, codec: str, rate: int, *, freq_hz: float = 440.0, seconds: float = 2.0) -> Path:
    """A tone in both channels of a stereo file at ``rate``."""
    wave = tone(freq_hz, seconds, sr=rate)
    return write_audio(path, np.stack([wave, wave]), sr=rate, codec=codec)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def videos(workdir: Path) -> dict[str, Path]:
    frames = ramp_frames()
    audio = tone(440, SECONDS)
    return {
        ext: write_video(workdir / f"ramp.{ext}", frames, fps=FPS, audio=audio, codec=codec)
        for ext, codec in VIDEO_CODECS.items()
    }


@pytest.fixture(scope="module")
def silent_video(workdir: Path) -> Path:
    return write_video(workdir / "silent.mp4", ramp_frames()[:FPS], fps=FPS)


@pytest.fixture(scope="module")
def astronaut_jpeg(workdir: Path) -> Path:
    path = workdir / "astronaut.jpg"
    Image.fromarray(skimage.data.astronaut()).save(path, quality=95)
    return path


# ---------------------------------------------------------------- images


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "bmp", "gif"])
def test_image_formats(workdir: Path, fmt: str) -> None:
    original = skimage.data.astronaut()
    path = workdir / f"astronaut-{fmt}.{fmt}"
    Image.fromarray(original).save(path, format=fmt.upper(), **({"quality": 95} if fmt in ("jpeg", "webp") else {}))

    media = load_media(path)

    assert media.info.media_type == "image" and media.info.format == fmt
    assert (media.info.width, media.info.height, media.info.frames_sampled) == (512, 512, 1)
    [frame] = media.frames
    assert frame.rgb.shape == (512, 512, 3) and frame.rgb.dtype == np.uint8
    # Lossless formats round-trip exactly; GIF's palette and the lossy ones stay close.
    error = np.abs(frame.rgb.astype(int) - original).mean()
    assert error == 0 if fmt in ("png", "bmp") else error < 12
    assert media.info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert media.info.size_bytes == path.stat().st_size


def test_sample_photo_and_greyscale(workdir: Path) -> None:
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as sample:
        hopper = load_media(Path(sample.name))
    assert hopper.frames[0].rgb.shape == (600, 512, 3)

    path = workdir / "camera.png"
    Image.fromarray(skimage.data.camera()).save(path)
    rgb = load_media(path).frames[0].rgb
    assert rgb.shape == (512, 512, 3)
    assert np.array_equal(rgb[..., 0], skimage.data.camera()) and np.array_equal(rgb[..., 0], rgb[..., 2])


def test_exif_orientation_is_applied(workdir: Path) -> None:
    original = skimage.data.chelsea()  # 300 x 451, landscape
    image = Image.fromarray(original)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = workdir / "rotated.jpg"
    image.save(path, exif=exif, quality=95)

    rgb = load_media(path).frames[0].rgb

    assert rgb.shape == (451, 300, 3)
    clockwise = np.rot90(original, k=-1).astype(int)
    assert np.abs(rgb - clockwise).mean() < 8 < np.abs(rgb - np.rot90(original, k=1)).mean()


def test_gif_first_frame_and_transparency_on_white(workdir: Path) -> None:
    red, blue = Image.new("RGB", (64, 48), (255, 0, 0)), Image.new("RGB", (64, 48), (0, 0, 255))
    gif = workdir / "anim.gif"
    red.save(gif, save_all=True, append_images=[blue], duration=100)
    assert tuple(load_media(gif).frames[0].rgb[10, 10]) == (255, 0, 0)

    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:16] = (0, 128, 0, 255)  # opaque green top, fully transparent bottom
    png = workdir / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(png)
    rgb = load_media(png).frames[0].rgb
    assert tuple(rgb[0, 0]) == (0, 128, 0) and tuple(rgb[-1, -1]) == (255, 255, 255)


# ---------------------------------------------------------------- audio


@pytest.mark.parametrize(
    ("name", "codec", "rate", "fmt"),
    [
        ("tone.wav", "pcm_s16le", 44_100, "wav"),
        ("tone.mp3", "libmp3lame", 44_100, "mp3"),
        ("tone.flac", "flac", 44_100, "flac"),
        ("vorbis.ogg", "vorbis", 44_100, "ogg"),
        ("opus.ogg", "libopus", 48_000, "ogg"),
        ("tone.m4a", "aac", 44_100, "m4a"),
    ],
)
def test_audio_formats_resampled_to_16k_mono(workdir: Path, name: str, codec: str, rate: int, fmt: str) -> None:
    path = write_stereo_tone(workdir / name, codec, rate)

    media = load_media(path)

    assert media.info.media_type == "audio" and media.info.format == fmt
    assert media.audio is not None and media.audio.dtype == np.float32 and media.audio.ndim == 1
    assert media.info.duration_s == pytest.approx(2.0, abs=0.1)
    assert len(media.audio) == pytest.approx(2.0 * SR, abs=0.1 * SR)
    assert (media.info.audio_sample_rate_hz, media.info.audio_channels) == (rate, 2)
    assert spectral_peak_hz(media.audio) == pytest.approx(440.0, abs=2.0)
    assert 0.15 < np.abs(media.audio).max() < 0.5  # the 0.3 tone, neither lost nor clipped
    assert media.frames == [] and media.motion is None


def test_audio_of_a_video_on_request(videos: dict[str, Path]) -> None:
    media = load_media(videos["mp4"], "audio")
    assert media.info.media_type == "audio" and media.frames == []
    assert spectral_peak_hz(media.audio) == pytest.approx(440.0, abs=2.0)


# ---------------------------------------------------------------- video


@pytest.mark.parametrize("ext", list(VIDEO_CODECS))
def test_video_containers(videos: dict[str, Path], ext: str) -> None:
    path = videos[ext]
    with av.open(str(path)) as container:
        times = [frame.time for frame in container.decode(video=0)]

    for interval_s in (1.0, 0.5):
        media = load_media(path, frame_interval_s=interval_s)
        expected = reference_picks(times, interval_s)
        assert [f.index for f in media.frames] == expected
        assert [f.t_s for f in media.frames] == pytest.approx([times[i] for i in expected])
        assert media.info.frames_sampled == len(expected) and media.info.frame_interval_s == interval_s
        for frame in media.frames:  # the pixels are those of the frame the index names
            assert frame.rgb.shape == (HEIGHT, WIDTH, 3)
            assert abs(frame.rgb[150:, 150:].mean() - background_level(frame.index)) < 4
            red, green, blue = frame.rgb[70, 70].astype(int)
            assert red > 180 and green < 80 and blue < 80

    info = media.info
    assert (info.media_type, info.format, info.width, info.height) == ("video", ext, WIDTH, HEIGHT)
    assert info.fps == pytest.approx(FPS) and info.duration_s == pytest.approx(SECONDS, abs=0.15)
    assert info.video_codec == {"libx264": "h264", "mpeg4": "mpeg4", "libvpx-vp9": "vp9"}[VIDEO_CODECS[ext]]
    assert info.has_audio and info.audio_codec == ("opus" if ext == "webm" else "aac")
    assert info.audio_channels == 1

    motion = media.motion
    assert motion is not None and motion.fps == 8.0
    assert motion.gray.dtype == np.uint8 and motion.gray.shape[1:] == (120, 160)
    motion_picks = reference_picks(times, 1 / 8)
    assert len(motion.gray) == len(motion.times_s) == len(motion_picks)
    assert motion.times_s == pytest.approx([times[i] for i in motion_picks])
    # Greyscale straight from the decoder: the ramp's level, full range.
    assert abs(motion.gray[-1][60:, 60:].mean() - background_level(motion_picks[-1])) < 4

    assert media.audio is not None and media.audio.dtype == np.float32
    assert len(media.audio) / SR == pytest.approx(SECONDS, abs=0.15)
    assert spectral_peak_hz(media.audio) == pytest.approx(440.0, abs=2.0)


def test_exact_sampling_times_in_mp4(videos: dict[str, Path]) -> None:
    media = load_media(videos["mp4"], settings=MediaSettings(frame_interval_s=0.5))
    assert [f.index for f in media.frames] == [0, 8, 15, 23, 30, 38, 45, 53]
    assert [round(f.t_s, 3) for f in media.frames] == [0.0, 0.533, 1.0, 1.533, 2.0, 2.533, 3.0, 3.533]


def test_video_limits_and_caps(videos: dict[str, Path], silent_video: Path) -> None:
    capped = load_media(videos["mp4"], settings=MediaSettings(max_frames=2), frame_interval_s=0.5)
    assert [f.index for f in capped.frames] == [0, 8]
    assert len(capped.motion.gray) == 32  # the cap is on sampled frames; motion still covers the video

    silent = load_media(silent_video)
    assert not silent.info.has_audio and silent.audio is None and silent.info.audio_codec is None

    with pytest.raises(MediaTooLargeError, match="max_video_pixels"):
        load_media(videos["mkv"], settings=MediaSettings(max_video_pixels=320 * 200))
    with pytest.raises(MediaTooLargeError, match=r"ramp.mp4: lasts 4.00 s.*max_duration_s"):
        load_media(videos["mp4"], settings=MediaSettings(max_duration_s=2.0))
    # A stream written without seeking declares no duration: the limit applies while decoding.
    with pytest.raises(MediaTooLargeError, match=r"live.mkv: decoding passed 2.\d\d s"):
        load_media(_remux_unseekable(videos["mp4"]), name="live.mkv", settings=MediaSettings(max_duration_s=2.0))


class _UnseekableSink(io.RawIOBase):
    """A write-only stream, like a pipe: muxers cannot go back to fill in the duration."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)


def _remux_video(path: Path, target: str | io.RawIOBase, **open_options: object) -> None:
    """Copy the video packets of ``path`` into another container without re-encoding."""
    with av.open(str(path)) as source, av.open(target, "w", **open_options) as output:
        stream = output.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:  # the demuxer's end-of-stream marker
                packet.stream = stream
                output.mux(packet)


def _remux_unseekable(path: Path) -> bytes:
    sink = _UnseekableSink()
    _remux_video(path, sink, format="matroska")
    with av.open(io.BytesIO(bytes(sink.data))) as check:
        assert check.duration is None  # the premise of the test
    return bytes(sink.data)


def test_detect_media_type(videos: dict[str, Path], workdir: Path, astronaut_jpeg: Path) -> None:
    assert detect_media_type(videos["webm"]) == ("video", "webm")
    assert detect_media_type(astronaut_jpeg) == ("image", "jpeg")
    assert detect_media_type(astronaut_jpeg.read_bytes()) == ("image", "jpeg")
    # An MP4 holding only sound is audio; a .dat name does not hide a WAV.
    audio_mp4 = write_audio(workdir / "sound.mp4", tone(440, 1.0), codec="aac")
    assert detect_media_type(audio_mp4) == ("audio", "mp4")
    wav = write_audio(workdir / "sound.wav", tone(440, 1.0))
    disguised = workdir / "sound.dat"
    disguised.write_bytes(wav.read_bytes())
    assert detect_media_type(disguised) == ("audio", "wav")


# ---------------------------------------------------------------- sources


def test_bytes_input_matches_path_input(videos: dict[str, Path], astronaut_jpeg: Path) -> None:
    from_path = load_media(videos["mp4"])
    from_bytes = load_media(videos["mp4"].read_bytes(), name="upload.mp4")
    assert from_bytes.info.source == "upload.mp4"
    assert from_bytes.info.sha256 == from_path.info.sha256
    assert [f.index for f in from_bytes.frames] == [f.index for f in from_path.frames]
    assert np.array_equal(from_bytes.frames[-1].rgb, from_path.frames[-1].rgb)
    assert np.array_equal(from_bytes.audio, from_path.audio)

    image = load_media(astronaut_jpeg.read_bytes())
    assert image.info.source == "<bytes>" and image.frames[0].rgb.shape == (512, 512, 3)


class _Handler(SimpleHTTPRequestHandler):
    """Files from a folder, plus /endless: bytes without a Content-Length until the client leaves."""

    def do_GET(self) -> None:
        if self.path != "/endless":
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        try:
            for _ in range(1000):
                self.wfile.write(b"\xff\xd8\xff" + bytes(65_533))
        except OSError:
            pass  # the client hung up, as it should

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_root(astronaut_jpeg: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(astronaut_jpeg.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def http_base(http_root: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    return http_root


def test_url_download(http_base: str, astronaut_jpeg: Path) -> None:
    url = f"{http_base}/{astronaut_jpeg.name}"
    media = load_media(url)
    assert media.info.source == url and media.info.format == "jpeg"
    assert media.info.sha256 == load_media(astronaut_jpeg).info.sha256
    assert media.frames[0].rgb.shape == (512, 512, 3)


def test_url_errors(http_base: str, astronaut_jpeg: Path) -> None:
    with pytest.raises(MediaFetchError, match="HTTP 404"):
        load_media(f"{http_base}/missing.jpg")
    with pytest.raises(MediaTooLargeError, match="max_bytes"):  # refused on its Content-Length
        load_media(f"{http_base}/{astronaut_jpeg.name}", settings=MediaSettings(max_bytes=10_000))
    with pytest.raises(MediaTooLargeError, match="stopped reading"):  # no length given: cut off while reading
        load_media(f"{http_base}/endless", settings=MediaSettings(max_bytes=200_000))
    with pytest.raises(MediaFetchError, match="cannot reach"):
        load_media("http://127.0.0.1:1/nothing.jpg", settings=MediaSettings(url_timeout_s=2))


# ---------------------------------------------------------------- bad input


def test_corrupt_and_truncated_images(astronaut_jpeg: Path) -> None:
    data = astronaut_jpeg.read_bytes()
    with pytest.raises(CorruptMediaError, match="truncated"):
        load_media(data[: len(data) // 2], name="half.jpg")
    garbage = data[:600] + np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    with pytest.raises(CorruptMediaError, match="garbage.jpg"):
        load_media(garbage, name="garbage.jpg")


def test_decompression_bombs_refused_before_decoding(astronaut_jpeg: Path) -> None:
    bomb = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, "PNG")
    assert len(bomb.getvalue()) < 100_000  # tiny on disk, 400 megapixels in memory
    with pytest.raises(MediaTooLargeError, match="max_image_pixels"):
        load_media(bomb.getvalue(), name="bomb.png")

    # A header claiming 81 megapixels with the pixel data cut off: decoding first would say "truncated".
    header_only = io.BytesIO()
    Image.new("1", (9_000, 9_000)).save(header_only, "PNG", compress_level=1)
    with pytest.raises(MediaTooLargeError, match="9000x9000"):
        load_media(header_only.getvalue()[:200], name="claims-big.png")

    # Our own limit, below Pillow's.
    with pytest.raises(MediaTooLargeError, match="262,144 pixels"):
        load_media(astronaut_jpeg, settings=MediaSettings(max_image_pixels=100_000))


def test_truncated_videos(videos: dict[str, Path], workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    # PyAV writes the MP4 index at the end: cut in half, nothing is left to decode.
    half_mp4 = workdir / "half.mp4"
    half_mp4.write_bytes(videos["mp4"].read_bytes()[: videos["mp4"].stat().st_size // 2])
    with pytest.raises(CorruptMediaError, match="half.mp4"):
        load_media(half_mp4)

    # With the index first (what phones and web servers use) or in Matroska, the first half still decodes.
    faststart = workdir / "faststart.mp4"
    _remux_video(videos["mp4"], str(faststart), options={"movflags": "faststart"})
    for whole, cut_name in ((faststart, "half-faststart.mp4"), (videos["mkv"], "half.mkv")):
        data = whole.read_bytes()
        cut = workdir / cut_name
        cut.write_bytes(data[: len(data) // 2])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="watchkeeper.media"):
            media = load_media(cut)
        assert 0 < len(media.frames) < SECONDS
        assert media.info.duration_s < SECONDS - 1
        assert any(cut_name in r.getMessage() and "truncated" in r.getMessage() for r in caplog.records)
        for frame in media.frames:
            assert abs(frame.rgb[150:, 150:].mean() - background_level(frame.index)) < 4


def test_random_empty_and_unsupported_input(workdir: Path) -> None:
    noise = np.random.default_rng(7).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    with pytest.raises(UnsupportedMediaError, match="unrecognised format.*supported: images"):
        load_media(noise)
    named = workdir / "noise.mp4"
    named.write_bytes(noise)
    with pytest.raises(CorruptMediaError, match="noise.mp4"):
        load_media(named)

    empty = workdir / "empty.wav"
    empty.touch()
    with pytest.raises(EmptyMediaError, match="empty.wav"):
        load_media(empty)
    with pytest.raises(EmptyMediaError):
        load_media(b"")

    notes = workdir / "notes.txt"
    notes.write_text("Shift log: all quiet on the loading dock.\n")
    with pytest.raises(UnsupportedMediaError, match=r"notes.txt: a text file.*video \(mp4, mkv, avi, mov, webm\)"):
        load_media(notes)
    disguised = workdir / "notes.mp4"
    disguised.write_text("not a video at all")
    with pytest.raises(UnsupportedMediaError, match="text file"):
        load_media(disguised)

    with pytest.raises(MediaFetchError, match="no such file"):
        load_media(workdir / "missing.mp4")
    with pytest.raises(MediaTooLargeError, match="size limit"):
        load_media(notes, settings=MediaSettings(max_bytes=10))


def test_missing_streams_and_long_audio(workdir: Path, silent_video: Path) -> None:
    with pytest.raises(UnsupportedMediaError, match="no audio stream"):
        load_media(silent_video, "audio")
    wav = write_audio(workdir / "three-seconds.wav", tone(440, 3.0))
    with pytest.raises(UnsupportedMediaError, match="no video stream"):
        load_media(wav, "video")
    with pytest.raises(MediaTooLargeError, match=r"three-seconds.wav: lasts 3.00 s, over the duration limit of 1 s"):
        load_media(wav, settings=MediaSettings(max_duration_s=1.0))
    with pytest.raises(MediaError):
        load_media(wav, frame_interval_s=0)
