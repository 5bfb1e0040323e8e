"""Test media: the package's sample generators, under the name the tests import."""

from watchkeeper.samples import SR, noise, speak, still_room, tone, write_audio, write_video

__all__ = ["SR", "noise", "speak", "still_room", "tone", "write_audio", "write_video"]
