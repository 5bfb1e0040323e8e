#!/usr/bin/env bash
# Debian packages the product, the demo and the tests use: espeak-ng (speech samples), sox, freedoom
# (recorded sound effects), Pango for PDF reports, Chromium, and GStreamer's RTSP server with the system
# Python's bindings (the live tests stream to the product over real RTSP).
set -euo pipefail
missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v sox >/dev/null || missing+=(sox)
[ -f /usr/share/games/doom/freedoom2.wad ] || missing+=(freedoom)  # real gunshot and blast sounds for the tests
# WeasyPrint's text layout (PDF reports), and headless Chromium (the tests render HTML reports and pages).
for lib in libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core; do
  dpkg -s "$lib" >/dev/null 2>&1 || missing+=("$lib")
done
command -v chromium >/dev/null || missing+=(chromium)
if ! /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" 2>/dev/null \
    || ! gst-inspect-1.0 h264parse >/dev/null 2>&1 || ! gst-inspect-1.0 rtpmp4gpay >/dev/null 2>&1; then
  missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools gstreamer1.0-plugins-base
            gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "please install: ${missing[*]} (apt-get install ${missing[*]})" >&2; exit 1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
