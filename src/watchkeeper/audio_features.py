"""YAMNet's log-mel front end, in numpy.

YAMNet was trained on log-mel patches computed one particular way; any other
front end (another mel formula, a power spectrum, another log offset) shifts
its scores. The constants below are that recipe: 16 kHz mono, a periodic Hann
window of 25 ms, a 10 ms hop, a 512-point FFT magnitude, 64 HTK mel bands
between 125 and 7500 Hz with triangles built in mel space and the DC bin
ignored, ``log(mel + 0.001)``, and 96-frame patches every 48 frames.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .domain import AUDIO_SAMPLE_RATE_HZ

WINDOW_SAMPLES = 400
HOP_SAMPLES = 160
FFT_SIZE = 512
MEL_BANDS = 64
MEL_LOW_HZ = 125.0
MEL_HIGH_HZ = 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96
PATCH_HOP_FRAMES = 48
PATCH_SECONDS = PATCH_FRAMES * HOP_SAMPLES / AUDIO_SAMPLE_RATE_HZ  # 0.96 s
PATCH_HOP_SECONDS = PATCH_HOP_FRAMES * HOP_SAMPLES / AUDIO_SAMPLE_RATE_HZ  # 0.48 s


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(hz / 700.0)


@lru_cache(maxsize=1)
def mel_matrix() -> np.ndarray:
    """(FFT_SIZE // 2 + 1, MEL_BANDS) weights from a magnitude spectrum to mel bands."""
    bins = FFT_SIZE // 2 + 1
    bin_mel = _hz_to_mel(np.linspace(0.0, AUDIO_SAMPLE_RATE_HZ / 2, bins))[1:, None]
    edges = np.linspace(_hz_to_mel(np.array(MEL_LOW_HZ)), _hz_to_mel(np.array(MEL_HIGH_HZ)), MEL_BANDS + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - lower) / (center - lower)
    falling = (upper - bin_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # The DC bin carries no mel weight.
    return np.vstack([np.zeros((1, MEL_BANDS)), weights]).astype(np.float32)


@lru_cache(maxsize=1)
def _periodic_hann() -> np.ndarray:
    n = np.arange(WINDOW_SAMPLES)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / WINDOW_SAMPLES)).astype(np.float32)


def pad_for_patches(audio: np.ndarray) -> np.ndarray:
    """Zero-pad so that every sample falls in a patch and at least one patch exists."""
    min_samples = (PATCH_FRAMES - 1) * HOP_SAMPLES + WINDOW_SAMPLES
    hop = PATCH_HOP_FRAMES * HOP_SAMPLES
    if len(audio) <= min_samples:
        target = min_samples
    else:
        target = min_samples + int(np.ceil((len(audio) - min_samples) / hop)) * hop
    return np.pad(audio, (0, target - len(audio)))


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(frames, MEL_BANDS) float32 log-mel spectrogram of 16 kHz mono samples (no padding)."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) < WINDOW_SAMPLES:
        return np.zeros((0, MEL_BANDS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(audio, WINDOW_SAMPLES)[::HOP_SAMPLES]
    magnitude = np.abs(np.fft.rfft(frames * _periodic_hann(), n=FFT_SIZE)).astype(np.float32)
    return np.log(magnitude @ mel_matrix() + LOG_OFFSET)


def log_mel_patches(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Patches (N, PATCH_FRAMES, MEL_BANDS) and their start times in seconds (N,)."""
    spectrogram = log_mel(pad_for_patches(np.asarray(audio, dtype=np.float32)))
    starts = np.arange(0, len(spectrogram) - PATCH_FRAMES + 1, PATCH_HOP_FRAMES)
    patches = np.stack([spectrogram[s:s + PATCH_FRAMES] for s in starts])
    return patches, starts * HOP_SAMPLES / AUDIO_SAMPLE_RATE_HZ
