// The zone editor of one camera. The picture is the running camera's latest key frame
// (`/thumbnail`), else its latest snapshot, else the frame of its last "test connection", else a
// grey 16:9 canvas; the zones are drawn over it. A click adds
// a corner to the zone being drawn, in normalised image coordinates (0 to 1, origin top left,
// as xl_core::zone::Zone keeps them); close, undo and clear finish or correct it. Each zone has
// an id, an optional display name (what alerts show instead of the id) and a weekly schedule
// (windows of days and a local start and end time; none = always).
// Saving sends the whole camera with all its zones (PUT, If-Match: the revision read); the
// API's checks (fewer than three corners, crossing edges, duplicate ids) come back as its 400
// message, shown beside the form.

import { t } from "./i18n.js";
import { h, fill } from "./ui.js";

export const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/** What people read for a zone: its name, else its id. */
const shownName = (zone) => zone.name || zone.id || "?";

/** Clicks this close (CSS pixels) to the first corner close the polygon. */
const CLOSE_RADIUS_PX = 12;
/** The picture's size when there is no frame: 16:9. */
const BLANK = { width: 1280, height: 720 };

const round4 = (v) => Math.round(v * 10_000) / 10_000;
const clamp01 = (v) => Math.min(1, Math.max(0, v));

/** "HH:MM" for a time input, from the API's "HH:MM:SS" (seconds kept when not zero). */
function hhmm(v) {
  const s = String(v || "");
  return s.length >= 8 && s.slice(5, 8) !== ":00" ? s.slice(0, 8) : s.slice(0, 5);
}

/**
 * A time typed as 24-hour text ("8:00", "08:00", "18:30:15") the way the API takes it
 * ("08:00", "18:30:15"), or null when it is not one. The schedule uses text inputs, not
 * <input type="time">, which shows 12:00 AM in an English browser whatever the console's
 * language.
 */
export function parseHhmm(v) {
  const m = /^\s*([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?\s*$/.exec(String(v ?? ""));
  if (!m) return null;
  return `${m[1].padStart(2, "0")}:${m[2]}${m[3] && m[3] !== "00" ? `:${m[3]}` : ""}`;
}

/** A 24-hour "HH:MM" text input bound to `range[key]`, marked invalid while it is no time. */
function timeInput(range, key, label, readOnly, onChange) {
  const mark = (el) => {
    const bad = parseHhmm(el.value) === null;
    el.classList.toggle("invalid", bad);
    el.setAttribute("aria-invalid", bad ? "true" : "false");
  };
  const el = h("input", {
    type: "text",
    class: "time-input",
    inputmode: "numeric",
    maxlength: "9",
    placeholder: "HH:MM",
    value: range[key],
    "aria-label": label,
    "data-testid": `zone-${key}`,
    disabled: readOnly,
    oninput: (e) => {
      range[key] = e.target.value;
      mark(e.target);
      onChange();
    },
    // Leaving the field writes the time the way it is saved ("8:00" becomes "08:00").
    onchange: (e) => {
      const v = parseHhmm(e.target.value);
      if (v) e.target.value = range[key] = v;
    },
  });
  if (range[key]) mark(el);
  return el;
}

/** One line about a schedule, for the zone list. */
export function scheduleSummary(windows) {
  if (!windows || !windows.length) return t("zones.always");
  const w = windows[0];
  if (windows.length === 1 && DAYS.every((d) => w.days.includes(d)) && hhmm(w.start) === hhmm(w.end)) {
    return t("zones.all_week");
  }
  return t("zones.windows", { n: windows.length });
}

/**
 * The weekly schedule of one zone: "always" (no windows), or per day a list of time ranges.
 * Ranges with the same times on several days become one window with those days.
 * Returns {el, windows() -> windows, or throws Error with the reason}.
 */
function scheduleEditor(initial, readOnly, onChange) {
  const perDay = Object.fromEntries(DAYS.map((d) => [d, []]));
  for (const w of initial || []) {
    for (const d of w.days || []) perDay[d]?.push({ start: hhmm(w.start), end: hhmm(w.end) });
  }
  let weekly = (initial || []).length > 0;
  const el = h("div", { class: "schedule", "data-testid": "zone-schedule" });
  const name = `sched-${Math.random().toString(36).slice(2)}`;

  const changed = () => {
    render();
    onChange();
  };

  function render() {
    const mode = (value, key, testid) =>
      h(
        "label",
        { class: "check" },
        h("input", {
          type: "radio",
          name,
          value,
          "data-testid": testid,
          checked: weekly === (value === "weekly"),
          disabled: readOnly,
          onchange: () => {
            weekly = value === "weekly";
            if (weekly && DAYS.every((d) => !perDay[d].length)) {
              for (const d of DAYS.slice(0, 5)) perDay[d].push({ start: "08:00", end: "18:00" });
            }
            changed();
          },
        }),
        h("span", {}, t(key)),
      );
    const rows = DAYS.map((d) =>
      h(
        "tr",
        { dataset: { day: d } },
        h("th", {}, t(`day.${d}`)),
        h(
          "td",
          {},
          perDay[d].map((r, i) =>
            h(
              "span",
              { class: "range" },
              timeInput(r, "start", t("zones.start"), readOnly, onChange),
              "–",
              timeInput(r, "end", t("zones.end"), readOnly, onChange),
              readOnly
                ? null
                : h("button", { type: "button", class: "btn btn-sm btn-ghost", title: t("zones.remove_range"), onclick: () => (perDay[d].splice(i, 1), changed()) }, "×"),
            ),
          ),
          readOnly
            ? null
            : h(
                "button",
                {
                  type: "button",
                  class: "btn btn-sm btn-ghost",
                  title: t("zones.add_range"),
                  onclick: () => (perDay[d].push({ start: "00:00", end: "00:00" }), changed()),
                },
                "+",
              ),
        ),
      ),
    );
    fill(el,
      h(
        "div",
        { class: "sched-mode" },
        mode("always", "zones.mode.always", "zone-always"),
        mode("weekly", "zones.mode.weekly", "zone-weekly"),
        readOnly
          ? null
          : h(
              "button",
              {
                type: "button",
                class: "btn btn-sm btn-ghost",
                "data-testid": "zone-all-week",
                onclick: () => {
                  weekly = true;
                  for (const d of DAYS) perDay[d] = [{ start: "00:00", end: "00:00" }];
                  changed();
                },
              },
              t("zones.all_week_button"),
            ),
      ),
      weekly ? h("table", { class: "sched-grid" }, h("tbody", {}, rows)) : null,
      h("p", { class: "muted small" }, t(weekly ? "zones.schedule_help" : "zones.always_help")),
    );
  }
  render();

  function windows() {
    if (!weekly) return [];
    const groups = new Map();
    for (const d of DAYS) {
      for (const r of perDay[d]) {
        if (!r.start || !r.end) throw new Error(t("zones.err.range"));
        const start = parseHhmm(r.start);
        const end = parseHhmm(r.end);
        if (!start || !end) throw new Error(t("zones.err.time", { value: start ? r.end : r.start }));
        const k = `${start}|${end}`;
        if (!groups.has(k)) groups.set(k, { days: [], start, end });
        const g = groups.get(k);
        if (!g.days.includes(d)) g.days.push(d);
      }
    }
    // No range at all would mean "always": say so rather than save that by surprise.
    if (!groups.size) throw new Error(t("zones.err.empty_week"));
    return [...groups.values()];
  }
  return { el, windows };
}

/**
 * The editor for `item` (a camera as the topology API lists it). `grabFrame(body)` probes a
 * URL for a frame; `save(entry, base)` PUTs the camera; `reload()` gives the camera as stored
 * now (after a 409). Returns {el, rerender()}.
 */
export function zoneEditor({ item, readOnly, probeFrame, grabFrame, save, reload, onClose }) {
  const st = {
    item,
    zones: [],
    cur: -1,
    bg: null,
    bgSource: "none",
    dirty: false,
    schedule: null,
  };
  const camera = () => st.item.entry;
  function reset(it) {
    st.item = it;
    st.zones = (it.entry.zones || []).map((z) => ({ zone: structuredClone(z), closed: z.polygon.length >= 3 }));
    st.cur = st.zones.length ? 0 : -1;
    st.dirty = false;
  }
  reset(item);

  const canvas = h("canvas", { class: "zone-canvas", "data-testid": "zone-canvas", width: BLANK.width, height: BLANK.height });
  const bgNote = h("p", { class: "muted small", "data-testid": "zone-background" });
  const list = h("div", { class: "zone-list" });
  const formBox = h("div", { class: "zone-form" });
  const errorEl = h("p", { class: "form-error", "data-testid": "zone-error", hidden: true });
  const msgEl = h("p", { class: "action-msg", "data-testid": "zone-message", hidden: true });
  const saveBtn = h("button", { type: "button", class: "btn btn-primary", "data-testid": "zone-save", onclick: onSave });
  const tools = h("div", { class: "zone-tools" });
  const head = h("div", { class: "panel-head" });
  const el = h(
    "div",
    { class: "zone-editor", "data-testid": "zone-editor", dataset: { cameraId: String(camera().id) } },
    head,
    h(
      "div",
      { class: "zone-layout" },
      h("div", { class: "zone-canvas-col" }, canvas, tools, bgNote),
      h("div", { class: "zone-side" }, list, formBox, errorEl, msgEl, readOnly ? null : h("div", { class: "form-buttons" }, saveBtn)),
    ),
  );

  // ------------------------------------------------------------ the picture

  function setBackground(img, source) {
    st.bg = img;
    st.bgSource = source;
    canvas.width = img ? img.naturalWidth : BLANK.width;
    canvas.height = img ? img.naturalHeight : BLANK.height;
    canvas.dataset.background = source;
    canvas.dataset.ready = "true";
    renderBgNote();
    draw();
  }

  function loadImage(src) {
    return new Promise((resolve) => {
      const img = new Image();
      img.onload = () => resolve(img.naturalWidth > 0 ? img : null);
      img.onerror = () => resolve(null);
      img.src = src;
    });
  }

  async function loadBackground() {
    const id = encodeURIComponent(camera().id);
    const live = await loadImage(`/api/v1/cameras/${id}/thumbnail?t=${Date.now()}`);
    if (live) return setBackground(live, "live");
    const latest = await loadImage(`/api/v1/cameras/${encodeURIComponent(camera().id)}/snapshot?t=${Date.now()}`);
    if (latest) return setBackground(latest, "snapshot");
    const probed = probeFrame ? await loadImage(probeFrame) : null;
    if (probed) return setBackground(probed, "probe");
    setBackground(null, "none");
  }

  /** "Grab a frame": probes the camera's RTSP URL (the stored password is not the console's to send). */
  async function grab() {
    const src = camera().sub || camera().main;
    if (src?.kind !== "rtsp") return;
    const body = { url: src.url };
    if (camera().username) body.username = camera().username;
    bgNote.textContent = t("admin.probe.running");
    try {
      const r = await grabFrame(body);
      const img = r?.snapshot ? await loadImage(r.snapshot) : null;
      if (img) return setBackground(img, "probe");
      renderBgNote(t("admin.probe.no_preview"));
    } catch (e) {
      renderBgNote(t("admin.probe.failed", { msg: e.message }));
    }
  }

  function renderBgNote(extra) {
    const src = camera().sub || camera().main;
    const canGrab = !readOnly && !["live", "snapshot"].includes(st.bgSource) && src?.kind === "rtsp";
    fill(bgNote,
      t(`zones.bg.${st.bgSource}`),
      extra ? ` ${extra}` : "",
      canGrab ? h("button", { type: "button", class: "btn btn-sm btn-ghost", "data-testid": "zone-grab", onclick: grab }, t("zones.grab")) : null,
    );
  }

  function draw() {
    const ctx = canvas.getContext("2d");
    const W = canvas.width;
    const H = canvas.height;
    ctx.clearRect(0, 0, W, H);
    ctx.fillStyle = "#5b6470";
    ctx.fillRect(0, 0, W, H);
    if (st.bg) ctx.drawImage(st.bg, 0, 0, W, H);
    const unit = Math.max(1, W / 640);
    ctx.lineJoin = "round";
    ctx.font = `${Math.round(14 * unit)}px sans-serif`;
    st.zones.forEach((z, i) => {
      const pts = z.zone.polygon.map(([x, y]) => [x * W, y * H]);
      if (!pts.length) return;
      const current = i === st.cur;
      const colour = current ? "57, 255, 136" : "255, 211, 77";
      const shut = z.closed || !current;
      ctx.beginPath();
      ctx.moveTo(...pts[0]);
      for (const p of pts.slice(1)) ctx.lineTo(...p);
      if (shut) ctx.closePath();
      if (shut && pts.length >= 3) {
        ctx.fillStyle = `rgba(${colour}, ${current ? 0.25 : 0.15})`;
        ctx.fill();
      }
      ctx.setLineDash([]);
      ctx.lineWidth = (current ? 3 : 2) * unit;
      ctx.strokeStyle = `rgb(${colour})`;
      ctx.stroke();
      if (current && !z.closed && pts.length >= 2) {
        // The edge that closing would add.
        ctx.beginPath();
        ctx.moveTo(...pts[pts.length - 1]);
        ctx.lineTo(...pts[0]);
        ctx.setLineDash([6 * unit, 6 * unit]);
        ctx.lineWidth = unit;
        ctx.stroke();
        ctx.setLineDash([]);
      }
      if (current) {
        pts.forEach(([x, y], k) => {
          ctx.beginPath();
          ctx.arc(x, y, (k === 0 ? 6 : 4) * unit, 0, Math.PI * 2);
          ctx.fillStyle = k === 0 ? "#ffffff" : `rgb(${colour})`;
          ctx.fill();
        });
      }
      // The zone's name (else its id) beside its first corner, inside the picture.
      ctx.fillStyle = `rgb(${colour})`;
      const above = pts[0][1] > 24 * unit;
      ctx.fillText(String(shownName(z.zone)), Math.min(pts[0][0] + 8 * unit, W - 80 * unit), pts[0][1] + (above ? -8 : 20) * unit);
    });
    canvas.dataset.points = String(st.zones[st.cur]?.zone.polygon.length ?? 0);
    canvas.dataset.closed = st.zones[st.cur]?.closed ? "true" : "false";
  }

  canvas.addEventListener("click", (e) => {
    if (readOnly) return;
    const r = canvas.getBoundingClientRect();
    if (!r.width || !r.height) return;
    if (st.cur < 0) addZone();
    const z = st.zones[st.cur];
    if (z.closed) {
      say(t("zones.closed_hint"), "error");
      return;
    }
    const pts = z.zone.polygon;
    if (pts.length >= 3) {
      const [fx, fy] = pts[0];
      const dx = e.clientX - r.left - fx * r.width;
      const dy = e.clientY - r.top - fy * r.height;
      if (Math.hypot(dx, dy) <= CLOSE_RADIUS_PX) {
        z.closed = true;
        changed();
        return;
      }
    }
    pts.push([round4(clamp01((e.clientX - r.left) / r.width)), round4(clamp01((e.clientY - r.top) / r.height))]);
    changed();
  });

  // ------------------------------------------------------------ zones

  function uniqueId() {
    for (let n = 1; ; n++) {
      const id = `zone-${n}`;
      if (!st.zones.some((z) => z.zone.id === id)) return id;
    }
  }

  function addZone() {
    st.zones.push({ zone: { id: uniqueId(), polygon: [], schedule: [] }, closed: false });
    st.cur = st.zones.length - 1;
    st.dirty = true;
    renderSide();
  }

  function select(i) {
    st.cur = i;
    renderSide();
    draw();
  }

  function changed() {
    st.dirty = true;
    msgEl.hidden = true;
    draw();
    renderList();
  }

  function say(text, kind = "ok") {
    msgEl.textContent = text;
    msgEl.dataset.kind = kind;
    msgEl.hidden = false;
  }

  function renderTools() {
    const z = st.zones[st.cur];
    const tool = (key, testid, f, disabled) =>
      h("button", { type: "button", class: "btn btn-sm btn-ghost", "data-testid": testid, disabled: readOnly || disabled, onclick: f }, t(key));
    fill(tools,
      tool("zones.close", "zone-close", () => {
        if (z.zone.polygon.length < 3) return say(t("zones.need_three"), "error");
        z.closed = true;
        changed();
      }, !z || z.closed),
      tool("zones.undo", "zone-undo", () => {
        if (z.closed) z.closed = false;
        else z.zone.polygon.pop();
        changed();
      }, !z || !z.zone.polygon.length),
      tool("zones.clear", "zone-clear", () => {
        z.zone.polygon = [];
        z.closed = false;
        changed();
      }, !z || !z.zone.polygon.length),
      h("span", { class: "muted small" }, readOnly ? "" : t("zones.draw_help")),
    );
  }

  function renderList() {
    renderTools();
    const rows = st.zones.map((z, i) =>
      h(
        "tr",
        { class: i === st.cur ? "selected" : "", "data-testid": "zone-row", dataset: { zoneId: z.zone.id } },
        h("td", { class: "mono" }, z.zone.id || "?"),
        h("td", { "data-testid": "zone-row-name" }, z.zone.name || "—"),
        h("td", { class: "num" }, String(z.zone.polygon.length)),
        h("td", {}, scheduleSummary(z.zone.schedule)),
        h(
          "td",
          { class: "row-actions" },
          h("button", { type: "button", class: "btn btn-sm btn-ghost", "data-testid": "zone-select", onclick: () => select(i) }, t(readOnly ? "admin.view" : "admin.edit")),
          readOnly
            ? null
            : h(
                "button",
                {
                  type: "button",
                  class: "btn btn-sm btn-danger-ghost",
                  "data-testid": "zone-delete",
                  onclick: () => {
                    const shown = z.zone.name ? `${z.zone.name} (${z.zone.id})` : z.zone.id;
                    if (!window.confirm(t("zones.confirm_delete", { id: shown }))) return;
                    st.zones.splice(i, 1);
                    st.cur = Math.min(st.cur, st.zones.length - 1);
                    st.dirty = true;
                    renderSide();
                    draw();
                    say(t("zones.deleted_unsaved"));
                  },
                },
                t("admin.delete"),
              ),
        ),
      ),
    );
    fill(list,
      h(
        "div",
        { class: "section-head" },
        h("h3", {}, t("zones.list")),
        readOnly ? null : h("button", { type: "button", class: "btn btn-sm btn-ghost", "data-testid": "zone-new", onclick: () => (addZone(), draw()) }, t("zones.new")),
      ),
      rows.length
        ? h(
            "table",
            { class: "table" },
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                h("th", {}, t("zones.col.id")),
                h("th", {}, t("zones.col.name")),
                h("th", {}, t("zones.col.corners")),
                h("th", {}, t("zones.col.schedule")),
                h("th", {}),
              ),
            ),
            h("tbody", {}, rows),
          )
        : h("p", { class: "muted" }, t(readOnly ? "zones.none" : "zones.none_draw")),
    );
    saveBtn.textContent = t("zones.save");
    saveBtn.classList.toggle("dirty", st.dirty);
  }

  function renderForm() {
    const z = st.zones[st.cur];
    if (!z) {
      st.schedule = null;
      formBox.replaceChildren();
      return;
    }
    st.schedule = scheduleEditor(z.zone.schedule, readOnly, () => {
      try {
        z.zone.schedule = st.schedule.windows();
        z.scheduleError = null;
      } catch (e) {
        z.scheduleError = e.message;
      }
      changed();
    });
    fill(formBox,
      h("h3", {}, t("zones.zone")),
      h(
        "label",
        { class: "field" },
        h("span", { class: "field-label" }, t("zones.col.id")),
        h("input", {
          value: z.zone.id,
          "data-testid": "zone-id",
          readonly: readOnly,
          spellcheck: "false",
          oninput: (e) => {
            z.zone.id = e.target.value.trim();
            changed();
          },
        }),
        h("small", { class: "field-help muted" }, t("zones.id_help")),
      ),
      h(
        "label",
        { class: "field" },
        h("span", { class: "field-label" }, t("zones.col.name")),
        h("input", {
          value: z.zone.name ?? "",
          "data-testid": "zone-name",
          readonly: readOnly,
          oninput: (e) => {
            // Trimmed as the hub trims it; blank is no name (the id is shown).
            z.zone.name = e.target.value.trim() || null;
            changed();
          },
        }),
        h("small", { class: "field-help muted" }, t("zones.name_help")),
      ),
      h("div", { class: "field" }, h("span", { class: "field-label" }, t("zones.schedule")), st.schedule.el),
    );
  }

  function renderSide() {
    renderList();
    renderForm();
  }

  function renderHead() {
    const c = camera();
    fill(head,
      h("button", { type: "button", class: "btn btn-ghost", "data-testid": "zone-back", onclick: leave }, t("zones.back")),
      h("h2", {}, t("zones.title", { camera: c.name && c.name !== c.id ? `${c.name} (${c.id})` : c.id })),
      readOnly ? h("span", { class: "badge badge-config", "data-testid": "from-config" }, t("admin.from_config")) : null,
    );
  }

  function leave() {
    if (st.dirty && !readOnly && !window.confirm(t("zones.confirm_leave"))) return;
    onClose();
  }

  // ------------------------------------------------------------ saving

  async function onSave() {
    errorEl.hidden = true;
    msgEl.hidden = true;
    const bad = st.zones.findIndex((z) => z.scheduleError);
    if (bad >= 0) {
      select(bad);
      return showError(`zones[${bad}].schedule`, st.zones[bad].scheduleError);
    }
    const entry = structuredClone(camera());
    entry.zones = st.zones.map((z) => z.zone);
    // Never in an answer; absent keeps the stored password.
    delete entry.password;
    saveBtn.disabled = true;
    try {
      const saved = await save(entry, st.item);
      const keep = st.cur;
      reset(saved);
      st.cur = Math.min(keep, st.zones.length - 1);
      renderSide();
      draw();
      el.dataset.saved = String(saved.meta?.revision ?? "");
      say(t("zones.saved"));
    } catch (e) {
      if (e.status === 409) {
        const before = st.item.meta?.revision;
        const fresh = await reload().catch(() => null);
        if (fresh && fresh.meta?.revision === before) return showError(null, e.message);
        if (!fresh) return showError(null, t("admin.conflict_gone"));
        // Someone else saved this camera: start again from what is stored.
        reset(fresh);
        renderSide();
        draw();
        return showError(null, t("admin.conflict"));
      }
      if (e.status === 401) return;
      showError(e.field, e.message);
    } finally {
      saveBtn.disabled = false;
    }
  }

  /** Shows the API's message beside the form, selecting the zone it names (`zones[2]...`). */
  function showError(field, message) {
    const m = /^zones\[(\d+)\]/.exec(field || "");
    if (m && Number(m[1]) < st.zones.length && Number(m[1]) !== st.cur) select(Number(m[1]));
    errorEl.textContent = field ? `${message}` : message;
    errorEl.dataset.field = field || "";
    errorEl.hidden = false;
  }

  function rerender() {
    renderHead();
    renderSide();
    renderBgNote();
    draw();
  }

  rerender();
  loadBackground();
  return { el, rerender };
}
