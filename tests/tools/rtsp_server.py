"""A real RTSP server for the live tests: GStreamer's gst-rtsp-server serving an MP4 file (H.264 + AAC).

Runs under the system Python, which has PyGObject (Debian's python3-gi and
gir1.2-gst-rtsp-server-1.0; scripts/system-deps.sh installs them):

    /usr/bin/python3 tests/tools/rtsp_server.py --port 8554 --mount /cam --file clip.mp4

Each client gets the file from its start, played in real time; when it ends
the stream ends, as when a camera goes away. Prints "ready" once listening.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", default="/cam")
    parser.add_argument("--file", required=True)
    parser.add_argument("--no-audio", action="store_true")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    launch = (f"( filesrc location={args.file} ! qtdemux name=d "
              "d.video_0 ! queue ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96")
    if not args.no_audio:
        launch += " d.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97"
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch + " )")
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on port {args.port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
