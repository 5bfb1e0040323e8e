"""Test media: the package's sample generators, under the name the tests import, and real recorded sounds."""

import struct
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from watchkeeper.samples import SR, noise, speak, still_room, tone, write_audio, write_video

__all__ = ["SR", "doom_sound", "noise", "speak", "still_room", "tone", "write_audio", "write_video"]

# Debian's freedoom package (installed by scripts/system-deps.sh): real recorded sound effects in a WAD file.
FREEDOOM_WAD = Path("/usr/share/games/doom/freedoom2.wad")


def doom_sound(lump: str, wad: Path = FREEDOOM_WAD) -> np.ndarray:
    """A sound effect of the WAD (``DSPISTOL``: a pistol shot, ``DSBAREXP``: a blast...) as 16 kHz float32.

    A WAD is a 12-byte header (kind, lump count, directory offset) and a directory of 16-byte entries (offset,
    size, 8-byte name); a sound lump is format 3, its rate, its sample count, then unsigned 8-bit PCM padded
    with 16 samples at each end.
    """
    if not wad.is_file():
        pytest.skip(f"{wad} is missing: run scripts/system-deps.sh (Debian package freedoom)")
    data = wad.read_bytes()
    _, count, directory = struct.unpack_from("<4sii", data, 0)
    for n in range(count):
        offset, _, name = struct.unpack_from("<ii8s", data, directory + 16 * n)
        if name.rstrip(b"\0").decode() == lump:
            _, rate, samples = struct.unpack_from("<HHI", data, offset)
            pcm = np.frombuffer(data, np.uint8, samples - 32, offset + 8 + 16).astype(np.float32) / 128.0 - 1.0
            return resample_poly(pcm, SR, rate).astype(np.float32)
    raise KeyError(f"no lump {lump} in {wad}")
