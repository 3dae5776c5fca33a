// Live video of one camera in a <video> element: the hub's WebSocket
// (GET /api/v1/cameras/{id}/live) carries fragmented MP4, which Media Source Extensions play.
//
// The socket sends a text `init` ({codec, width, height, stream, transcoded}) followed by one
// binary initialisation segment, then binary media segments; again an `init` pair whenever the
// stream changes (the camera reconnected, a new size or codec: a new MediaSource then, since
// codec, size and timestamps may all change); text `status` messages when the camera's status
// changes. Close codes 4404 (camera removed or disabled) and 4403 (no longer in scope, or the
// session ended) are final; any other close or a network error reconnects after 1 s, doubling
// up to 10 s, and back to 1 s once pictures play again.
//
// Memory stays flat however long it plays: appends wait in a queue while the SourceBuffer is
// busy (a queue that grows past MAX_QUEUED starts the session over), the buffer behind the
// live edge is trimmed to about KEEP_SECS, and a player more than MAX_LAG_SECS behind the edge
// (a hidden tab, a stall, a gap after frames were skipped) jumps to it.
//
// The player knows no words: its states ({state, reason, code, transcoded, width, height,
// codec, stream}) go to `onState`, whose owner says them in the console's language.

import { api } from "./ui.js";

/** Whether this browser plays H.265 through MSE; if not, the hub sends H.265 cameras as H.264. */
export const PLAYS_H265 =
  typeof MediaSource !== "undefined" && MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L93.B0"');

/** Close codes after which the player does not reconnect. */
export const CLOSE_GONE = 4404;
export const CLOSE_FORBIDDEN = 4403;

/** Seconds of video kept behind the live edge. */
const KEEP_SECS = 10;
/** The buffer is trimmed once it holds this many seconds more than KEEP_SECS. */
const TRIM_SLACK_SECS = 5;
/** Further behind the live edge than this, playback jumps to it... */
const MAX_LAG_SECS = 1.5;
/** ...landing this far behind the edge (a few pictures of margin against network jitter). */
const JUMP_BEHIND_SECS = 0.5;
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 10_000;
/** Segments waiting for the SourceBuffer; past this the browser has fallen behind: start over. */
const MAX_QUEUED = 300;

/**
 * States: `connecting` (socket opening, or waiting for pictures), `playing` (pictures move),
 * `offline` (the camera is offline; `reason` says why; the socket stays open and the
 * pictures come back by themselves), `reconnecting` (the socket closed; trying again), and
 * `closed` (final: `code` 4404 or 4403 from the hub, or `unsupported` for a codec this browser
 * cannot play; `reason` is the hub's words).
 */
export class LivePlayer {
  /**
   * @param {HTMLVideoElement} video where the pictures go (muted, autoplay, playsinline are set)
   * @param {string} cameraId
   * @param {{stream?: "sub"|"main", onState?: (s: object) => void}} opts
   */
  constructor(video, cameraId, { stream = "sub", onState = () => {} } = {}) {
    this.video = video;
    this.cameraId = String(cameraId);
    this.stream = stream;
    this.onState = onState;
    this.running = false;
    this.ws = null;
    this.ms = null;
    this.sb = null;
    this.url = null;
    this.queue = [];
    this.pendingInit = null;
    this.info = {};
    this.offline = false;
    this.retryMs = RETRY_FIRST_MS;
    this.retryTimer = null;
    this.lastTime = -1;
    this.current = { state: "connecting" };
    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    video.setAttribute("muted", "");
    video.setAttribute("playsinline", "");
    this.onTimeUpdate = () => this.progress();
    // An error of a source already let go of (detach resets video.error) is not this one's.
    this.onVideoError = () =>
      this.ms && this.video.error && this.broken(`video element: ${this.video.error.message || this.video.error.code}`);
    video.addEventListener("timeupdate", this.onTimeUpdate);
    video.addEventListener("error", this.onVideoError);
  }

  /** The latest state (what `onState` was last given). */
  get state() {
    return { ...this.current };
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.retryMs = RETRY_FIRST_MS;
    this.connect("connecting");
  }

  /** Closes the socket, detaches the MediaSource and lets go of the video element. */
  stop() {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.closeSocket();
    this.detach();
    this.video.removeEventListener("timeupdate", this.onTimeUpdate);
    this.video.removeEventListener("error", this.onVideoError);
  }

  // ------------------------------------------------------------ socket

  connect(state) {
    this.setState(state);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams({ stream: this.stream, h265: String(PLAYS_H265) });
    const path = `/api/v1/cameras/${encodeURIComponent(this.cameraId)}/live?${query}`;
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}${path}`);
    } catch (e) {
      this.retry();
      return;
    }
    ws.binaryType = "arraybuffer";
    ws.opened = false;
    ws.onopen = () => (ws.opened = true);
    ws.onmessage = (e) => this.ws === ws && this.message(e.data);
    ws.onclose = (e) => this.ws === ws && this.closed(ws, e);
    this.ws = ws;
  }

  closeSocket() {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    try {
      ws.close(1000);
    } catch (_) {
      /* already closing */
    }
  }

  message(data) {
    if (typeof data === "string") {
      let msg;
      try {
        msg = JSON.parse(data);
      } catch (_) {
        return;
      }
      if (msg?.type === "init") this.pendingInit = msg;
      else if (msg?.type === "status") this.status(msg);
      return;
    }
    if (this.pendingInit) {
      const meta = this.pendingInit;
      this.pendingInit = null;
      this.attach(meta, data);
      return;
    }
    if (!this.ms) return; // a segment without its init: nothing can play it
    this.queue.push(data);
    if (this.queue.length > MAX_QUEUED) {
      this.broken(`${this.queue.length} segments waiting: the browser fell behind`);
      return;
    }
    this.pump();
  }

  status(msg) {
    if (msg.status === "offline") {
      this.offline = true;
      this.setState("offline", { reason: msg.reason || "" });
    } else if (msg.status === "connecting") {
      this.offline = true;
      this.setState("connecting");
    } else if (msg.status === "online" && this.offline) {
      // Pictures come after the next init; until then it is connecting.
      this.offline = false;
      this.setState("connecting");
    }
  }

  async closed(ws, e) {
    this.ws = null;
    if (!this.running) return;
    if (e.code === CLOSE_GONE || e.code === CLOSE_FORBIDDEN) {
      this.end(e.code, e.reason);
      return;
    }
    if (!ws.opened) {
      // Refused before the upgrade (the browser does not say why): a camera that is gone or
      // out of scope answers 404 here too, which is final; a 401 sends the console to its
      // login (ui.js), which stops this player.
      try {
        await api("GET", `/api/v1/cameras/${encodeURIComponent(this.cameraId)}`);
      } catch (err) {
        if (!this.running) return;
        if (err.status === 404 || err.status === 403) {
          this.end(err.status === 404 ? CLOSE_GONE : CLOSE_FORBIDDEN, err.message);
          return;
        }
      }
      if (!this.running) return;
    }
    this.retry();
  }

  retry() {
    clearTimeout(this.retryTimer);
    this.setState("reconnecting");
    const wait = this.retryMs;
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.running && !this.ws) this.connect("reconnecting");
    }, wait);
  }

  /** A final close: no reconnecting. */
  end(code, reason) {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.closeSocket();
    this.setState("closed", { code, reason: reason || "" });
  }

  /** Something broke in the browser's pipeline: start the session over, as after a network error. */
  broken(why) {
    if (!this.running) return;
    console.warn(`live ${this.cameraId} (${this.stream}): ${why}; starting over`);
    this.closeSocket();
    this.detach();
    this.retry();
  }

  // ------------------------------------------------------------ media

  attach(meta, init) {
    const mime = `video/mp4; codecs="${meta.codec}"`;
    if (typeof MediaSource === "undefined" || !MediaSource.isTypeSupported(mime)) {
      this.end("unsupported", meta.codec);
      return;
    }
    this.detach();
    this.info = {
      codec: meta.codec,
      width: meta.width,
      height: meta.height,
      stream: meta.stream || this.stream,
      transcoded: meta.transcoded === true,
    };
    this.offline = false;
    this.lastTime = -1;
    this.setState("connecting");
    const ms = new MediaSource();
    this.ms = ms;
    this.queue = [init];
    this.url = URL.createObjectURL(ms);
    ms.addEventListener(
      "sourceopen",
      () => {
        if (this.ms !== ms) return;
        this.revoke();
        try {
          const sb = ms.addSourceBuffer(mime);
          sb.mode = "segments";
          sb.addEventListener("updateend", () => this.sb === sb && this.pump());
          sb.addEventListener("error", () => this.sb === sb && this.broken("SourceBuffer error"));
          this.sb = sb;
        } catch (e) {
          this.broken(`addSourceBuffer(${mime}): ${e.message}`);
          return;
        }
        this.pump();
      },
      { once: true },
    );
    this.video.src = this.url;
    this.video.play().catch(() => {
      /* autoplay of a muted video is allowed; a detach interrupts it */
    });
  }

  /** Appends the next queued segment when the SourceBuffer is free; trims; keeps up with the edge. */
  pump() {
    const { sb, ms, video } = this;
    if (!sb || !ms || ms.readyState !== "open" || sb.updating) return;
    const buffered = sb.buffered;
    if (buffered.length) {
      const last = buffered.length - 1;
      const edge = buffered.end(last);
      const t = video.currentTime;
      if (edge - t > MAX_LAG_SECS || t < buffered.start(last)) {
        video.currentTime = Math.max(buffered.start(last), edge - JUMP_BEHIND_SECS);
      }
      const oldest = buffered.start(0);
      if (edge - oldest > KEEP_SECS + TRIM_SLACK_SECS) {
        sb.remove(oldest, edge - KEEP_SECS); // its updateend pumps again
        return;
      }
    }
    const next = this.queue.shift();
    if (!next) return;
    try {
      sb.appendBuffer(next);
    } catch (e) {
      if (e.name === "QuotaExceededError" && buffered.length && video.currentTime - 1 > buffered.start(0)) {
        this.queue.unshift(next);
        sb.remove(buffered.start(0), video.currentTime - 1);
        return;
      }
      this.broken(`appendBuffer: ${e.name} ${e.message}`);
    }
  }

  /** Pictures move: playing (unless the hub said the camera is offline). */
  progress() {
    const t = this.video.currentTime;
    if (this.lastTime >= 0 && t > this.lastTime && !this.offline && this.ms) {
      this.retryMs = RETRY_FIRST_MS;
      this.setState("playing");
    }
    this.lastTime = t;
  }

  revoke() {
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
  }

  detach() {
    this.revoke();
    this.ms = null;
    this.sb = null;
    this.queue = [];
    this.pendingInit = null;
    if (this.video.hasAttribute("src")) {
      this.video.removeAttribute("src");
      this.video.load();
    }
  }

  setState(state, extra = {}) {
    const next = { state, reason: "", code: null, ...this.info, stream: this.info.stream || this.stream, ...extra };
    const cur = this.current;
    if (
      cur.state === next.state &&
      cur.reason === next.reason &&
      cur.transcoded === next.transcoded &&
      cur.width === next.width &&
      cur.code === next.code
    ) {
      return;
    }
    this.current = next;
    try {
      this.onState({ ...next });
    } catch (e) {
      console.warn("live player onState:", e);
    }
  }
}
