// Playback (the playback tab): pick a camera and a day, see the day's recording on a 24-hour
// timeline (recorded ranges, gaps, the alerts of the camera and of the gates it watches, those
// gates' events), click it to play from that instant. Also the alert detail's clip and the
// evidence exports of both, and the evidence key (a district's: every node's).
//
// The hub's side: GET /api/v1/cameras/{id}/recordings (ranges and gaps of a time range),
// GET /api/v1/cameras/{id}/recording.mp4?from&to (one MP4 of a range that lies inside one
// recorded range, starting at the key frame at or before `from`; `X-Clip-Start` is the wall
// time of its time 0), GET /api/v1/alerts/{id}/clip.mp4, POST /api/v1/exports (a signed zip,
// police and admin only), GET /api/v1/evidence/key and /evidence/keys. Videos play from a plain
// <video src> (the browser asks for byte ranges), not through MSE. A clip is at most
// CLIP_MAX_MS long; when it ends the next one is asked for, across gaps, until the day's
// recording ends.
//
// The functions before "page state" are pure (times are milliseconds since the epoch, days
// are local "YYYY-MM-DD"): tests/browser/playback.test.mjs runs them under node.

import { t, tOr } from "./i18n.js";
import { $, $$, h, api, apiResponse, toast, pad, parseTime, fmtTime } from "./ui.js";
import { items, nameOf } from "./topology.js";
import { alertTitle } from "./alert-text.js";

/** The name the district's evidence keys are saved as (`verify-export --keys`). */
const KEYS_FILE = "evidence-keys.json";
/** The longest clip asked for at once; playback goes on with the next one. */
export const CLIP_MAX_MS = 10 * 60_000;
/** The default download and export range: this long, around the playhead. */
export const AROUND_MS = 10 * 60_000;
/** A piece of a recorded range shorter than this is not worth a clip of its own. */
export const MIN_CLIP_MS = 1000;
/** Clicking a gate event plays from this long before it (the person walking up). */
export const GATE_PREROLL_MS = 5000;
/** Opening playback from an alert starts this long before it was raised (the clip's pre-roll). */
export const ALERT_PREROLL_MS = 10_000;
/** Most alerts and gate events one day's timeline asks for (the API's own limit). */
const DAY_LIMIT = 1000;
/** While today is shown, its recordings are asked for again this often (they grow). */
const REFRESH_MS = 60_000;
/** How long "no recording there" stays over a video that plays on. */
const GAP_NOTE_MS = 6000;
/** Gate event kinds drawn as alarms. */
const ALARM_EVENTS = ["door_forced_open", "door_held_open", "duress", "tamper", "blacklisted", "alarm"];

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
const enc = encodeURIComponent;

// ---------------------------------------------------------------- days and times (pure)

/** Local midnight of "YYYY-MM-DD" as a Date (a day that exists), else null. */
export function parseDay(v) {
  const m = /^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$/.exec(v ?? "");
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]) - 1, Number(m[3])];
  const at = new Date(y, mo, d);
  return at.getFullYear() === y && at.getMonth() === mo && at.getDate() === d ? at : null;
}

/** The local day of `ms`, "YYYY-MM-DD". */
export function dayString(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** The local day `day` as [from, to) (23 or 25 hours long on a daylight-saving change); null when not a day. */
export function dayBounds(day) {
  const d = parseDay(day);
  if (!d) return null;
  return { from: d.getTime(), to: new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1).getTime() };
}

/** The day `n` days after `day` (before, for a negative `n`); null when `day` is not a day. */
export function shiftDay(day, n) {
  const d = parseDay(day);
  return d ? dayString(new Date(d.getFullYear(), d.getMonth(), d.getDate() + n).getTime()) : null;
}

/** Local "YYYY-MM-DD HH:MM[:SS]" (24-hour; a "T" may stand for the space) as ms, else null. */
export function parseLocal(v) {
  const m = /^\s*(\d{4}-\d{1,2}-\d{1,2})[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$/.exec(v ?? "");
  if (!m) return null;
  const d = parseDay(m[1]);
  const [hh, mm, ss] = [Number(m[2]), Number(m[3]), Number(m[4] ?? 0)];
  if (!d || hh > 23 || mm > 59 || ss > 59) return null;
  return new Date(d.getFullYear(), d.getMonth(), d.getDate(), hh, mm, ss).getTime();
}

/** "HH:MM[:SS]" on `day` as ms, else null. */
export function parseClockOn(day, v) {
  return /^\s*\d{1,2}:\d{2}(:\d{2})?\s*$/.test(v ?? "") ? parseLocal(`${day} ${v.trim()}`) : null;
}

/** RFC 3339 in UTC, whole seconds without a fraction ("2026-01-15T02:00:05Z"). */
export function rfc3339(ms) {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

/** The range to ask the hub about for `day` as of `now`: up to now for today; null for a day to come. */
export function queryRange(day, now) {
  if (!day || now <= day.from) return null;
  return { from: day.from, to: Math.min(day.to, now) };
}

// ---------------------------------------------------------------- the timeline (pure)

/** Where `ms` is on a timeline `width` wide showing `day` (clamped to it). */
export function timeToX(ms, day, width) {
  const span = day.to - day.from;
  return span > 0 ? clamp((ms - day.from) / span, 0, 1) * width : 0;
}

/** The instant at `x` on a timeline `width` wide showing `day`, whole ms, inside [from, to). */
export function xToTime(x, day, width) {
  if (!(width > 0)) return day.from;
  return Math.min(day.to - 1, Math.round(day.from + clamp(x / width, 0, 1) * (day.to - day.from)));
}

/** The API's [{from, to}] (RFC 3339) as [{from, to}] in ms, in time order, empty ones left out. */
export function parseSpans(list) {
  return (Array.isArray(list) ? list : [])
    .map((s) => ({ from: parseTime(s?.from)?.getTime(), to: parseTime(s?.to)?.getTime() }))
    .filter((s) => Number.isFinite(s.from) && Number.isFinite(s.to) && s.to > s.from)
    .sort((a, b) => a.from - b.from);
}

/** Spans clipped to `day` with where they are drawn: [{from, to, x, w}] (`width` 100: percent). */
export function segments(spans, day, width) {
  const out = [];
  for (const s of spans) {
    const from = Math.max(s.from, day.from);
    const to = Math.min(s.to, day.to);
    if (to <= from) continue;
    const x = timeToX(from, day, width);
    out.push({ from, to, x, w: timeToX(to, day, width) - x });
  }
  return out;
}

/** The span holding `ms` (from inclusive, to exclusive), or null. */
export function spanAt(spans, ms) {
  return spans.find((s) => s.from <= ms && ms < s.to) || null;
}

/**
 * The clip a click at `ms` asks for: from there to the end of the recorded range holding it,
 * at most `maxMs`; null when `ms` is in no recorded range.
 */
export function clipFor(ranges, ms, maxMs = CLIP_MAX_MS) {
  const r = spanAt(ranges, ms);
  return r ? { from: ms, to: Math.min(r.to, ms + maxMs) } : null;
}

/**
 * The clip after one that ended at `afterMs`: the rest of its range, else the start of the next
 * range (skipping the gap), at most `maxMs`, at least MIN_CLIP_MS; null when nothing is left.
 */
export function nextClip(ranges, afterMs, maxMs = CLIP_MAX_MS) {
  for (const r of ranges) {
    const from = Math.max(r.from, afterMs);
    if (r.to - from >= MIN_CLIP_MS) return { from, to: Math.min(r.to, from + maxMs) };
  }
  return null;
}

/** `widthMs` around `ms`, moved to lie inside `day` where it can. */
export function around(ms, day, widthMs = AROUND_MS) {
  let from = ms - widthMs / 2;
  if (day) from = clamp(from, day.from, Math.max(day.from, day.to - widthMs));
  from = Math.round(from);
  return { from, to: day ? Math.min(day.to, from + widthMs) : from + widthMs };
}

/** The wall time of a clip's `currentTime` (seconds), given the clip's `X-Clip-Start` in ms. */
export function wallTime(clipStartMs, currentTime) {
  return Math.round(clipStartMs + currentTime * 1000);
}

/** Where in a clip (seconds) the wall time `ms` is; 0 before it starts. */
export function clipOffset(clipStartMs, ms) {
  return Math.max(0, (ms - clipStartMs) / 1000);
}

/** The URL of a camera's recording of [from, to). */
export function recordingUrl(camera, { from, to }, { stream = null, download = false } = {}) {
  const q = new URLSearchParams({ from: rfc3339(from), to: rfc3339(to) });
  if (stream) q.set("stream", stream);
  if (download) q.set("download", "true");
  return `/api/v1/cameras/${enc(camera)}/recording.mp4?${q}`;
}

/** The local hours of `day` (a tick each, "24:00" at its end), once each on a daylight-saving change. */
export function hourTicks(day) {
  const start = new Date(day.from);
  const out = [];
  for (let hour = 0; hour <= 25; hour++) {
    const ms = new Date(start.getFullYear(), start.getMonth(), start.getDate(), hour).getTime();
    if (ms > day.to) break;
    if (out.length && out[out.length - 1].ms >= ms) continue;
    out.push({ ms, label: ms === day.to ? "24:00" : `${pad(new Date(ms).getHours())}:00` });
  }
  return out;
}

/** The ids of the gates (topology items) that `camera` watches. */
export function gatesWatchedBy(gateItems, camera) {
  return (gateItems || [])
    .filter((it) => it?.entry?.camera != null && String(it.entry.camera) === String(camera))
    .map((it) => String(it.entry.id));
}

/** The alerts of `camera` or of one of `gates`, each with its raise time: [{alert, at}], in time order. */
export function alertMarkers(alerts, camera, gates) {
  const gs = new Set((gates || []).map(String));
  return (Array.isArray(alerts) ? alerts : [])
    .filter((a) => a && (String(a.camera ?? "") === String(camera) || (a.gate != null && gs.has(String(a.gate)))))
    .map((a) => ({ alert: a, at: parseTime(a.raised_at)?.getTime() }))
    .filter((m) => Number.isFinite(m.at))
    .sort((a, b) => a.at - b.at);
}

/** A stored gate event as {at, kind, gate, who} (the API's rows: the stored event, `event` inside). */
export function gateEventMark(row) {
  const ev = row?.event || {};
  const at = parseTime(row?.received_at || ev.received_at)?.getTime();
  const who = [ev.person?.name ?? ev.person_name, ev.person?.card ?? ev.card].filter(Boolean).join(" / ");
  return { at, kind: ev.kind || row?.kind || "unknown", gate: row?.gate ?? ev.gate ?? null, who };
}

/** The file name a Content-Disposition header gives (filename* first), else null. */
export function dispositionFilename(header) {
  if (!header) return null;
  const star = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[2].trim().replace(/^"|"$/g, ""));
    } catch (_) {
      /* a bad escape: try the plain one */
    }
  }
  const plain = /filename\s*=\s*("((?:[^"\\]|\\.)*)"|[^;\s]+)/i.exec(header);
  if (!plain) return null;
  return plain[2] !== undefined ? plain[2].replace(/\\(.)/g, "$1") : plain[1];
}

/** A byte count for people: "512 B", "3.4 MB". */
export function fmtBytes(n) {
  if (!Number.isFinite(n) || n < 0) return "—";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n < 10 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

/** Whether `user` may export evidence (and read the hub's key): police and admins. */
export function canExport(user) {
  return user?.role === "admin" || user?.role === "police";
}

/** "HH:MM:SS" of `ms`, local. */
const clock = (ms) => fmtTime(ms, false);
/** "HH:MM:SS – HH:MM:SS", with dates where the two differ from `day`. */
function spanText(from, to, day) {
  const one = (ms) => (dayString(ms) === day ? clock(ms) : fmtTime(ms));
  return `${one(from)} – ${one(to)}`;
}

// ---------------------------------------------------------------- page state

const pb = {
  visible: false,
  user: null,
  openAlert: () => {},
  cameras: [],
  camerasLoaded: false,
  search: "",
  /** The chosen camera's id, or null. */
  camera: null,
  day: dayString(Date.now()),
  /** The stream asked for: null (the hub's choice) until an answer names it. */
  stream: null,
  /** The day shown: {camera, day, bounds, queried, stream, ranges, gaps, alerts, events, problem}. */
  data: null,
  loadSeq: 0,
  /** The clip in the player: {from, to (asked), start, end (X-Clip-Start/End), url}. */
  clip: null,
  clipSeq: 0,
  /** Wall time to seek to once the clip's metadata is in. */
  seekTo: null,
  /** Wall time to play once the day is loaded (openPlaybackAt). */
  pending: null,
  /** The playhead (wall time of the video), or null. */
  playhead: null,
  /** The keyboard's position on the timeline. */
  cursor: null,
  rate: 1,
  /** Whether the person changed the range inputs (then a new position leaves them alone). */
  rangeEdited: false,
  /** What the player says instead of (or over) the video: {kind, text} or null. */
  message: null,
  exporting: false,
  key: null,
  keyError: null,
  /** The district's keys (GET /api/v1/evidence/keys), or null. */
  keys: null,
  timers: [],
};

const video = () => $("#pb-video");
const dayOf = () => dayBounds(pb.day);

// ---------------------------------------------------------------- lifecycle (app.js calls these)

/** Wires the page's fixed controls; once, at start. `openAlert(id)` opens an alert's detail. */
export function initPlayback({ openAlert }) {
  pb.openAlert = openAlert;
  const search = $("#pb-search");
  search.addEventListener("input", () => {
    pb.search = search.value;
    renderCameraList();
  });
  search.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      const first = $("#pb-cameras [data-playback-camera]");
      if (first) chooseCamera(first.dataset.playbackCamera);
    } else if (e.key === "ArrowDown") {
      e.preventDefault();
      $("#pb-cameras [data-playback-camera]")?.focus();
    }
  });
  $("#pb-cameras").addEventListener("keydown", onCameraListKey);
  const dayInput = $("#pb-day");
  dayInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      chooseDay(dayInput.value);
    }
  });
  dayInput.addEventListener("change", () => chooseDay(dayInput.value));
  $("#pb-day-prev").addEventListener("click", () => chooseDay(shiftDay(pb.day, -1)));
  $("#pb-day-next").addEventListener("click", () => chooseDay(shiftDay(pb.day, 1)));
  $("#pb-today").addEventListener("click", () => chooseDay(dayString(Date.now())));
  for (const b of $$("[data-pb-stream]")) b.addEventListener("click", () => chooseStream(b.dataset.pbStream));
  for (const b of $$("[data-pb-rate]")) b.addEventListener("click", () => setRate(Number(b.dataset.pbRate)));
  const go = $("#pb-goto");
  go.addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();
    const ms = parseClockOn(pb.day, go.value);
    go.classList.toggle("invalid", ms === null);
    if (ms === null) say("error", t("playback.bad_time"));
    else playAt(ms, { chosen: true });
  });

  const tl = $("#pb-timeline");
  tl.addEventListener("click", onTimelineClick);
  tl.addEventListener("mousemove", onTimelineHover);
  tl.addEventListener("mouseleave", () => ($("#pb-hover").hidden = true));
  tl.addEventListener("keydown", onTimelineKey);

  const v = video();
  v.addEventListener("loadedmetadata", onLoadedMetadata);
  v.addEventListener("timeupdate", () => {
    // Until the seek to the chosen instant is made, the playhead stays there (not at the key frame).
    if (pb.clip && pb.seekTo === null) setPlayhead(wallTime(pb.clip.start, v.currentTime));
  });
  v.addEventListener("ended", () => {
    if (pb.clip) continueAfter(pb.clip.to);
  });
  v.addEventListener("playing", () => {
    if (pb.message && pb.message.kind === "loading") say(null);
  });
  v.addEventListener("error", () => {
    if (!v.getAttribute("src") || !pb.clip) return;
    say("error", t("playback.video_error"));
  });

  for (const id of ["#pb-range-from", "#pb-range-to"]) {
    $(id).addEventListener("input", () => {
      pb.rangeEdited = true;
      renderSelection();
    });
  }
  $("#pb-range-around").addEventListener("click", () => {
    pb.rangeEdited = false;
    const at = pb.playhead ?? pb.cursor;
    if (at !== null) setRangeAround(at);
  });
  $("#pb-download").addEventListener("click", download);
  $("#pb-export").addEventListener("click", exportRange);
  $("#pb-key-copy").addEventListener("click", copyKey);

  initAlertClip();
}

/** The playback tab was chosen. */
export function showPlayback(user) {
  pb.user = user;
  if (!pb.visible) {
    pb.visible = true;
    pb.timers.push(setInterval(refreshToday, REFRESH_MS));
  }
  renderPlayback();
  loadCameras();
  if (canExport(user) && !pb.key) loadKey();
  const d = pb.data;
  if (pb.camera && (!d || d.camera !== pb.camera || d.day !== pb.day)) loadDay();
  else if (pb.pending !== null && d) {
    const ms = pb.pending;
    pb.pending = null;
    playAt(ms, { chosen: true });
  }
}

/** Another tab was chosen: the video stops (and stops asking the hub for bytes). */
export function hidePlayback() {
  if (!pb.visible) return;
  pb.visible = false;
  for (const id of pb.timers) clearInterval(id);
  pb.timers = [];
  stopVideo();
  if (pb.data) say(...dayMessage(pb.data));
  renderTimelineMarks();
}

/** Logout: stop and forget. */
export function stopPlayback() {
  hidePlayback();
  Object.assign(pb, {
    user: null,
    cameras: [],
    camerasLoaded: false,
    search: "",
    camera: null,
    day: dayString(Date.now()),
    stream: null,
    data: null,
    pending: null,
    cursor: null,
    rangeEdited: false,
    message: null,
    key: null,
    keyError: null,
    keys: null,
  });
  pb.loadSeq++;
  $("#pb-search").value = "";
  $("#pb-range-from").value = "";
  $("#pb-range-to").value = "";
  clearExportResult($("#pb-export-result"));
  clearAlertClip();
}

/**
 * Opens `camera`'s recording at `ms` (the alert detail's playback button): the day of `ms`,
 * playing from there once loaded. The caller then shows the tab.
 */
export function openPlaybackAt(camera, ms) {
  if (!camera || !Number.isFinite(ms)) return;
  if (pb.camera !== String(camera) || pb.day !== dayString(ms)) {
    stopVideo();
    pb.data = null;
  }
  pb.camera = String(camera);
  pb.day = dayString(ms);
  pb.pending = ms;
  pb.rangeEdited = false;
  pb.search = "";
  $("#pb-search").value = "";
  if (pb.visible) loadDay();
}

/** Draws the whole page (a new language, new names). */
export function renderPlayback() {
  renderCameraList();
  renderHead();
  renderTimeline();
  renderControls();
  renderMessage();
  renderKey();
  paintExport($("#pb-export-result"));
  paintAlertClip();
}

// ---------------------------------------------------------------- loading

async function loadCameras() {
  try {
    const list = await api("GET", "/api/v1/cameras");
    pb.cameras = Array.isArray(list) ? list : [];
    pb.camerasLoaded = true;
    renderCameraList();
    renderHead();
  } catch (e) {
    if (e.status !== 401) toast(e.message, "error");
  }
}

/**
 * Loads the chosen camera's day: its recordings, the alerts of it and of its gates, those
 * gates' events. `quiet` keeps what plays and what is said (a refresh of today).
 */
async function loadDay({ quiet = false } = {}) {
  const seq = ++pb.loadSeq;
  const camera = pb.camera;
  const day = pb.day;
  const bounds = dayBounds(day);
  if (!camera || !bounds) return;
  if (!quiet) {
    stopVideo();
    pb.data = null;
    pb.cursor = null;
    say("loading", t("playback.loading"));
    renderAll();
  }
  const queried = queryRange(bounds, Date.now());
  const gates = gatesWatchedBy(items("gates"), camera);
  const data = { camera, day, bounds, queried, stream: pb.stream, ranges: [], gaps: [], alerts: [], events: [], problem: null };
  if (queried) {
    const span = { from: rfc3339(bounds.from), to: rfc3339(bounds.to) };
    const rq = new URLSearchParams({ from: rfc3339(queried.from), to: rfc3339(queried.to) });
    if (pb.stream) rq.set("stream", pb.stream);
    const aq = new URLSearchParams({ ...span, limit: String(DAY_LIMIT) });
    const community = pb.cameras.find((c) => String(c.id) === camera)?.community;
    if (community) aq.set("community", community);
    const gq = new URLSearchParams({ gate: gates.join(","), ...span, limit: String(DAY_LIMIT) });
    const [rec, alerts, events] = await Promise.allSettled([
      api("GET", `/api/v1/cameras/${enc(camera)}/recordings?${rq}`),
      api("GET", `/api/v1/alerts?${aq}`),
      gates.length ? api("GET", `/api/v1/events/gates?${gq}`) : Promise.resolve([]),
    ]);
    if (seq !== pb.loadSeq) return;
    if (rec.status === "fulfilled") {
      data.ranges = parseSpans(rec.value?.ranges);
      data.gaps = parseSpans(rec.value?.gaps);
      if (rec.value?.stream) data.stream = String(rec.value.stream);
    } else {
      if (rec.reason?.status === 401) return;
      data.problem = t("playback.load_failed", { msg: rec.reason?.message || "?" });
    }
    if (alerts.status === "fulfilled") data.alerts = alertMarkers(alerts.value, camera, gates);
    if (events.status === "fulfilled") {
      data.events = (Array.isArray(events.value) ? events.value : []).map(gateEventMark).filter((e) => Number.isFinite(e.at));
    }
    const failed = [alerts, events].find((r) => r.status === "rejected" && r.reason?.status !== 401);
    if (failed && !data.problem) toast(t("playback.events_failed", { msg: failed.reason?.message || "?" }), "error");
  }
  // A refresh that failed keeps the day as it was.
  if (quiet && data.problem) return;
  pb.data = data;
  if (data.stream) pb.stream = data.stream;
  if (!quiet) say(...dayMessage(data));
  renderAll();
  if (pb.pending !== null) {
    const ms = pb.pending;
    pb.pending = null;
    if (pb.visible) playAt(ms, { chosen: true });
  }
}

/** What the player says when a day is loaded and nothing plays yet: [kind, text]. */
function dayMessage(data) {
  if (data.problem) return ["error", data.problem];
  if (!data.queried) return ["future", t("playback.future_day")];
  if (!data.ranges.length) return ["none", t("playback.no_recording_day")];
  return ["hint", t("playback.hint")];
}

function refreshToday() {
  const d = pb.data;
  if (!pb.visible || document.hidden || !d || d.day !== dayString(Date.now())) return;
  loadDay({ quiet: true });
}

async function loadKey() {
  try {
    pb.key = await api("GET", "/api/v1/evidence/key");
    pb.keyError = null;
  } catch (e) {
    pb.key = null;
    pb.keyError = e.status === 401 ? null : e.message;
  }
  // A district's nodes each sign with their own key; without the list, this node's key alone.
  try {
    pb.keys = await api("GET", "/api/v1/evidence/keys");
  } catch (_) {
    pb.keys = null;
  }
  renderKey();
}

// ---------------------------------------------------------------- choosing

function chooseCamera(id) {
  if (pb.camera === String(id) && pb.data) return;
  pb.camera = String(id);
  pb.pending = null;
  pb.rangeEdited = false;
  renderCameraList();
  loadDay();
}

function chooseDay(day) {
  const ok = parseDay(day || "");
  $("#pb-day").classList.toggle("invalid", !ok);
  if (!ok) {
    toast(t("playback.bad_date"), "error");
    return;
  }
  pb.day = dayString(ok.getTime());
  pb.pending = null;
  pb.rangeEdited = false;
  renderHead();
  if (pb.camera) loadDay();
}

function chooseStream(stream) {
  if (pb.stream === stream) return;
  pb.stream = stream;
  renderHead();
  if (pb.camera) loadDay();
}

function setRate(rate) {
  if (![1, 2, 4].includes(rate)) return;
  pb.rate = rate;
  const v = video();
  v.defaultPlaybackRate = rate;
  v.playbackRate = rate;
  renderControls();
}

// ---------------------------------------------------------------- playing

/**
 * Plays from `ms`: the clip from there to the end of its recorded range (at most CLIP_MAX_MS);
 * in a gap, says so with the gap's times. `chosen`: a person picked the position (the range
 * inputs follow it).
 */
function playAt(ms, { chosen = false } = {}) {
  const d = pb.data;
  if (!d || !pb.camera) return;
  pb.cursor = ms;
  renderCursor();
  if (chosen && !pb.rangeEdited) setRangeAround(ms);
  const clip = clipFor(d.ranges, ms);
  if (!clip) {
    const gap = spanAt(d.gaps, ms);
    if (gap) say("gap", t("playback.gap", { from: spanTextOf(gap.from), to: spanTextOf(gap.to) }), gap);
    else if (d.queried && ms >= d.queried.to) say("gap", t("playback.not_yet"));
    else say("gap", t("playback.no_recording"));
    return;
  }
  startClip(clip, ms);
}

const spanTextOf = (ms) => (dayString(ms) === pb.day ? clock(ms) : fmtTime(ms));

/** Asks for `clip` (its headers first: where it starts), then plays it from `seekMs`. */
async function startClip(clip, seekMs) {
  const seq = ++pb.clipSeq;
  const camera = pb.camera;
  const url = recordingUrl(camera, clip, { stream: pb.stream });
  say("loading", t("playback.loading"));
  let head;
  try {
    head = await probe(url);
  } catch (e) {
    if (seq !== pb.clipSeq || e.status === 401) return;
    const gaps = parseSpans(e.body?.gaps);
    const gap = spanAt(gaps, seekMs) || gaps[0];
    if (e.status === 404 && gap) say("gap", t("playback.gap", { from: spanTextOf(gap.from), to: spanTextOf(gap.to) }), gap);
    else if (e.status === 404) say("gap", t("playback.no_recording"));
    else say("error", t("playback.clip_failed", { msg: e.message }));
    return;
  }
  if (seq !== pb.clipSeq || camera !== pb.camera) return;
  const start = head.start ?? clip.from;
  pb.clip = { ...clip, start, end: head.end ?? clip.to, url };
  pb.seekTo = seekMs;
  const v = video();
  Object.assign(v.dataset, {
    clipFrom: rfc3339(clip.from),
    clipTo: rfc3339(clip.to),
    clipStart: new Date(start).toISOString(),
    clipEnd: new Date(pb.clip.end).toISOString(),
  });
  v.defaultPlaybackRate = pb.rate;
  v.src = url;
  v.playbackRate = pb.rate;
  setPlayhead(seekMs);
  v.play().catch(() => {
    /* autoplay refused or a newer src: the controls are there */
  });
}

/**
 * The headers of a video the hub serves (X-Clip-Start, X-Clip-End) without its body: a GET of
 * its first byte, the rest cancelled. Rejects with the API's error (404 with `gaps`, 400...).
 */
async function probe(url) {
  const res = await apiResponse("GET", url, undefined, {
    headers: { Accept: "video/mp4, application/json", Range: "bytes=0-0" },
  });
  res.body?.cancel().catch(() => {});
  const at = (name) => parseTime(res.headers.get(name))?.getTime() ?? null;
  return { start: at("X-Clip-Start"), end: at("X-Clip-End") };
}

function onLoadedMetadata() {
  const v = video();
  v.playbackRate = pb.rate;
  if (pb.clip && pb.seekTo !== null) {
    const off = clipOffset(pb.clip.start, pb.seekTo);
    pb.seekTo = null;
    if (off > 0.05 && (!Number.isFinite(v.duration) || off < v.duration)) v.currentTime = off;
  }
}

/** The clip ended at `endMs`: the next one (today's recordings asked for again first). */
async function continueAfter(endMs) {
  const seq = pb.clipSeq;
  if (pb.data && pb.data.day === dayString(Date.now())) await loadDay({ quiet: true });
  if (seq !== pb.clipSeq || !pb.data) return;
  const next = nextClip(pb.data.ranges, endMs);
  if (next) startClip(next, next.from);
  else say("end", t("playback.end"));
}

function stopVideo() {
  pb.clipSeq++;
  pb.clip = null;
  pb.seekTo = null;
  pb.playhead = null;
  const v = video();
  if (v.getAttribute("src")) {
    v.pause();
    v.removeAttribute("src");
    v.load();
  }
  for (const k of ["clipFrom", "clipTo", "clipStart", "clipEnd"]) delete v.dataset[k];
  renderPlayhead();
}

function setPlayhead(ms) {
  pb.playhead = ms;
  renderPlayhead();
}

function setRangeAround(ms) {
  const r = around(ms, dayOf());
  $("#pb-range-from").value = fmtTime(r.from);
  $("#pb-range-to").value = fmtTime(r.to);
  $("#pb-range-from").classList.remove("invalid");
  $("#pb-range-to").classList.remove("invalid");
  renderSelection();
}

/** The range inputs as {from, to} in ms, or null (each bad input marked). */
function chosenRange() {
  const from = parseLocal($("#pb-range-from").value);
  const to = parseLocal($("#pb-range-to").value);
  const ok = from !== null && to !== null && to > from;
  $("#pb-range-from").classList.toggle("invalid", from === null || !ok);
  $("#pb-range-to").classList.toggle("invalid", to === null || !ok);
  return ok ? { from, to } : null;
}

/** Says `text` in the player (kind: loading, hint, gap, none, future, error, end); null clears. */
function say(kind, text, gap = null) {
  const m = kind ? { kind, text, gap } : null;
  pb.message = m;
  renderMessage();
  // Over a playing video, "no recording there" stands a while, then the video is seen whole.
  if (kind === "gap" && pb.clip) setTimeout(() => pb.message === m && say(null), GAP_NOTE_MS);
}

// ---------------------------------------------------------------- the timeline's input

/** The timeline's width and where `clientX` is on it (its rows fill its padding box). */
function timelineX(clientX) {
  const tl = $("#pb-timeline");
  return { x: clientX - tl.getBoundingClientRect().left - tl.clientLeft, width: tl.clientWidth };
}

function onTimelineClick(e) {
  const d = pb.data;
  if (!d) return;
  const marker = e.target.closest?.("[data-alert-id]");
  if (marker) {
    pb.openAlert(marker.dataset.alertId);
    return;
  }
  const gev = e.target.closest?.("[data-gate-event]");
  if (gev) {
    playAt(Math.max(d.bounds.from, Number(gev.dataset.at) - GATE_PREROLL_MS), { chosen: true });
    return;
  }
  const { x, width } = timelineX(e.clientX);
  playAt(xToTime(x, d.bounds, width), { chosen: true });
}

function onTimelineHover(e) {
  const d = pb.data;
  const label = $("#pb-hover");
  if (!d) {
    label.hidden = true;
    return;
  }
  const { x, width } = timelineX(e.clientX);
  const ms = xToTime(x, d.bounds, width);
  label.hidden = false;
  label.textContent = clock(ms);
  label.style.left = `${timeToX(ms, d.bounds, 100)}%`;
}

function onTimelineKey(e) {
  const d = pb.data;
  if (!d || e.target !== e.currentTarget) return;
  const base = pb.cursor ?? pb.playhead ?? d.ranges[0]?.from ?? d.bounds.from;
  const minute = 60_000;
  const step = {
    ArrowLeft: -(e.shiftKey ? 10 : 1) * minute,
    ArrowRight: (e.shiftKey ? 10 : 1) * minute,
    PageUp: -60 * minute,
    PageDown: 60 * minute,
  }[e.key];
  if (step !== undefined || e.key === "Home" || e.key === "End") {
    e.preventDefault();
    const to = e.key === "Home" ? d.bounds.from : e.key === "End" ? d.bounds.to - 1 : base + step;
    pb.cursor = clamp(to, d.bounds.from, d.bounds.to - 1);
    renderCursor();
  } else if (e.key === "Enter" || e.key === " ") {
    e.preventDefault();
    playAt(base, { chosen: true });
  }
}

function onCameraListKey(e) {
  if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
  const buttons = $$("[data-playback-camera]", $("#pb-cameras"));
  const i = buttons.indexOf(document.activeElement);
  if (i < 0) return;
  e.preventDefault();
  if (i === 0 && e.key === "ArrowUp") $("#pb-search").focus();
  else buttons[clamp(i + (e.key === "ArrowDown" ? 1 : -1), 0, buttons.length - 1)].focus();
}

// ---------------------------------------------------------------- downloads and exports

async function download() {
  const r = chosenRange();
  if (!pb.camera || !r) {
    say("error", t("playback.bad_range"));
    return;
  }
  const url = recordingUrl(pb.camera, r, { stream: pb.stream, download: true });
  const btn = $("#pb-download");
  btn.disabled = true;
  try {
    // The hub's answer to a bad range is JSON: ask first, so it is said here, not saved.
    await probe(url);
    const a = h("a", { href: url, download: "", hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    toast(t("playback.download_started"), "ok");
  } catch (e) {
    if (e.status !== 401) say("error", t("playback.download_failed", { msg: e.message }));
  } finally {
    btn.disabled = !pb.camera;
  }
}

async function exportRange() {
  const r = chosenRange();
  if (!pb.camera || !r) {
    say("error", t("playback.bad_range"));
    return;
  }
  const range = { camera: pb.camera, from: rfc3339(r.from), to: rfc3339(r.to) };
  if (pb.stream) range.stream = pb.stream;
  const body = { range };
  pb.exporting = true;
  renderControls();
  await runExport(body, $("#pb-export-result"));
  pb.exporting = false;
  renderControls();
}

/** Each export result element's state: {seq, state (busy, done, error), name, sha, size, url, error}. */
const exportResults = new WeakMap();

/**
 * POSTs an export (`{alert}` or `{range}`), then shows in `el` the file's name, size and
 * SHA-256 with a link that saves it (clicked once for the person).
 */
async function runExport(body, el) {
  clearExportResult(el);
  const x = exportResults.get(el);
  x.state = "busy";
  paintExport(el);
  try {
    const res = await apiResponse("POST", "/api/v1/exports", body, { headers: { Accept: "application/zip, application/json" } });
    const blob = await res.blob();
    if (exportResults.get(el) !== x) return;
    x.name = dispositionFilename(res.headers.get("Content-Disposition")) || "xueliang-export.zip";
    x.sha = res.headers.get("X-Export-Sha256") || "";
    x.size = blob.size;
    x.url = URL.createObjectURL(blob);
    x.state = "done";
    paintExport(el);
    el.querySelector("[data-testid=export-save]")?.click();
  } catch (e) {
    if (exportResults.get(el) !== x) return;
    if (e.status === 401) {
      clearExportResult(el);
      return;
    }
    x.state = "error";
    x.error = e.status === 403 ? { key: "export.forbidden" } : { key: "export.failed", msg: e.message };
    paintExport(el);
  }
}

/** Draws `el`'s export result in the console's language. */
function paintExport(el) {
  const x = exportResults.get(el);
  el.hidden = !x || !x.state;
  if (el.hidden) return;
  el.dataset.state = x.state;
  if (x.state === "busy") {
    el.replaceChildren(h("span", { class: "muted" }, t("export.busy")));
  } else if (x.state === "error") {
    el.replaceChildren(h("span", { class: "form-error" }, t(x.error.key, { msg: x.error.msg })));
  } else {
    el.dataset.filename = x.name;
    el.dataset.sha256 = x.sha;
    el.replaceChildren(
      h(
        "div",
        { class: "export-head" },
        h("strong", {}, t("export.done")),
        h("a", { class: "btn btn-sm btn-primary", href: x.url, download: x.name, "data-testid": "export-save" }, t("export.save")),
      ),
      h(
        "dl",
        { class: "export-facts" },
        h("dt", {}, t("export.file")),
        h("dd", { "data-testid": "export-filename" }, x.name),
        h("dt", {}, t("export.size")),
        h("dd", {}, fmtBytes(x.size)),
        h("dt", {}, t("export.sha256")),
        h("dd", { class: "mono sha", "data-testid": "export-sha256" }, x.sha || "—"),
      ),
    );
  }
}

/** Forgets `el`'s export (its file's object URL too); an export still running is dropped. */
function clearExportResult(el) {
  const old = exportResults.get(el);
  if (old?.url) URL.revokeObjectURL(old.url);
  exportResults.set(el, { state: null });
  for (const k of ["filename", "sha256", "state"]) delete el.dataset[k];
  el.replaceChildren();
  el.hidden = true;
}

async function copyKey() {
  const key = pb.key?.public_key;
  if (!key) return;
  try {
    await navigator.clipboard.writeText(key);
    toast(t("evidence.copied"), "ok");
  } catch (_) {
    // No clipboard outside a secure context: select it for Ctrl+C.
    const code = $("[data-testid=evidence-key-public]");
    if (code) getSelection()?.selectAllChildren(code);
  }
}

// ---------------------------------------------------------------- drawing

function renderAll() {
  renderHead();
  renderTimeline();
  renderControls();
  renderMessage();
}

const COLLATOR = new Intl.Collator("zh-CN", { numeric: true });
const camState = (c) => (typeof c?.status === "string" ? c.status : c?.status?.state || "offline");

function renderCameraList() {
  const list = $("#pb-cameras");
  const q = pb.search.trim().toLowerCase();
  const shown = pb.cameras
    .filter((c) => {
      if (!q) return true;
      const text = [c.id, c.name, nameOf("cameras", c.id), c.community, nameOf("communities", c.community)];
      return text.filter(Boolean).join(" ").toLowerCase().includes(q);
    })
    .sort((a, b) => COLLATOR.compare(a.name || nameOf("cameras", a.id), b.name || nameOf("cameras", b.id)));
  const focused = document.activeElement?.closest?.("#pb-cameras [data-playback-camera]")?.dataset.playbackCamera;
  list.replaceChildren(
    ...shown.map((c) => {
      const id = String(c.id);
      const on = id === pb.camera;
      const st = camState(c);
      return h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: `pb-cam${on ? " selected" : ""}`,
            "data-testid": "playback-camera",
            "aria-pressed": on ? "true" : "false",
            dataset: { playbackCamera: id },
            onclick: () => chooseCamera(id),
          },
          h("span", { class: "pb-cam-name" }, c.name || nameOf("cameras", id)),
          h("span", { class: "pb-cam-sub muted" }, [nameOf("communities", c.community), id].filter(Boolean).join(" · ")),
          h("span", { class: `cam-status cam-${st}` }, tOr(`camstate.${st}`, st)),
        ),
      );
    }),
  );
  if (focused) list.querySelector(`[data-playback-camera="${CSS.escape(focused)}"]`)?.focus();
  $("#pb-cameras-empty").hidden = !pb.camerasLoaded || shown.length > 0;
  $("#pb-cameras-empty").textContent = pb.cameras.length ? t("playback.no_match") : t("playback.no_cameras");
}

function renderHead() {
  const c = pb.cameras.find((x) => String(x.id) === pb.camera);
  $("#pb-title").textContent = pb.camera ? c?.name || nameOf("cameras", pb.camera) : t("playback.pick");
  const input = $("#pb-day");
  if (document.activeElement !== input) input.value = pb.day;
  input.classList.remove("invalid");
  $("#pb-day-next").disabled = pb.day >= dayString(Date.now());
  for (const b of $$("[data-pb-stream]")) {
    const on = b.dataset.pbStream === pb.stream;
    b.classList.toggle("active", on);
    b.setAttribute("aria-pressed", on ? "true" : "false");
  }
  const d = pb.data;
  const summary = $("#pb-summary");
  if (d && d.queried && !d.problem) {
    const recorded = d.ranges.reduce((n, r) => n + (Math.min(r.to, d.bounds.to) - Math.max(r.from, d.bounds.from)), 0);
    summary.textContent = t("playback.summary", {
      recorded: fmtHours(recorded),
      alerts: d.alerts.length,
      events: d.events.length,
    });
  } else summary.textContent = "";
}

/** "3 h 25 min" / "3小时25分" style: hours and minutes. */
function fmtHours(ms) {
  const mins = Math.round(ms / 60_000);
  return t("playback.duration", { h: Math.floor(mins / 60), m: mins % 60 });
}

function renderTimeline() {
  const tl = $("#pb-timeline");
  const d = pb.data;
  const bounds = d?.bounds || dayOf();
  tl.dataset.loaded = d ? "true" : "false";
  tl.dataset.camera = pb.camera || "";
  tl.dataset.day = pb.day;
  if (bounds) {
    tl.dataset.from = rfc3339(bounds.from);
    tl.dataset.to = rfc3339(bounds.to);
  }
  tl.setAttribute("aria-label", `${t("playback.timeline")} · ${t("playback.hint")}`);
  tl.setAttribute("aria-disabled", d ? "false" : "true");
  tl.tabIndex = d ? 0 : -1;
  const pct = (el, from, to) => {
    el.style.left = `${timeToX(from, bounds, 100)}%`;
    if (to !== undefined) el.style.width = `${timeToX(to, bounds, 100) - timeToX(from, bounds, 100)}%`;
    return el;
  };
  const track = $("#pb-track");
  const alerts = $("#pb-alerts");
  const gates = $("#pb-gates");
  const ticks = $("#pb-ticks");
  if (!bounds) return;
  ticks.replaceChildren(
    ...hourTicks(bounds).map((tk, i, all) =>
      pct(
        h(
          "span",
          { class: `tl-tick${i % 2 ? " minor" : ""}${i === all.length - 1 ? " last" : ""}` },
          i % 2 ? "" : tk.label,
        ),
        tk.ms,
      ),
    ),
  );
  if (!d) {
    track.replaceChildren();
    alerts.replaceChildren();
    gates.replaceChildren();
    renderTimelineMarks();
    return;
  }
  const parts = [];
  for (const s of segments(d.gaps, bounds, 100)) {
    parts.push(
      pct(
        h("div", {
          class: "tl-gap",
          "data-testid": "timeline-gap",
          dataset: { from: rfc3339(s.from), to: rfc3339(s.to) },
          title: `${t("playback.legend.gap")} ${spanText(s.from, s.to, d.day)}`,
        }),
        s.from,
        s.to,
      ),
    );
  }
  for (const s of segments(d.ranges, bounds, 100)) {
    parts.push(
      pct(
        h("div", {
          class: "tl-range",
          "data-testid": "timeline-range",
          dataset: { from: rfc3339(s.from), to: rfc3339(s.to) },
          title: `${t("playback.legend.recorded")} ${spanText(s.from, s.to, d.day)}`,
        }),
        s.from,
        s.to,
      ),
    );
  }
  const notYet = d.queried ? d.queried.to : bounds.from;
  if (notYet < bounds.to) parts.push(pct(h("div", { class: "tl-future", title: t("playback.not_yet") }), notYet, bounds.to));
  track.replaceChildren(...parts);
  alerts.replaceChildren(
    ...d.alerts.map(({ alert: a, at }) => {
      const label = `${clock(at)} ${alertTitle(a)} · ${tOr(`severity.${a.severity}`, a.severity || "")}`;
      return pct(
        h("button", {
          type: "button",
          class: `tl-alert sev-${a.severity}`,
          "data-testid": "timeline-alert",
          dataset: { alertId: String(a.id), time: rfc3339(at), kind: a.kind || "" },
          title: label,
          "aria-label": label,
        }),
        at,
      );
    }),
  );
  gates.replaceChildren(
    ...d.events.map((ev) => {
      const kind = tOr(`gev.${ev.kind}`, ev.kind);
      const label = [clock(ev.at), ev.gate ? nameOf("gates", ev.gate) : "", kind, ev.who].filter(Boolean).join(" · ");
      return pct(
        h("div", {
          class: `tl-gev${ALARM_EVENTS.includes(ev.kind) ? " alarm" : ""}`,
          "data-testid": "timeline-gate-event",
          dataset: { gateEvent: ev.kind, at: String(ev.at), time: rfc3339(ev.at) },
          title: label,
        }),
        ev.at,
      );
    }),
  );
  renderTimelineMarks();
}

/** The playhead, the keyboard cursor and the chosen range: what moves without a new day. */
function renderTimelineMarks() {
  renderPlayhead();
  renderCursor();
  renderSelection();
}

function renderPlayhead() {
  const el = $("#pb-playhead");
  const bounds = pb.data?.bounds;
  const at = pb.playhead;
  const shown = !!bounds && at !== null && at >= bounds.from && at < bounds.to;
  el.hidden = !shown;
  const now = $("#pb-now");
  if (at === null) {
    delete el.dataset.time;
    delete now.dataset.time;
    now.textContent = "—";
  } else {
    el.dataset.time = new Date(at).toISOString();
    now.dataset.time = new Date(at).toISOString();
    now.textContent = dayString(at) === pb.day ? clock(at) : fmtTime(at);
  }
  if (shown) el.style.left = `${timeToX(at, bounds, 100)}%`;
}

function renderCursor() {
  const tl = $("#pb-timeline");
  const el = $("#pb-cursor");
  const bounds = pb.data?.bounds;
  const at = pb.cursor;
  el.hidden = !bounds || at === null;
  if (!bounds) return;
  tl.setAttribute("aria-valuemin", "0");
  tl.setAttribute("aria-valuemax", String(Math.round((bounds.to - bounds.from) / 1000)));
  if (at === null) {
    tl.removeAttribute("aria-valuenow");
    tl.removeAttribute("aria-valuetext");
    return;
  }
  el.style.left = `${timeToX(at, bounds, 100)}%`;
  el.dataset.time = new Date(at).toISOString();
  tl.setAttribute("aria-valuenow", String(Math.round((at - bounds.from) / 1000)));
  const state = spanAt(pb.data.ranges, at) ? t("playback.legend.recorded") : t("playback.legend.gap");
  tl.setAttribute("aria-valuetext", `${clock(at)} ${state}`);
}

function renderSelection() {
  const el = $("#pb-selection");
  const bounds = pb.data?.bounds;
  const from = parseLocal($("#pb-range-from").value);
  const to = parseLocal($("#pb-range-to").value);
  const shown = !!bounds && from !== null && to !== null && to > from && to > bounds.from && from < bounds.to;
  el.hidden = !shown;
  if (!shown) return;
  const x = timeToX(from, bounds, 100);
  el.style.left = `${x}%`;
  el.style.width = `${timeToX(to, bounds, 100) - x}%`;
}

function renderControls() {
  for (const b of $$("[data-pb-rate]")) {
    const on = Number(b.dataset.pbRate) === pb.rate;
    b.classList.toggle("active", on);
    b.setAttribute("aria-pressed", on ? "true" : "false");
  }
  const may = canExport(pb.user);
  $("#pb-export").hidden = !may;
  $("#pb-export").disabled = !pb.camera || pb.exporting;
  $("#pb-export").textContent = pb.exporting ? t("export.busy") : t("export.button");
  $("#pb-download").disabled = !pb.camera;
  $("#pb-range-around").disabled = pb.playhead === null && pb.cursor === null;
}

function renderMessage() {
  const el = $("#pb-message");
  let m = pb.message;
  if (!pb.camera) m = { kind: "pick", text: t("playback.pick") };
  el.hidden = !m;
  el.dataset.kind = m?.kind || "";
  el.textContent = m?.text || "";
  if (m?.gap) {
    el.dataset.gapFrom = rfc3339(m.gap.from);
    el.dataset.gapTo = rfc3339(m.gap.to);
  } else {
    delete el.dataset.gapFrom;
    delete el.dataset.gapTo;
  }
  // Over a playing video, only what concerns it; the others stand alone.
  $(".pb-player").classList.toggle("has-video", !!pb.clip);
}

function renderKey() {
  const box = $("#pb-key");
  const may = canExport(pb.user);
  box.hidden = !may || (!pb.key && !pb.keyError);
  if (box.hidden) return;
  const k = pb.key;
  const body = $("#pb-key-body");
  if (!k) {
    body.replaceChildren(h("p", { class: "form-error" }, t("evidence.failed", { msg: pb.keyError })));
    $("#pb-key-copy").hidden = true;
    return;
  }
  $("#pb-key-copy").hidden = false;
  // Several keys (a district): their fingerprints by node instead of this node's, and the
  // list saved as the file `verify-export --keys` reads.
  const keys = Array.isArray(pb.keys) && pb.keys.length > 1 ? pb.keys : null;
  const command = keys
    ? `xueliang verify-export FILE --keys ${KEYS_FILE}`
    : `xueliang verify-export FILE --key ${k.public_key}`;
  body.replaceChildren(
    h(
      "dl",
      { class: "facts key-facts" },
      h("dt", {}, t("evidence.algorithm")),
      h("dd", { "data-testid": "evidence-key-algorithm" }, k.algorithm || "—"),
      h("dt", {}, t("evidence.public_key")),
      h("dd", {}, h("code", { class: "mono key-text", "data-testid": "evidence-key-public" }, k.public_key || "—")),
      keys ? h("dt", {}, t("evidence.keys")) : h("dt", {}, t("evidence.fingerprint")),
      keys
        ? h(
            "dd",
            {},
            h(
              "ul",
              { class: "key-list", "data-testid": "evidence-keys" },
              keys.map((d) =>
                h(
                  "li",
                  { "data-node": d.node || "" },
                  h("code", { class: "mono key-text" }, d.fingerprint || "—"),
                  ` ${d.node || "—"}`,
                  d.public_key === k.public_key ? ` (${t("evidence.this_node")})` : null,
                ),
              ),
            ),
            h(
              "a",
              {
                class: "btn btn-ghost btn-sm",
                "data-testid": "evidence-keys-save",
                download: KEYS_FILE,
                href: `data:application/json;charset=utf-8,${encodeURIComponent(JSON.stringify(keys, null, 2))}`,
              },
              t("evidence.save_keys"),
            ),
          )
        : h("dd", {}, h("code", { class: "mono key-text", "data-testid": "evidence-key-fingerprint" }, k.fingerprint || "—")),
    ),
    h("p", { class: "muted" }, t(keys ? "evidence.verify_keys" : "evidence.verify")),
    h("code", { class: "mono key-text key-command", "data-testid": "evidence-key-command" }, command),
  );
}

// ---------------------------------------------------------------- the alert detail's clip

/**
 * The alert detail's clip (GET /api/v1/alerts/{id}/clip.mp4) beside its snapshot: asked for
 * once per alert shown (its headers first: a 404 says "no clip", with a button to ask again,
 * since the clip is only whole once its post-roll is recorded); the wall time under it as it
 * plays; the export button for police and admins.
 */
const clipView = { alertId: null, seq: 0, start: null, state: "none", error: null, user: null, busy: false };

function initAlertClip() {
  const v = $("#clip-video");
  v.addEventListener("timeupdate", paintClipTime);
  v.addEventListener("error", () => {
    if (!v.getAttribute("src") || clipView.state !== "ok") return;
    clipView.state = "error";
    clipView.error = t("playback.video_error");
    paintAlertClip();
  });
  $("#alert-export").addEventListener("click", async () => {
    const id = clipView.alertId;
    if (!id || clipView.busy) return;
    clipView.busy = true;
    paintAlertClip();
    await runExport({ alert: id }, $("#alert-export-result"));
    clipView.busy = false;
    paintAlertClip();
  });
}

/** The detail shows `alert` (or none): its clip is asked for when the alert is another one. */
export function showAlertClip(alert, user) {
  clipView.user = user;
  const id = alert?.id != null ? String(alert.id) : null;
  if (id !== clipView.alertId) {
    clearAlertClip();
    clipView.alertId = id;
    if (id) loadAlertClip(id);
  }
  paintAlertClip();
}

function clearAlertClip() {
  clipView.seq++;
  clipView.alertId = null;
  clipView.start = null;
  clipView.state = "none";
  clipView.error = null;
  const v = $("#clip-video");
  if (v.getAttribute("src")) {
    v.pause();
    v.removeAttribute("src");
    v.load();
  }
  delete v.dataset.clipStart;
  clearExportResult($("#alert-export-result"));
}

async function loadAlertClip(id) {
  const seq = ++clipView.seq;
  clipView.state = "loading";
  paintAlertClip();
  const url = `/api/v1/alerts/${enc(id)}/clip.mp4`;
  let head;
  try {
    head = await probe(url);
  } catch (e) {
    if (seq !== clipView.seq) return;
    clipView.state = e.status === 404 ? "missing" : "error";
    clipView.error = e.message;
    paintAlertClip();
    return;
  }
  if (seq !== clipView.seq) return;
  clipView.state = "ok";
  clipView.start = head.start;
  const v = $("#clip-video");
  if (head.start !== null) v.dataset.clipStart = new Date(head.start).toISOString();
  v.src = url;
  paintAlertClip();
}

function paintClipTime() {
  const v = $("#clip-video");
  $("#clip-time").textContent = clipView.start !== null && clipView.state === "ok" ? fmtTime(wallTime(clipView.start, v.currentTime)) : "";
}

function paintAlertClip() {
  const box = $("#clip-box");
  box.dataset.state = clipView.state;
  const v = $("#clip-video");
  const none = $("#clip-none");
  v.hidden = clipView.state !== "ok";
  const text =
    clipView.state === "loading"
      ? t("playback.loading")
      : clipView.state === "missing"
        ? t("detail.clip_none")
        : clipView.state === "error"
          ? t("detail.clip_failed", { msg: clipView.error || "?" })
          : "";
  none.hidden = !text;
  none.replaceChildren(
    h("span", {}, text),
    clipView.state === "missing" || clipView.state === "error"
      ? h(
          "button",
          {
            type: "button",
            class: "btn btn-ghost btn-sm",
            "data-testid": "alert-clip-retry",
            onclick: () => clipView.alertId && loadAlertClip(clipView.alertId),
          },
          t("detail.clip_retry"),
        )
      : null,
  );
  paintClipTime();
  paintExport($("#alert-export-result"));
  const exp = $("#alert-export");
  exp.hidden = !canExport(clipView.user) || !clipView.alertId;
  exp.disabled = clipView.busy;
  exp.textContent = clipView.busy ? t("export.busy") : t("export.button");
}
