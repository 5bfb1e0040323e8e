"""Test media: the package's sample generators, under the name the tests import, and real recorded sounds."""

import struct
from dataclasses import dataclass
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


# A real pistol in a real hand, cut from a camera frame of the weapon development set
# (AhmedMohsenElgarh/new-dataset-weapon, CC BY 4.0; see tests/data/README.md). The frame it came
# from was squeezed to 416x416 from 16:9, so it is widened back when pasted.
PISTOL_IN_HAND = Path(__file__).parent / "data" / "pistol_in_hand.png"
PISTOL_ASPECT = 27 * (16 / 9) / 29


@dataclass(frozen=True)
class ArmedPerson:
    """A person holding a pistol, cut from a camera frame with a margin and scaled so that the pistol is 2% of
    a 1280x720 frame's width (``tests/data``); ``twin``: the same cut with the pistol painted out. Boxes
    (x0, y0, x1, y1) within the cut."""

    cut: str
    person: tuple[float, float, float, float]
    pistol: tuple[float, float, float, float]
    twin: str | None = None


PISTOL_HELD_OUT = ArmedPerson("pistol_held_out_small.png", (15.4, 15.3, 132.7, 203.9), (112.2, 72.2, 137.8, 92.6),
                              twin="pistol_held_out_small_twin.png")
PISTOL_HELD_LOW = ArmedPerson("pistol_held_low_small.png", (18.5, 10.0, 102.7, 133.1), (10.0, 64.2, 35.6, 86.4))


def street_photo() -> np.ndarray:
    """scikit-learn's china.jpg at 1280x720, RGB."""
    import cv2
    from sklearn.datasets import load_sample_image

    return cv2.resize(load_sample_image("china.jpg"), (1280, 720), interpolation=cv2.INTER_CUBIC)


def street_with_armed_person(armed: ArmedPerson, *, twin: bool = False
                             ) -> tuple[np.ndarray, tuple[float, ...], tuple[float, ...]]:
    """The street photo with the armed person (or their twin) pasted in at (900, 300); returns the frame and
    the person's and the pistol's boxes in it."""
    import cv2

    frame = street_photo()
    name = armed.twin if twin else armed.cut
    assert name is not None, f"{armed.cut} has no twin"
    cut = cv2.cvtColor(cv2.imread(str(Path(__file__).parent / "data" / name)), cv2.COLOR_BGR2RGB)
    left, top = 900, 300
    frame[top:top + cut.shape[0], left:left + cut.shape[1]] = cut
    shift = np.array([left, top, left, top])
    return frame, tuple(np.array(armed.person) + shift), tuple(np.array(armed.pistol) + shift)


def street_scene(*, pistol_share: float | None = None) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...] | None]:
    """A 1280x720 photo (scikit-learn's china.jpg) with a photographed person (the astronaut) standing in it.

    With ``pistol_share``, the pistol crop is pasted at the person's side, at shoulder height, that share
    of the frame's width wide. Returns the frame and the person's and the pistol's boxes (x0, y0, x1, y1).
    """
    import cv2
    from skimage import data as skdata

    frame = street_photo()
    person = (480, 330, 780, 630)
    frame[person[1]:person[3], person[0]:person[2]] = cv2.resize(skdata.astronaut(), (300, 300),
                                                                  interpolation=cv2.INTER_AREA)
    if pistol_share is None:
        return frame, person, None
    width = round(1280 * pistol_share)
    height = round(width / PISTOL_ASPECT)
    pistol = cv2.cvtColor(cv2.imread(str(PISTOL_IN_HAND)), cv2.COLOR_BGR2RGB)
    x0, y0 = person[2] - 4, person[1] + 100
    frame[y0:y0 + height, x0:x0 + width] = cv2.resize(pistol, (width, height), interpolation=cv2.INTER_AREA)
    return frame, person, (x0, y0, x0 + width, y0 + height)
