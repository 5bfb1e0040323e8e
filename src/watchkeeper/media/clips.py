"""Cutting a time span out of an audio or video file without re-encoding it.

Packets are copied as they are, from the last keyframe at or before the
start to the end, so a clip keeps the source's quality and costs no decoding;
it may begin a little before the asked start (at that keyframe).
"""

from __future__ import annotations

from pathlib import Path

import av

from ..config import MediaSettings
from ..errors import CorruptMediaError, EmptyMediaError
from .avtools import av_reason, declared_duration_s, open_container, start_time_s
from .sources import open_source


def cut_clip(source: Path, target: Path, t_start_s: float, t_end_s: float) -> Path:
    """Copy the packets of [t_start_s, t_end_s] (seconds from the media's start) into ``target``.

    The container format follows ``target``'s suffix; streams other than
    audio and video (subtitles, data) are left out.
    """
    if t_end_s <= t_start_s:
        raise ValueError(f"empty span {t_start_s}..{t_end_s}")
    with open_source(source, MediaSettings()) as src, open_container(src) as container:
        streams = [s for s in container.streams if s.type in ("audio", "video")]
        if not streams:
            raise EmptyMediaError(f"{source.name}: no audio or video stream to cut")
        origin = start_time_s(container)
        durations = [d for s in streams if (d := declared_duration_s(container, s)) is not None]
        if durations and t_start_s >= (duration_s := max(durations)):
            raise EmptyMediaError(f"{source.name}: the span {t_start_s:g}-{t_end_s:g} s starts after its end "
                                  f"({duration_s:.2f} s)")
        # Seeking lands on a keyframe at or before the start, of the video stream where there is one.
        anchor = next((s for s in streams if s.type == "video"), streams[0])
        container.seek(int((origin + max(0.0, t_start_s)) / anchor.time_base), stream=anchor, backward=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        copied = 0
        try:
            with av.open(str(target), "w") as output:
                mapping = {s.index: output.add_stream_from_template(s) for s in streams}
                finished: set[int] = set()
                for packet in container.demux(streams):
                    if packet.dts is None or packet.pts is None:
                        continue  # flush packets carry nothing
                    if packet.pts * packet.time_base - origin > t_end_s:
                        finished.add(packet.stream.index)
                        if len(finished) == len(streams):
                            break
                        continue
                    packet.stream = mapping[packet.stream.index]
                    output.mux(packet)
                    copied += 1
        except av.FFmpegError as exc:
            target.unlink(missing_ok=True)
            raise CorruptMediaError(f"{source.name}: cannot cut {t_start_s:g}-{t_end_s:g} s ({av_reason(exc)})") from None
    if not copied:
        target.unlink(missing_ok=True)
        raise EmptyMediaError(f"{source.name}: nothing between {t_start_s:g} s and {t_end_s:g} s")
    return target
