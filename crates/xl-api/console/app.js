// The hub's duty console: plain ES module, no framework, no build step. Talks to the JSON API
// on the same origin with the cookie session (X-CSRF-Token on every non-GET request) and keeps
// the alert list live through the SSE stream. Shared helpers are in ui.js, display names in
// topology.js, the admins' pages in admin.js (and their zone editor in zones.js), the camera
// wall in wall.js (its live players in player.js), playback, the alert's clip and evidence
// exports in playback.js.

import { t, tOr, getLang, setLang, applyStatic } from "./i18n.js";
import { $, $$, h, s, api, toast, pad, parseTime, fmtTime, setUnauthorizedHandler } from "./ui.js";
import { loadTopology, onTopology, clearTopology, nameOf, nameAndId } from "./topology.js";
import { showAdminPage, hideAdmin, rerenderAdmin, resetAdmin, renderAdminRows } from "./admin.js";
import { alertTitle, alertWhere, zoneNameAndId, foldHistory, repeatsText, actorText, noteText } from "./alert-text.js";
import { initWall, showWall, hideWall, stopWall, renderWall, onWallCameraStatus, openWallCamera, liveCameraOf } from "./wall.js";
import { initPlayback, showPlayback, hidePlayback, stopPlayback, renderPlayback, openPlaybackAt, showAlertClip, ALERT_PREROLL_MS } from "./playback.js";

const SEVERITY_RANK = { critical: 0, major: 1, minor: 2, info: 3 };
const OPEN_STATES = ["open", "acknowledged", "escalated"];
const ALARM_REMIND_MS = 30_000;

const state = {
  user: null,
  alerts: new Map(), // id -> alert (open, acknowledged, escalated)
  rows: new Map(), // id -> <li>
  fresh: new Set(), // ids raised in the last seconds (flash)
  selectedId: null,
  detail: null, // {alert, history, snapshots}
  snapshotId: null,
  filter: "all",
  tab: "detail",
  gates: [],
  gateId: null,
  gateEvents: null,
  figures: null,
  es: null,
  streamState: "connecting",
  streamHadError: false,
  timers: [],
};

// ---------------------------------------------------------------- helpers

function fmtShort(v) {
  const d = parseTime(v);
  if (!d) return "—";
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay ? fmtTime(v, false) : `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtTime(v, false)}`;
}

function fmtAgo(v) {
  const d = parseTime(v);
  if (!d) return "";
  const secs = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
  if (secs < 5) return t("time.just_now");
  if (secs < 60) return t("time.s_ago", { n: secs });
  if (secs < 3600) return t("time.m_ago", { n: Math.floor(secs / 60) });
  if (secs < 86400) return t("time.h_ago", { n: Math.floor(secs / 3600) });
  return t("time.d_ago", { n: Math.floor(secs / 86400) });
}

function fmtDuration(secs) {
  secs = Math.max(0, Math.round(secs));
  const m = Math.floor(secs / 60);
  const r = secs % 60;
  return m >= 60 ? `${Math.floor(m / 60)}:${pad(m % 60)}:${pad(r)}` : `${m}:${pad(r)}`;
}

function fmtMins(secs) {
  if (secs === null || secs === undefined || Number.isNaN(Number(secs))) return "—";
  const m = Number(secs) / 60;
  return m < 10 ? m.toFixed(1) : String(Math.round(m));
}

const kindLabel = (kind) => tOr(`kind.${kind}`, kind || "?");
const sevLabel = (sev) => tOr(`severity.${sev}`, sev || "?");
const stateLabel = (st) => tOr(`state.${st}`, st || "?");

// ---------------------------------------------------------------- sound

const sound = {
  ctx: null,
  muted: localStorage.getItem("xl.muted") === "1",
  lastAlarm: 0,
};

function unlockAudio() {
  if (sound.ctx) {
    if (sound.ctx.state === "suspended") sound.ctx.resume().catch(() => {});
    return;
  }
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return;
  try {
    sound.ctx = new Ctx();
  } catch (_) {
    sound.ctx = null;
  }
  renderSoundToggle();
}

/** A two-tone alarm (three rising/falling pairs), generated with the Web Audio API. */
function playAlarm() {
  sound.lastAlarm = Date.now();
  if (sound.muted || !sound.ctx || sound.ctx.state !== "running") return;
  const ctx = sound.ctx;
  const t0 = ctx.currentTime + 0.02;
  const gain = ctx.createGain();
  gain.gain.value = 0.0001;
  gain.connect(ctx.destination);
  const osc = ctx.createOscillator();
  osc.type = "square";
  osc.connect(gain);
  for (let i = 0; i < 6; i++) {
    const at = t0 + i * 0.25;
    osc.frequency.setValueAtTime(i % 2 ? 660 : 988, at);
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.18, at + 0.02);
    gain.gain.setValueAtTime(0.18, at + 0.2);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.24);
  }
  osc.start(t0);
  osc.stop(t0 + 1.55);
  osc.onended = () => gain.disconnect();
}

function renderSoundToggle() {
  const btn = $("#sound-toggle");
  const locked = !sound.ctx;
  btn.dataset.muted = sound.muted ? "true" : "false";
  btn.dataset.locked = locked ? "true" : "false";
  btn.textContent = sound.muted ? t("header.unmute") : t("header.mute");
  btn.title = locked && !sound.muted ? t("header.sound_locked") : "";
}

// ---------------------------------------------------------------- auth and views

function showLogin(message) {
  stopLive();
  state.user = null;
  $("#app-view").hidden = true;
  $("#login-view").hidden = false;
  const err = $("#login-error");
  err.hidden = !message;
  err.textContent = message || "";
  $("#login-password").value = "";
  setTimeout(() => ($("#login-username").value ? $("#login-password") : $("#login-username")).focus(), 0);
}

let unauthorizedPending = false;
function onUnauthorized() {
  if (unauthorizedPending || !state.user) return;
  unauthorizedPending = true;
  setTimeout(() => {
    unauthorizedPending = false;
    showLogin();
  }, 0);
}

async function onLoginSubmit(ev) {
  ev.preventDefault();
  unlockAudio();
  const username = $("#login-username").value.trim();
  const password = $("#login-password").value;
  const btn = $("[data-testid=login-submit]");
  btn.disabled = true;
  try {
    const res = await api("POST", "/api/v1/auth/login", { username, password });
    await startConsole(res?.user || { username });
  } catch (e) {
    const msg =
      e.status === 401 || e.status === 403
        ? t("login.failed")
        : e.status === 429
          ? t("login.throttled")
          : t("login.error", { msg: e.message });
    const err = $("#login-error");
    err.textContent = msg;
    err.hidden = false;
  } finally {
    btn.disabled = false;
  }
}

async function logout() {
  try {
    await api("POST", "/api/v1/auth/logout");
  } catch (_) {
    /* the session may be gone already */
  }
  showLogin();
}

const isAdmin = () => state.user?.role === "admin";

async function startConsole(user) {
  state.user = user;
  resetAdmin(user);
  $("#login-view").hidden = true;
  $("#app-view").hidden = false;
  if (state.tab === "admin" && !isAdmin()) state.tab = "detail";
  renderHeader();
  selectTab(state.tab);
  // Display names for the ids alerts carry; the list shows ids until they come.
  loadTopology();
  await loadAlerts();
  connectStream();
  tick();
  state.timers.push(setInterval(tick, 1000));
  state.timers.push(setInterval(remindAlarm, 5000));
}

function stopLive() {
  if (state.es) state.es.close();
  state.es = null;
  for (const id of state.timers) clearInterval(id);
  state.timers = [];
  state.alerts.clear();
  state.rows.clear();
  state.selectedId = null;
  state.detail = null;
  clearTopology();
  resetAdmin();
  stopWall();
  stopPlayback();
  $("#alert-list").replaceChildren();
  $("#alert-list").dataset.loaded = "false";
  renderDetail();
}

function renderHeader() {
  const u = state.user || {};
  const role = u.role ? tOr(`role.${u.role}`, u.role) : "";
  $("#user-name").textContent = [u.username, role && `(${role})`].filter(Boolean).join(" ");
  const comms = Array.isArray(u.communities) ? u.communities : [];
  $("#station-name").textContent = comms.length
    ? comms.map((c) => nameOf("communities", c)).join(" · ")
    : t("app.subtitle");
  // The admin pages are for admins; the API refuses the others anyway.
  $("[data-tab=admin]").hidden = !isAdmin();
  for (const b of $$(".lang-btn")) b.classList.toggle("active", b.dataset.lang === getLang());
  renderSoundToggle();
  renderStreamStatus();
}

function tick() {
  const now = new Date();
  $("#clock").textContent = fmtTime(now.toISOString());
  for (const li of state.rows.values()) updateRowTimes(li, state.alerts.get(li.dataset.alertId));
}

// ---------------------------------------------------------------- alert list

async function loadAlerts() {
  try {
    const list = await api("GET", "/api/v1/alerts?state=open,acknowledged,escalated&limit=200");
    state.alerts.clear();
    for (const a of Array.isArray(list) ? list : []) if (a && a.id) state.alerts.set(String(a.id), a);
    renderAlertList();
    $("#alert-list").dataset.loaded = "true";
  } catch (e) {
    if (e.status !== 401) toast(e.message, "error");
  }
}

function compareAlerts(a, b) {
  const sa = SEVERITY_RANK[a.severity] ?? 9;
  const sb = SEVERITY_RANK[b.severity] ?? 9;
  if (sa !== sb) return sa - sb;
  const ta = parseTime(a.raised_at)?.getTime() ?? 0;
  const tb = parseTime(b.raised_at)?.getTime() ?? 0;
  return tb - ta;
}

function visibleAlerts() {
  const all = Array.from(state.alerts.values()).filter((a) => OPEN_STATES.includes(a.state));
  const shown = state.filter === "open" ? all.filter((a) => a.state !== "acknowledged") : all;
  return shown.sort(compareAlerts);
}

function renderAlertList() {
  const list = $("#alert-list");
  const shown = visibleAlerts();
  const keep = new Set(shown.map((a) => String(a.id)));
  for (const [id, li] of state.rows) {
    if (!keep.has(id)) {
      li.remove();
      state.rows.delete(id);
    }
  }
  let prev = null;
  for (const a of shown) {
    const id = String(a.id);
    let li = state.rows.get(id);
    if (!li) {
      li = h("li", {
        class: "alert-row",
        tabindex: "0",
        role: "button",
        "data-testid": "alert-row",
        onclick: () => selectAlert(id),
        onkeydown: (e) => (e.key === "Enter" || e.key === " ") && selectAlert(id),
      });
      state.rows.set(id, li);
    }
    fillRow(li, a);
    const want = prev ? prev.nextSibling : list.firstChild;
    if (want !== li) list.insertBefore(li, want);
    prev = li;
  }
  const unacked = shown.filter((a) => a.state !== "acknowledged").length;
  $("#alert-count").textContent = String(shown.length);
  $("#alert-count").classList.toggle("hot", unacked > 0);
  $("#alert-empty").hidden = shown.length > 0;
  for (const b of $$(".seg-btn[data-filter]")) b.classList.toggle("active", b.dataset.filter === state.filter);
}

function fillRow(li, a) {
  const id = String(a.id);
  li.dataset.alertId = id;
  li.dataset.kind = a.kind || "";
  li.dataset.severity = a.severity || "";
  li.dataset.state = a.state || "";
  li.className = "alert-row";
  li.classList.add(`sev-${a.severity}`, `st-${a.state}`);
  if (a.severity === "critical" && a.state !== "acknowledged") li.classList.add("alarm");
  if (state.selectedId === id) li.classList.add("selected");
  if (state.fresh.has(id)) li.classList.add("fresh");
  li.dataset.community = a.community || "";
  li.dataset.camera = a.camera || "";
  li.dataset.gate = a.gate || "";
  const where = alertWhere(a);
  const title = alertTitle(a);
  li.replaceChildren(
    h("div", { class: "row-sev" }, h("span", { class: `sev-badge sev-${a.severity}` }, sevLabel(a.severity))),
    h(
      "div",
      { class: "row-main" },
      h(
        "div",
        { class: "row-title" },
        h("span", { class: "title-text", "data-testid": "alert-row-title", title: title }, title),
        a.count > 1 ? h("span", { class: "repeat" }, t("alerts.repeat", { n: a.count })) : null,
      ),
      h("div", { class: "row-sub muted" }, h("span", {}, kindLabel(a.kind)), where ? h("span", {}, where) : null),
    ),
    h(
      "div",
      { class: "row-side" },
      h("span", { class: `state-badge st-${a.state}`, "data-testid": "alert-row-state" }, stateLabel(a.state)),
      h("span", { class: "row-time", title: fmtTime(a.raised_at) }),
      h("span", { class: "row-deadline" }),
    ),
  );
  updateRowTimes(li, a);
}

function updateRowTimes(li, a) {
  if (!a) return;
  const time = li.querySelector(".row-time");
  if (time) time.textContent = `${fmtShort(a.raised_at)} · ${fmtAgo(a.raised_at)}`;
  const dl = li.querySelector(".row-deadline");
  if (!dl) return;
  const deadline = parseTime(a.ack_deadline);
  if (deadline && (a.state === "open" || a.state === "escalated") && !a.acknowledged_at) {
    const left = (deadline.getTime() - Date.now()) / 1000;
    dl.textContent = left <= 0 ? t("alerts.overdue") : t("alerts.due_in", { t: fmtDuration(left) });
    dl.classList.toggle("overdue", left <= 0);
    dl.classList.toggle("soon", left > 0 && left < 60);
  } else {
    dl.textContent = "";
  }
}

function upsertAlert(a) {
  if (!a || !a.id) return;
  const id = String(a.id);
  if (OPEN_STATES.includes(a.state)) state.alerts.set(id, a);
  else state.alerts.delete(id);
  renderAlertList();
  if (state.selectedId === id && state.detail) {
    state.detail.alert = a;
  }
}

function onAlertChange(msg) {
  const a = msg?.alert;
  if (!a) return;
  const id = String(a.id);
  const isNew = msg.change === "raised" || (!state.alerts.has(id) && OPEN_STATES.includes(a.state));
  if (isNew) {
    state.fresh.add(id);
    setTimeout(() => {
      state.fresh.delete(id);
      state.rows.get(id)?.classList.remove("fresh");
    }, 6000);
  }
  upsertAlert(a);
  if (a.severity === "critical" && (msg.change === "raised" || msg.change === "escalated")) playAlarm();
  if (state.selectedId === id) loadDetail(id, { quiet: true });
}

function remindAlarm() {
  const pending = Array.from(state.alerts.values()).some(
    (a) => a.severity === "critical" && (a.state === "open" || a.state === "escalated"),
  );
  if (pending && Date.now() - sound.lastAlarm >= ALARM_REMIND_MS) playAlarm();
}

// ---------------------------------------------------------------- live stream

function setStream(st) {
  state.streamState = st;
  renderStreamStatus();
}

function renderStreamStatus() {
  const el = $("#stream-status");
  el.dataset.state = state.streamState;
  $(".label", el).textContent = t(`stream.${state.streamState}`);
}

function connectStream() {
  if (state.es) state.es.close();
  setStream("connecting");
  const es = new EventSource("/api/v1/alerts/stream", { withCredentials: true });
  state.es = es;
  es.addEventListener("open", () => {
    setStream("live");
    if (state.streamHadError) {
      state.streamHadError = false;
      loadAlerts();
    }
  });
  es.addEventListener("alert", (e) => {
    try {
      onAlertChange(JSON.parse(e.data));
    } catch (err) {
      console.warn("bad alert event", err);
    }
  });
  es.addEventListener("camera", (e) => {
    try {
      onWallCameraStatus(JSON.parse(e.data));
    } catch (err) {
      console.warn("bad camera event", err);
    }
  });
  es.addEventListener("error", () => {
    if (state.es !== es) return;
    state.streamHadError = true;
    setStream("down");
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (HTTP error, e.g. 401): check the session, then start over.
      state.es = null;
      setTimeout(async () => {
        if (!state.user || state.es) return;
        try {
          await api("GET", "/api/v1/auth/me");
          connectStream();
        } catch (e) {
          if (e.status !== 401) setTimeout(() => state.user && !state.es && connectStream(), 5000);
        }
      }, 3000);
    }
  });
}

// ---------------------------------------------------------------- detail

async function selectAlert(id) {
  state.selectedId = id;
  for (const [rid, li] of state.rows) li.classList.toggle("selected", rid === id);
  selectTab("detail");
  const a = state.alerts.get(id);
  state.detail = a ? { alert: a, history: [], snapshots: [] } : null;
  state.snapshotId = a?.snapshot ?? null;
  $("#note-input").value = "";
  $("#action-msg").hidden = true;
  renderDetail();
  await loadDetail(id);
}

async function loadDetail(id, { quiet = false } = {}) {
  try {
    const d = await api("GET", `/api/v1/alerts/${encodeURIComponent(id)}`);
    if (state.selectedId !== id) return;
    const alert = d?.alert || d;
    state.detail = {
      alert,
      history: Array.isArray(d?.history) ? d.history : [],
      snapshots: Array.isArray(d?.snapshots) ? d.snapshots : [],
    };
    const ids = state.detail.snapshots.map((x) => String(x.id));
    if (!state.snapshotId || !ids.includes(String(state.snapshotId))) {
      state.snapshotId = alert?.snapshot ?? state.detail.snapshots[0]?.id ?? null;
    }
    renderDetail();
  } catch (e) {
    if (!quiet && e.status !== 401) toast(e.message, "error");
  }
}

function fact(label, value, testid) {
  if (value === undefined || value === null || value === "") return [];
  return [h("dt", {}, label), h("dd", testid ? { "data-testid": testid } : {}, value)];
}

function renderDetail() {
  const d = state.detail;
  const panel = $("#detail");
  $("#detail-none").hidden = !!d;
  $("#detail-body").hidden = !d;
  if (!d) {
    delete panel.dataset.alertId;
    showAlertClip(null, state.user);
    return;
  }
  const a = d.alert || {};
  panel.dataset.alertId = String(a.id);
  panel.dataset.state = a.state || "";
  const sev = $("#detail-severity");
  sev.className = `sev-badge big sev-${a.severity}`;
  sev.textContent = sevLabel(a.severity);
  $("#detail-title").textContent = alertTitle(a);
  const st = $("#detail-state");
  st.className = `state-badge big st-${a.state}`;
  st.dataset.state = a.state || "";
  st.textContent = stateLabel(a.state);
  const live = liveCameraOf(a);
  $("#detail-live").hidden = !live;
  $("#detail-live").dataset.camera = live || "";
  // Playback of the same camera from just before the alert was raised.
  const raised = parseTime(a.raised_at);
  $("#detail-playback").hidden = !live || !raised;
  $("#detail-playback").dataset.camera = live || "";
  $("#detail-playback").dataset.at = raised ? String(raised.getTime() - ALERT_PREROLL_MS) : "";
  showAlertClip(a, state.user);

  $("#detail-facts").replaceChildren(
    ...fact(t("detail.kind"), `${kindLabel(a.kind)} (${a.kind})`),
    ...fact(t("detail.community"), a.community && nameAndId("communities", a.community)),
    ...fact(t("detail.gate"), a.gate && nameAndId("gates", a.gate)),
    ...fact(t("detail.camera"), a.camera && nameAndId("cameras", a.camera)),
    ...fact(t("detail.zone"), a.zone && zoneNameAndId(a.camera, a.zone)),
    ...fact(t("detail.raised_at"), a.raised_at && `${fmtTime(a.raised_at)} (${fmtAgo(a.raised_at)})`),
    ...fact(t("detail.last_seen_at"), a.last_seen_at && a.count > 1 ? fmtTime(a.last_seen_at) : null),
    ...fact(t("detail.count"), a.count > 1 ? String(a.count) : null),
    ...fact(t("detail.ack_deadline"), a.ack_deadline && !a.acknowledged_at ? fmtTime(a.ack_deadline) : null),
    ...fact(t("detail.acknowledged_at"), a.acknowledged_at && fmtTime(a.acknowledged_at)),
    ...fact(t("detail.escalated_at"), a.escalated_at && fmtTime(a.escalated_at)),
    ...fact(t("detail.resolved_at"), a.resolved_at && fmtTime(a.resolved_at)),
  );

  const can = {
    acknowledge: a.state === "open" || a.state === "escalated",
    resolve: a.state !== "resolved",
    escalate: a.state === "open" || a.state === "acknowledged",
    note: true,
  };
  for (const b of $$("[data-action]")) b.disabled = !can[b.dataset.action] || d.busy === true;

  renderSnapshot(d);

  // Consecutive repeats (a person lingering, a door alarm ringing on) fold into one line.
  const lines = foldHistory(d.history);
  $("#detail-history").replaceChildren(
    ...(lines.length
      ? lines.map(({ entry: e, repeats }) =>
          repeats
            ? h(
                "li",
                { class: "hist hist-repeated", "data-testid": "history-repeats", dataset: { count: repeats.length } },
                h("span", { class: "hist-time" }, fmtTime(repeats[0].at)),
                h("span", { class: "hist-action" }, repeatsText(repeats)),
                h("span", { class: "hist-actor" }, actorText(repeats[0])),
              )
            : h(
                "li",
                { class: `hist hist-${e.action}`, "data-testid": "history-entry", dataset: { action: e.action || "" } },
                h("span", { class: "hist-time" }, fmtTime(e.at)),
                h("span", { class: "hist-action" }, tOr(`change.${e.action}`, e.action || "")),
                e.from_state || e.to_state
                  ? h(
                      "span",
                      { class: "hist-states muted" },
                      `${e.from_state ? stateLabel(e.from_state) : "—"} → ${e.to_state ? stateLabel(e.to_state) : "—"}`,
                    )
                  : null,
                h("span", { class: "hist-actor" }, actorText(e)),
                e.note ? histNote(e, a) : null,
              ),
        )
      : [h("li", { class: "empty" }, t("detail.no_history"))]),
  );
}

/** A history entry's note; the rules engine's English original, when retold, as its tooltip. */
function histNote(e, a) {
  const text = noteText(e, a);
  return h("div", { class: "hist-note", title: text !== e.note ? e.note : null }, text);
}

function renderSnapshot(d) {
  const img = $("#snapshot-img");
  const none = $("#snapshot-none");
  const boxes = $("#snapshot-boxes");
  const snapId = state.snapshotId;
  const meta = d.snapshots.find((x) => String(x.id) === String(snapId));
  if (!snapId) {
    img.hidden = true;
    img.removeAttribute("src");
    delete img.dataset.snapshotId;
    none.hidden = false;
    none.textContent = t("detail.no_snapshot");
    boxes.replaceChildren();
  } else {
    none.hidden = true;
    if (img.dataset.snapshotId !== String(snapId)) {
      img.dataset.snapshotId = String(snapId);
      img.dataset.loaded = "false";
      img.hidden = false;
      img.onload = () => {
        img.dataset.loaded = "true";
      };
      img.onerror = () => {
        img.dataset.loaded = "error";
        img.hidden = true;
        none.hidden = false;
        none.textContent = t("detail.snapshot_failed");
      };
      img.src = `/api/v1/snapshots/${encodeURIComponent(snapId)}`;
    }
    img.alt = t("detail.snapshot");
    const list = Array.isArray(meta?.boxes) ? meta.boxes : [];
    boxes.replaceChildren(
      ...list
        .filter((b) => Array.isArray(b) && b.length === 4)
        .map(([x0, y0, x1, y1]) => {
          const el = h("div", { class: "box" });
          // CSSOM properties (not a style attribute), which the CSP allows.
          el.style.left = `${Math.max(0, Math.min(1, x0)) * 100}%`;
          el.style.top = `${Math.max(0, Math.min(1, y0)) * 100}%`;
          el.style.width = `${Math.max(0, x1 - x0) * 100}%`;
          el.style.height = `${Math.max(0, y1 - y0) * 100}%`;
          return el;
        }),
    );
  }
  boxes.hidden = !$("#boxes-toggle").checked;
  const strip = $("#snapshot-strip");
  strip.replaceChildren(
    ...(d.snapshots.length > 1
      ? d.snapshots.map((x) =>
          h(
            "button",
            {
              type: "button",
              class: `strip-item${String(x.id) === String(snapId) ? " active" : ""}`,
              onclick: () => {
                state.snapshotId = x.id;
                renderDetail();
              },
            },
            `${fmtTime(x.taken_at, false)}${x.camera ? ` · ${nameOf("cameras", x.camera)}` : ""}`,
          ),
        )
      : []),
  );
}

async function doAction(action) {
  const d = state.detail;
  if (!d || !d.alert) return;
  const id = String(d.alert.id);
  const note = $("#note-input").value.trim();
  if (action === "note" && !note) {
    showActionMsg(t("detail.note_required"), "error");
    return;
  }
  d.busy = true;
  renderDetail();
  try {
    const updated = await api(
      "POST",
      `/api/v1/alerts/${encodeURIComponent(id)}/${action}`,
      note ? { note } : {},
    );
    const a = updated?.alert || updated;
    if (a && a.id) {
      upsertAlert(a);
      if (state.detail && state.selectedId === id) state.detail.alert = a;
    }
    $("#note-input").value = "";
    showActionMsg(t("detail.done", { action: t(`detail.${action === "note" ? "add_note" : action}`) }), "ok");
    await loadDetail(id, { quiet: true });
  } catch (e) {
    if (e.status !== 401) showActionMsg(t("detail.failed", { msg: e.message }), "error");
  } finally {
    if (state.detail) state.detail.busy = false;
    renderDetail();
  }
}

function showActionMsg(msg, kind) {
  const el = $("#action-msg");
  el.textContent = msg;
  el.dataset.kind = kind;
  el.hidden = false;
}

// ---------------------------------------------------------------- tabs

function selectTab(tab) {
  state.tab = tab;
  for (const b of $$(".tab")) {
    b.classList.toggle("active", b.dataset.tab === tab);
    b.setAttribute("aria-selected", b.dataset.tab === tab ? "true" : "false");
  }
  for (const p of $$(".tab-panel")) p.hidden = p.dataset.panel !== tab;
  if (tab === "cameras") showWall();
  else hideWall();
  if (tab === "playback") showPlayback(state.user);
  else hidePlayback();
  if (tab !== "detail") $("#clip-video").pause();
  if (tab === "gates") loadGates();
  if (tab === "figures") loadFigures();
  if (tab === "admin") showAdminPage();
  else hideAdmin();
}

// ---------------------------------------------------------------- cameras

// The camera wall is wall.js (its players, player.js); the tab switch, the alert stream's
// camera events, the language and new names reach it from here.

/** The alert detail's live button: that camera alone on the wall, playing its main stream. */
function openLive(cameraId) {
  if (!cameraId) return;
  openWallCamera(cameraId);
  selectTab("cameras");
}

// ---------------------------------------------------------------- gates

async function loadGates() {
  try {
    const list = await api("GET", "/api/v1/gates");
    state.gates = Array.isArray(list) ? list : [];
    renderGates();
    if (state.gateId) loadGateEvents(state.gateId);
  } catch (e) {
    if (e.status !== 401) toast(e.message, "error");
  }
}

const gateState = (g) => (typeof g?.status === "string" ? g.status : g?.status?.state || "unknown");

function renderGates() {
  $("#gate-list").replaceChildren(
    ...state.gates.map((g) => {
      const st = gateState(g);
      const events = typeof g.events === "number" ? g.events : g.events?.total ?? g.events?.count;
      return h(
        "li",
        {
          class: `gate-item${String(g.id) === String(state.gateId) ? " selected" : ""}`,
          "data-testid": "gate-row",
          dataset: { gateId: String(g.id), state: st },
          tabindex: "0",
          onclick: () => {
            state.gateId = String(g.id);
            renderGates();
            loadGateEvents(state.gateId);
          },
        },
        h("span", { class: `gate-dot gs-${st}` }),
        h(
          "div",
          { class: "gate-main" },
          h("div", { class: "gate-name" }, g.name || nameOf("gates", g.id)),
          h(
            "div",
            { class: "muted" },
            [nameOf("communities", g.community), g.firmware && `${t("gates.firmware")} ${g.firmware}`].filter(Boolean).join(" · "),
          ),
        ),
        h(
          "div",
          { class: "gate-side" },
          h("span", { class: `gate-status gs-${st}` }, tOr(`gatestate.${st}`, st)),
          h("span", { class: "muted" }, g.last_seen ? `${t("gates.last_seen")} ${fmtAgo(g.last_seen)}` : ""),
          events !== undefined && events !== null ? h("span", { class: "muted" }, `${t("gates.events")} ${events}`) : null,
        ),
      );
    }),
  );
  $("#gate-empty").hidden = state.gates.length > 0;
}

async function loadGateEvents(id) {
  const g = state.gates.find((x) => String(x.id) === id);
  $("#gate-events-title").textContent = t("gates.recent", { gate: g?.name || id });
  try {
    const list = await api("GET", `/api/v1/gates/${encodeURIComponent(id)}/events?limit=20`);
    if (state.gateId !== id) return;
    state.gateEvents = Array.isArray(list) ? list : [];
  } catch (e) {
    state.gateEvents = [];
    if (e.status !== 401) toast(e.message, "error");
  }
  renderGateEvents();
}

function renderGateEvents() {
  const evs = state.gateEvents || [];
  $("#gate-events-table").hidden = evs.length === 0;
  $("#gate-events-empty").hidden = evs.length > 0 || state.gateEvents === null;
  $("#gate-events").replaceChildren(
    ...evs.map((e) => {
      const ev = e.event || {};
      const who = [ev.person?.name ?? ev.person_name, ev.person?.card ?? ev.card].filter(Boolean).join(" / ");
      const alarm = ["door_forced_open", "door_held_open", "duress", "tamper", "blacklisted", "alarm"].includes(ev.kind);
      return h(
        "tr",
        { class: alarm ? "gev-alarm" : "" },
        h("td", {}, fmtTime(e.received_at || ev.received_at)),
        h("td", {}, tOr(`gev.${ev.kind}`, ev.kind || "?")),
        h("td", {}, who || "—"),
      );
    }),
  );
}

// ---------------------------------------------------------------- figures

function dateInput(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Local midnight of a "YYYY-MM-DD" (a day that exists), else null. */
function parseDate(v) {
  const m = /^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$/.exec(v);
  if (!m) return null;
  const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return d.getMonth() === Number(m[2]) - 1 && d.getDate() === Number(m[3]) ? d : null;
}

async function loadFigures() {
  const fromEl = $("#figures-from");
  const toEl = $("#figures-to");
  if (!fromEl.value || !toEl.value) {
    const now = new Date();
    toEl.value = dateInput(now);
    fromEl.value = dateInput(new Date(now.getTime() - 6 * 86400_000));
  }
  const from = parseDate(fromEl.value);
  const to = parseDate(toEl.value);
  fromEl.classList.toggle("invalid", !from);
  toEl.classList.toggle("invalid", !to);
  if (!from || !to) {
    toast(t("figures.bad_date"), "error");
    return;
  }
  to.setDate(to.getDate() + 1);
  const q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
  try {
    const rows = await api("GET", `/api/v1/figures/response-times?${q}`);
    state.figures = Array.isArray(rows) ? rows : [];
  } catch (e) {
    state.figures = [];
    if (e.status !== 401) toast(e.message, "error");
  }
  renderFigures();
}

function renderFigures() {
  const rows = (state.figures || []).slice().sort((a, b) => (b.raised || 0) - (a.raised || 0));
  $("#figures-empty").hidden = rows.length > 0;
  $("#figures-table").hidden = rows.length === 0;
  const stat = (x) =>
    x && x.count ? `${x.count} / ${fmtMins(x.mean_secs)} / ${fmtMins(x.p50_secs)} / ${fmtMins(x.p90_secs)}` : "—";
  $("#figures-rows").replaceChildren(
    ...rows.map((r) =>
      h(
        "tr",
        {},
        h("td", {}, r.community ? nameOf("communities", r.community) : "—"),
        h("td", {}, kindLabel(r.kind)),
        h("td", { class: "num" }, r.raised ?? 0),
        h("td", { class: "num" }, stat(r.to_acknowledge)),
        h("td", { class: "num" }, stat(r.to_resolve)),
      ),
    ),
  );
  $("#figures-chart").replaceChildren(rows.length ? barChart(rows) : "");
}

/** Horizontal grouped bars: P50 and P90 minutes to acknowledge per community and kind. */
function barChart(rows) {
  const data = rows.slice(0, 24).map((r) => ({
    label: kindLabel(r.kind),
    sub: r.community ? nameOf("communities", r.community) : "",
    p50: r.to_acknowledge?.p50_secs != null ? r.to_acknowledge.p50_secs / 60 : null,
    p90: r.to_acknowledge?.p90_secs != null ? r.to_acknowledge.p90_secs / 60 : null,
  }));
  const max = Math.max(1, ...data.flatMap((d) => [d.p50 ?? 0, d.p90 ?? 0]));
  const step = niceStep(max / 5);
  const top = Math.ceil(max / step) * step;
  const W = 1280;
  const left = 260;
  const right = 70;
  const rowH = 46;
  const head = 34;
  const H = head + data.length * rowH + 28;
  const x = (v) => left + ((W - left - right) * v) / top;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", class: "bar-chart" });
  // legend
  svg.append(
    s("rect", { x: left, y: 8, width: 14, height: 14, class: "bar-p50" }),
    s("text", { x: left + 20, y: 20, class: "legend" }, t("figures.p50")),
    s("rect", { x: left + 150, y: 8, width: 14, height: 14, class: "bar-p90" }),
    s("text", { x: left + 170, y: 20, class: "legend" }, t("figures.p90")),
  );
  for (let v = 0; v <= top + 1e-9; v += step) {
    svg.append(
      s("line", { x1: x(v), x2: x(v), y1: head, y2: H - 24, class: "grid" }),
      s("text", { x: x(v), y: H - 8, class: "tick", "text-anchor": "middle" }, fmtNum(v)),
    );
  }
  data.forEach((d, i) => {
    const y = head + i * rowH;
    svg.append(
      s("text", { x: left - 12, y: y + 19, class: "label", "text-anchor": "end" }, d.label),
      s("text", { x: left - 12, y: y + 36, class: "sublabel", "text-anchor": "end" }, d.sub),
    );
    const bar = (v, dy, cls) => {
      if (v === null) {
        svg.append(s("text", { x: left + 6, y: y + dy + 13, class: "na" }, "—"));
        return;
      }
      const w = Math.max(2, x(v) - left);
      svg.append(
        s("rect", { x: left, y: y + dy, width: w, height: 17, rx: 2, class: cls }),
        s("text", { x: left + w + 6, y: y + dy + 13, class: "value" }, fmtNum(v)),
      );
    };
    bar(d.p50, 4, "bar-p50");
    bar(d.p90, 23, "bar-p90");
  });
  return svg;
}

function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

const fmtNum = (v) => (v < 10 ? (Math.round(v * 10) / 10).toString() : Math.round(v).toString());

// ---------------------------------------------------------------- language

function rerenderAll() {
  applyStatic();
  renderHeader();
  for (const [id, li] of state.rows) fillRow(li, state.alerts.get(id));
  renderAlertList();
  renderDetail();
  if (state.tab === "cameras") renderWall();
  if (state.tab === "playback") renderPlayback();
  if (state.tab === "gates") {
    renderGates();
    if (state.gateId) {
      const g = state.gates.find((x) => String(x.id) === state.gateId);
      $("#gate-events-title").textContent = t("gates.recent", { gate: g?.name || state.gateId });
      renderGateEvents();
    }
  }
  if (state.tab === "figures" && state.figures) renderFigures();
  if (state.tab === "admin") rerenderAdmin();
}

/** New display names (a load at sign-in, or an admin's change): show them where ids are. */
function onNames() {
  if (!state.user) return;
  renderHeader();
  for (const [id, li] of state.rows) fillRow(li, state.alerts.get(id));
  renderDetail();
  if (state.tab === "cameras") renderWall();
  if (state.tab === "playback") renderPlayback();
  if (state.tab === "gates") renderGates();
  if (state.tab === "admin") renderAdminRows();
}

// ---------------------------------------------------------------- start

function wire() {
  setUnauthorizedHandler(onUnauthorized);
  onTopology(onNames);
  $("#login-form").addEventListener("submit", onLoginSubmit);
  $("#logout").addEventListener("click", logout);
  for (const b of $$(".lang-btn")) {
    b.addEventListener("click", () => {
      setLang(b.dataset.lang);
      rerenderAll();
      for (const x of $$(".lang-btn")) x.classList.toggle("active", x.dataset.lang === getLang());
    });
  }
  $("#sound-toggle").addEventListener("click", () => {
    sound.muted = !sound.muted;
    localStorage.setItem("xl.muted", sound.muted ? "1" : "0");
    unlockAudio();
    renderSoundToggle();
  });
  for (const b of $$(".tab")) b.addEventListener("click", () => selectTab(b.dataset.tab));
  for (const b of $$(".seg-btn[data-filter]")) {
    b.addEventListener("click", () => {
      state.filter = b.dataset.filter;
      renderAlertList();
    });
  }
  initWall();
  initPlayback({ openAlert: selectAlert });
  $("#detail-live").addEventListener("click", (e) => openLive(e.currentTarget.dataset.camera));
  $("#detail-playback").addEventListener("click", (e) => {
    const { camera, at } = e.currentTarget.dataset;
    if (!camera || !at) return;
    openPlaybackAt(camera, Number(at));
    selectTab("playback");
  });
  for (const b of $$("[data-action]")) b.addEventListener("click", () => doAction(b.dataset.action));
  for (const b of $$("[data-admin-page]")) b.addEventListener("click", () => showAdminPage(b.dataset.adminPage));
  const boxes = $("#boxes-toggle");
  boxes.checked = localStorage.getItem("xl.boxes") === "1";
  boxes.addEventListener("change", () => {
    localStorage.setItem("xl.boxes", boxes.checked ? "1" : "0");
    $("#snapshot-boxes").hidden = !boxes.checked;
  });
  $("#figures-form").addEventListener("submit", (e) => {
    e.preventDefault();
    loadFigures();
  });
  // Browsers keep audio locked until the user interacts with the page.
  for (const ev of ["pointerdown", "keydown"]) document.addEventListener(ev, unlockAudio, { passive: true });
}

async function boot() {
  wire();
  applyStatic();
  for (const b of $$(".lang-btn")) b.classList.toggle("active", b.dataset.lang === getLang());
  try {
    const me = await api("GET", "/api/v1/auth/me");
    await startConsole(me?.user || me);
  } catch (_) {
    showLogin();
  }
}

boot();
