"""Sample media made on the spot: speech, tones, noise, frames and videos.

The demo and the tests use these; ``write_audio``/``write_video`` encode
with PyAV, so no system ffmpeg is needed. Speech needs the espeak-ng program.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SR = 16_000


def speak(text: str, path: Path, *, voice: str = "en-us", speed_wpm: int = 150) -> Path:
    """Speech from espeak-ng as a WAV file."""
    if shutil.which("espeak-ng") is None:
        raise FileNotFoundError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-w", str(path), text], check=True)
    return path


def tone(freq_hz: float, seconds: float, *, amplitude: float = 0.3, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def noise(seconds: float, *, amplitude: float = 0.05, sr: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal(int(seconds * sr))).astype(np.float32)


def _audio_frames(samples: np.ndarray, sr: int) -> Iterator[av.AudioFrame]:
    """Float samples, (n,) or (channels, n), at ``sr`` as frames of 1024; PyAV converts to the codec's format."""
    planar = np.ascontiguousarray(np.atleast_2d(np.clip(samples, -1, 1)).astype(np.float32))
    layout = "mono" if planar.shape[0] == 1 else "stereo"
    for start in range(0, planar.shape[1], 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, start:start + 1024]), format="fltp",
                                           layout=layout)
        frame.sample_rate = sr
        frame.pts = start  # in samples: audio starts at 0 beside the video
        frame.time_base = Fraction(1, sr)
        yield frame


def _mux(container: av.container.OutputContainer, stream: av.stream.Stream, frame: av.frame.Frame | None) -> None:
    """Encode one frame (None flushes the encoder) and write its packets."""
    for packet in stream.encode(frame):
        container.mux(packet)


def mux_audio(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream,
              samples: np.ndarray, sr: int) -> None:
    """Encode and write all of ``samples`` (float, mono or stereo, at ``sr``) to ``stream``."""
    for frame in _audio_frames(samples, sr):
        _mux(container, stream, frame)
    _mux(container, stream, None)


AUDIO_CODECS = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".ogg": "libopus", ".opus": "libopus",
                ".m4a": "aac", ".aac": "aac"}


def write_audio(path: Path, samples: np.ndarray, *, sr: int = SR, codec: str | None = None) -> Path:
    """Float samples, mono (n,) or stereo (2, n), to any container PyAV writes (wav, flac, mp3, ogg, m4a)."""
    codec = codec or AUDIO_CODECS[path.suffix.lower()]
    channels = np.atleast_2d(samples).shape[0]
    with av.open(str(path), "w") as container:
        rate = 48_000 if codec == "libopus" else sr  # Opus encodes at 48 kHz only
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono" if channels == 1 else "stereo"
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}  # FFmpeg's own Vorbis encoder
        mux_audio(container, stream, samples, sr)
    return path


def write_video(path: Path, frames: Iterable[np.ndarray], *, fps: int = 15, audio: np.ndarray | None = None,
                sr: int = SR, codec: str = "libx264", sound_after_pictures: bool = False) -> Path:
    """RGB uint8 frames (any iterable, consumed lazily) and optional mono audio to a video file.

    The sound is written beside the pictures it goes with, as a camera's stream carries it, or with
    ``sound_after_pictures`` after all of them (files whose video runs far ahead of their audio exist).
    """
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    with av.open(str(path), "w") as container:
        vstream = container.add_stream(codec, rate=Fraction(fps))
        vstream.width, vstream.height = width, height
        vstream.pix_fmt = "yuv420p"
        astream = None
        sound: Iterator[av.AudioFrame] = iter(())
        if audio is not None:
            acodec = "libopus" if path.suffix == ".webm" else "aac"
            astream = container.add_stream(acodec, rate=48_000 if acodec == "libopus" else sr)
            astream.layout = "mono"
            sound = _audio_frames(audio, sr)
        pending = next(sound, None)
        for i, rgb in enumerate(itertools.chain([first], frames)):
            while pending is not None and not sound_after_pictures and pending.pts / sr < (i + 1) / fps:
                _mux(container, astream, pending)
                pending = next(sound, None)
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            vf.pts = i
            _mux(container, vstream, vf)
        _mux(container, vstream, None)
        while pending is not None:
            _mux(container, astream, pending)
            pending = next(sound, None)
        if astream is not None:
            _mux(container, astream, None)
    return path


def still_room(width: int = 320, height: int = 240, seed: int = 0) -> np.ndarray:
    """An empty, evenly lit room: a floor, a wall and a door, with a little sensor noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    img[: height * 2 // 3] = (180, 175, 165)
    img[height * 2 // 3:] = (110, 95, 80)
    img[height // 5: height * 2 // 3, width // 3: width // 3 + width // 8] = (120, 80, 50)
    noise_ = rng.integers(-3, 4, img.shape, dtype=np.int16)
    return np.clip(img.astype(np.int16) + noise_, 0, 255).astype(np.uint8)


def siren(seconds: float = 5.0, *, low_hz: float = 650.0, high_hz: float = 1500.0, period_s: float = 2.5,
          sr: int = SR) -> np.ndarray:
    """A wailing siren: a tone swept up and down between two pitches, with harmonics."""
    t = np.arange(int(seconds * sr)) / sr
    sweep = low_hz + (high_hz - low_hz) * 0.5 * (1 - np.cos(2 * np.pi * t / period_s))
    phase = 2 * np.pi * np.cumsum(sweep) / sr
    wave = np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.15 * np.sin(3 * phase)
    return (0.25 * wave / np.abs(wave).max()).astype(np.float32)


def make_demo_set(folder: Path) -> list[Path]:
    """Write a small, varied set of media to analyse: people, speech, a siren, a quiet room."""
    from skimage import data as skdata  # sample photos ship with scikit-image

    from .media import load_media

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    from PIL import Image

    for name in ("astronaut", "coffee"):
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(skdata, name)()).save(path, quality=90)
        paths.append(path)
    paths.append(write_audio(folder / "siren.flac", siren(6.0) + noise(6.0, amplitude=0.01)))
    paths.append(write_video(folder / "quiet_room.mp4", [still_room(640, 360, seed=i) for i in range(5 * 15)], fps=15,
                             audio=noise(5.0, amplitude=0.002)))
    if shutil.which("espeak-ng"):
        raw = folder / "help_raw.wav"
        speak("Help me! Somebody call the police, he has a gun!", raw, speed_wpm=140)
        voice = load_media(raw).audio
        padded = np.concatenate([np.zeros(SR // 2, np.float32), voice, np.zeros(SR, np.float32)])
        paths.append(write_audio(folder / "help_me.wav", padded + noise(len(padded) / SR, amplitude=0.005)))
        raw.unlink()
    return paths
