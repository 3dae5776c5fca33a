#!/usr/bin/python3
"""RTSP test server: replays Annex B clips forever, one shared live stream per mount.

Usage:
    /usr/bin/python3 rtsp_server.py --port PORT [--address 127.0.0.1] [--fps 10] \
        --mount NAME=/path/clip.h264 [--mount NAME2=/path/clip.h265 ...]

Each mount `/NAME` serves its file (codec from the extension: .h264/.264 or .h265/.hevc/.265).
The file is parsed once into access units; an `appsrc` pushes them in a loop with monotonically
increasing timestamps at `--fps`, so the stream looks like a camera that never stops (RTP
timestamps and sequence numbers run on across the loop). The clip must repeat its parameter
sets before every key frame (scripts/make-test-clips makes them so).

The media of a mount is shared: it starts with the first client, every later client joins the
running stream (and should wait for a key frame, at most one GOP), and when the last client is
gone it is torn down; the next client starts a fresh one.

Logs one stderr line when an RTSP session starts playing a mount and one when it ends, for
tests that count a mount's clients:
    rtsp_server: session-open /NAME SESSION_ID
    rtsp_server: session-close /NAME SESSION_ID
A session opens at its first successful PLAY and closes, once, at whichever comes first: its
TEARDOWN, the end of its client's RTSP connection (a client killed without TEARDOWN included),
or its removal from the session pool (a timeout).

Prints `READY <port>` on stdout once listening (with `--port 0` the kernel picks the port).
Exits with status 0 on SIGTERM or SIGINT, and with `--exit-on-stdin-eof` also when its stdin is
closed (a parent that holds the pipe and dies, even by SIGKILL, takes the server with it).
Logs go to stderr.

Run with Debian's /usr/bin/python3: it needs python3-gi, gir1.2-gst-rtsp-server-1.0 and the
GStreamer base/good/bad plugins (h264parse and h265parse are in bad).
"""

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtspServer  # noqa: E402,F401

CODEC_BY_EXT = {
    ".h264": "h264",
    ".264": "h264",
    ".h265": "h265",
    ".265": "h265",
    ".hevc": "h265",
}


def log(msg):
    # Unbuffered, and never raising: when the parent dies its end of our stderr pipe goes with
    # it, and a failing log line must not stop the shutdown that follows.
    try:
        os.write(2, f"rtsp_server: {msg}\n".encode())
    except OSError:
        pass


def split_nals(data):
    """Yields each NAL unit (without its start code) of an Annex B byte string."""
    n = len(data)
    pos = data.find(b"\x00\x00\x01")
    while pos != -1:
        start = pos + 3
        nxt = data.find(b"\x00\x00\x01", start)
        end = n if nxt == -1 else nxt
        # A 4-byte start code (or trailing_zero_8bits) leaves zero bytes before the next one.
        nal_end = end
        while nal_end > start and data[nal_end - 1] == 0:
            nal_end -= 1
        if nal_end > start:
            yield data[start:nal_end]
        pos = nxt


def classify_h264(nal):
    """Returns (is_vcl, starts_picture, starts_au_if_after_vcl, is_key)."""
    t = nal[0] & 0x1F
    if t in (1, 5):
        # first_mb_in_slice is ue(v); it is 0 exactly when its first bit is 1.
        first = len(nal) > 1 and (nal[1] & 0x80) != 0
        return True, first, False, t == 5
    # SEI, SPS, PPS, AUD, prefix NAL, subset SPS, reserved 16-18 open a new access unit.
    return False, False, t in (6, 7, 8, 9, 13, 14, 15, 16, 17, 18), False


def classify_h265(nal):
    t = (nal[0] >> 1) & 0x3F
    if t <= 31:
        first = len(nal) > 2 and (nal[2] & 0x80) != 0
        return True, first, False, 16 <= t <= 23
    # VPS, SPS, PPS, AUD, prefix SEI, reserved 41-44 and 48-55 open a new access unit; a suffix
    # SEI (40), filler (38) or end of sequence/bitstream (36, 37) belong to the current one.
    return False, False, t in (32, 33, 34, 35, 39) or 41 <= t <= 44 or 48 <= t <= 55, False


def parse_access_units(path, codec):
    """Returns a list of (GLib.Bytes in Annex B with 4-byte start codes, is_key)."""
    with open(path, "rb") as f:
        data = f.read()
    classify = classify_h264 if codec == "h264" else classify_h265
    aus = []
    cur = []
    cur_has_vcl = False
    cur_key = False

    def flush():
        if cur and cur_has_vcl:
            payload = b"".join(b"\x00\x00\x00\x01" + nal for nal in cur)
            aus.append((GLib.Bytes.new(payload), cur_key))

    for nal in split_nals(data):
        is_vcl, starts_pic, opens_au, is_key = classify(nal)
        if cur_has_vcl and ((is_vcl and starts_pic) or opens_au):
            flush()
            cur, cur_has_vcl, cur_key = [], False, False
        cur.append(nal)
        if is_vcl:
            cur_has_vcl = True
            cur_key = cur_key or is_key
    flush()
    if not aus:
        raise ValueError(f"{path}: no {codec} pictures found (not an Annex B stream?)")
    if not aus[0][1]:
        raise ValueError(f"{path}: does not start with a key frame")
    return aus


class ReplayFactory(GstRtspServer.RTSPMediaFactory):
    """One shared media per mount, fed by an appsrc that loops over the access units."""

    def __init__(self, name, codec, aus, fps):
        super().__init__()
        self.name = name
        self.aus = aus
        self.frame_ns = Gst.SECOND // fps
        caps = (
            f"video/x-{codec},stream-format=byte-stream,alignment=au,framerate={fps}/1"
        )
        self.set_launch(
            f"( appsrc name=src format=time is-live=true do-timestamp=false max-buffers=1 caps={caps} "
            f"! {codec}parse config-interval=-1 ! rtp{codec}pay config-interval=0 pt=96 name=pay0 )"
        )
        self.set_shared(True)
        # Not RTSPSuspendMode.RESET (restart the pipeline at the first PLAY): with it, clients
        # that DESCRIBE while the first one is between DESCRIBE and PLAY get 503.
        self.connect("media-configure", self.on_media_configure)

    def on_media_configure(self, _factory, media):
        src = media.get_element().get_by_name("src")
        # State of one run of the shared media; a later media (after all clients left) starts
        # afresh. max-buffers=1 on the appsrc keeps it from stamping a backlog ahead of time:
        # need-data comes only when the frame before has gone downstream.
        state = {"n": 0, "base": None, "base_time": None}
        aus = self.aus
        frame_ns = self.frame_ns
        name = self.name

        def running_time(appsrc):
            clock = appsrc.get_clock()
            if clock is None:
                return None
            return max(0, clock.get_time() - appsrc.get_base_time())

        def on_need_data(appsrc, _length):
            if appsrc.get_base_time() != state["base_time"]:
                # The pipeline (re)started: from the clip's start.
                state.update(n=0, base=None, base_time=appsrc.get_base_time())
            now = running_time(appsrc)
            n = state["n"]
            if state["base"] is None:
                # Live source: stamp the first frame with the pipeline's running time so it is
                # not late, whenever the pipeline went to PLAYING.
                state["base"] = now or 0
                log(f"/{name}: pipeline playing from the clip's start")
            pts = state["base"] + n * frame_ns
            if now is not None and pts + frame_ns < now:
                # Late by more than a frame: the pipeline was held. gst-rtsp-server prerolls a
                # live media at the first DESCRIBE (frame 0 goes through, then the stream is
                # blocked until PLAY), or the host stalled. Sending the backlog at once would be
                # a burst no camera makes (UDP clients lose it): jump ahead like a camera's
                # clock. A first client slow to PLAY thus sees a timestamp gap after frame 0.
                log(f"/{name}: frame {n} late by {(now - pts) / Gst.MSECOND:.0f} ms: re-anchoring")
                state["base"] += now - pts
                pts = now
            payload, is_key = aus[n % len(aus)]
            buf = Gst.Buffer.new_wrapped_bytes(payload)
            buf.pts = pts
            buf.dts = pts
            buf.duration = frame_ns
            if not is_key:
                buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
            state["n"] = n + 1
            appsrc.push_buffer(buf)

        src.connect("need-data", on_need_data)
        media.connect("unprepared", lambda _m: log(f"/{name}: stream stopped"))


class SessionLog:
    """Logs `session-open` / `session-close` lines, each session's once (see the module doc)."""

    def __init__(self, mount_names):
        self.mount_names = mount_names
        # Session id -> mount name, of the sessions playing now.
        self.open = {}

    def mount_of(self, path):
        """The mount a request path belongs to: `/cam`, `/cam/` (ffmpeg sends the content base)
        and `/cam/stream=0` (a stream's control URL) all belong to `cam`."""
        path = path.strip("/")
        best = None
        for name in self.mount_names:
            if path == name or path.startswith(name + "/"):
                if best is None or len(name) > len(best):
                    best = name
        return best

    def opened(self, session_id, path):
        if session_id in self.open:
            return
        name = self.mount_of(path)
        if name is None:
            return
        self.open[session_id] = name
        log(f"session-open /{name} {session_id}")

    def closed(self, session_id):
        name = self.open.pop(session_id, None)
        if name is not None:
            log(f"session-close /{name} {session_id}")

    def attach(self, server):
        server.connect("client-connected", self.on_client_connected)
        server.get_session_pool().connect(
            "session-removed", lambda _pool, session: self.closed(session.get_sessionid())
        )

    def on_client_connected(self, _server, client):
        # The sessions this client's connection played: all end with it.
        mine = set()

        def on_play(_client, ctx):
            if ctx.session is None or ctx.uri is None:
                return
            session_id = ctx.session.get_sessionid()
            mine.add(session_id)
            self.opened(session_id, ctx.uri.abspath)

        def on_teardown(_client, ctx):
            if ctx.session is not None:
                session_id = ctx.session.get_sessionid()
                mine.discard(session_id)
                self.closed(session_id)

        def on_closed(_client):
            for session_id in sorted(mine):
                self.closed(session_id)
            mine.clear()

        client.connect("play-request", on_play)
        client.connect("teardown-request", on_teardown)
        client.connect("closed", on_closed)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True, help="TCP port; 0 lets the kernel pick")
    p.add_argument("--address", default="127.0.0.1", help="listen address")
    p.add_argument("--fps", type=int, default=10, help="frame rate of the clips")
    p.add_argument(
        "--mount",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="serve FILE at rtsp://ADDRESS:PORT/NAME (repeatable)",
    )
    p.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="exit when stdin reaches end of file (the parent process is gone)",
    )
    args = p.parse_args(argv)
    if not args.mount:
        p.error("at least one --mount is required")
    if args.fps <= 0:
        p.error("--fps must be positive")
    mounts = []
    for m in args.mount:
        name, sep, path = m.partition("=")
        name = name.strip("/")
        if not sep or not name or not path:
            p.error(f"--mount {m!r}: expected NAME=FILE")
        codec = CODEC_BY_EXT.get(os.path.splitext(path)[1].lower())
        if codec is None:
            p.error(f"--mount {m!r}: unknown extension (use .h264 or .h265)")
        mounts.append((name, path, codec))
    return args, mounts


def bind_error(args):
    """Why the server could not listen: bind the same way (SO_REUSEADDR, as GLib does) to ask."""
    import socket

    try:
        family = socket.AF_INET6 if ":" in args.address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((args.address, args.port))
    except OSError as e:
        return e.strerror
    return "unknown reason"


def main(argv):
    args, mounts = parse_args(argv)
    Gst.init(None)
    loop = GLib.MainLoop()

    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    mount_points = server.get_mount_points()
    for name, path, codec in mounts:
        try:
            aus = parse_access_units(path, codec)
        except (OSError, ValueError) as e:
            log(f"error: mount /{name}: {e}")
            return 1
        keys = sum(1 for _, k in aus if k)
        log(f"/{name}: {path} ({codec}, {len(aus)} frames, {keys} key frames)")
        mount_points.add_factory(f"/{name}", ReplayFactory(name, codec, aus, args.fps))

    SessionLog([name for name, _, _ in mounts]).attach(server)

    # attach() logs the reason (e.g. address in use) as a GStreamer warning and returns 0.
    if server.attach(None) == 0:
        log(f"error: cannot listen on {args.address}:{args.port}: {bind_error(args)}")
        return 1
    port = server.get_bound_port()
    if port <= 0:
        log(f"error: cannot listen on {args.address}:{args.port}")
        return 1

    def quit_loop():
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, quit_loop)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, quit_loop)

    if args.exit_on_stdin_eof:

        def on_stdin(fd, _cond):
            try:
                if os.read(fd, 4096):
                    return GLib.SOURCE_CONTINUE
            except OSError:
                pass
            loop.quit()
            log("stdin closed: parent gone")
            return GLib.SOURCE_REMOVE

        GLib.unix_fd_add_full(
            GLib.PRIORITY_DEFAULT,
            sys.stdin.fileno(),
            GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
            on_stdin,
        )

    print(f"READY {port}", flush=True)
    loop.run()
    log("shutting down")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
