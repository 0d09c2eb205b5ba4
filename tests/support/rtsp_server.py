"""A real RTSP server for tests: serves one MJPEG AVI file over RTSP on a loopback port.

Runs under Debian's system Python (``/usr/bin/python3``), which has the GStreamer RTSP server
bindings (``gir1.2-gst-rtsp-server-1.0``, ``python3-gi``; installed by ``scripts/system-deps.sh``);
the project venv's Python cannot import them. Each client gets the file from its first frame at
the file's own pace (the media pipeline syncs to the clock), like a live camera.

    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 --file clip.avi [--user u --password p]

Prints ``READY rtsp://127.0.0.1:<port>/cam`` on stdout once it accepts connections.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--file", required=True, help="AVI with MJPEG video")
    p.add_argument("--path", default="/cam")
    p.add_argument("--user", default=None)
    p.add_argument("--password", default=None)
    args = p.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = args.file.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(f'( filesrc location="{location}" ! avidemux ! jpegdec ! jpegenc quality=90 ! rtpjpegpay name=pay0 pt=26 )')
    factory.set_shared(False)  # every client starts at the first frame
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_role_from_structure(Gst.Structure.new_from_string(
            "viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))
        factory.set_permissions(perms)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
