"""Real media for the tests, made on the spot: speech, tones, bursts, frames, videos."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SR = 16_000


def speak(text: str, path: Path, *, voice: str = "en-us", speed_wpm: int = 150) -> Path:
    """Speech from espeak-ng as a WAV file."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed; run `make setup`")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-w", str(path), text], check=True)
    return path


def tone(freq_hz: float, seconds: float, *, amplitude: float = 0.3, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def noise(seconds: float, *, amplitude: float = 0.05, sr: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal(int(seconds * sr))).astype(np.float32)


def _resample(samples: np.ndarray, sr: int, rate: int) -> np.ndarray:
    if rate == sr:
        return samples
    idx = np.linspace(0, len(samples) - 1, int(len(samples) * rate / sr))
    return np.interp(idx, np.arange(len(samples)), samples).astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, *, sr: int = SR, codec: str | None = None) -> Path:
    """Mono float samples to any container PyAV writes (wav, flac, mp3, ogg, m4a)."""
    fmt_codec = {".wav": "pcm_s16le", ".flac": "flac", ".mp3": "libmp3lame", ".ogg": "libopus",
                 ".m4a": "aac"}
    codec = codec or fmt_codec[path.suffix.lower()]
    with av.open(str(path), "w") as container:
        rate = 48_000 if codec == "libopus" else sr  # Opus encodes at 48 kHz only
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        samples = _resample(np.asarray(samples, np.float32), sr, rate)
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        chunk = 960 if codec == "libopus" else 1024
        for start in range(0, len(pcm) - chunk + 1, chunk):
            frame = av.AudioFrame.from_ndarray(pcm[None, start:start + chunk], format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_video(path: Path, frames: list[np.ndarray] | np.ndarray, *, fps: int = 15,
                audio: np.ndarray | None = None, sr: int = SR, codec: str = "libx264") -> Path:
    """RGB uint8 frames (and optional mono audio) to a video file."""
    frames = list(frames)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        vstream = container.add_stream(codec, rate=Fraction(fps))
        vstream.width, vstream.height = width, height
        vstream.pix_fmt = "yuv420p"
        astream = None
        if audio is not None:
            acodec = "libopus" if path.suffix == ".webm" else "aac"
            astream = container.add_stream(acodec, rate=48_000 if acodec == "libopus" else sr)
            astream.layout = "mono"
        for i, rgb in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            vf.pts = i
            for packet in vstream.encode(vf):
                container.mux(packet)
        for packet in vstream.encode(None):
            container.mux(packet)
        if astream is not None:
            rate = astream.rate
            audio = _resample(np.asarray(audio, np.float32), sr, rate)
            chunk = 960
            for start in range(0, len(audio) - chunk + 1, chunk):
                af = av.AudioFrame.from_ndarray(audio[None, start:start + chunk].astype(np.float32),
                                                format="flt", layout="mono")
                af.sample_rate = rate
                af.pts = start
                for packet in astream.encode(af):
                    container.mux(packet)
            for packet in astream.encode(None):
                container.mux(packet)
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
