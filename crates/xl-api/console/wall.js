// The camera wall (the cameras tab): on the left a tree of stations, communities and grids
// with filters by network and by status, each with its count of cameras; on the right a page
// of 1, 4, 9 or 16 tiles, paged through however many cameras the chosen node has.
//
// Only the tiles of the page shown hold players (player.js): an online camera plays its sub
// stream live (the main stream when the page has one tile); any other shows its latest key
// frame (GET /api/v1/cameras/{id}/thumbnail, every 5 s; the alert snapshot when it has none)
// under an overlay saying why (offline and the reason, connecting, reconnecting). A tile
// double-clicked (or Enter) is enlarged alone on its main stream; double-click, Esc or the
// back button return to the page. Leaving the tab stops every player.
//
// Names and the tree come from the topology (topology.js); the cameras, their status and
// their community from GET /api/v1/cameras, kept current by the alert stream's camera events
// (app.js passes them to onWallCameraStatus) and a reload every 10 s while shown.

import { t, tOr } from "./i18n.js";
import { $, $$, h, api, toast } from "./ui.js";
import { items, item, nameOf } from "./topology.js";
import { LivePlayer, CLOSE_GONE, CLOSE_FORBIDDEN } from "./player.js";

const LAYOUTS = [1, 4, 9, 16];
const NETWORKS = ["community", "skynet", "private"];
const THUMB_REFRESH_MS = 5000;
const LIST_REFRESH_MS = 10_000;

const wall = {
  cameras: [],
  loaded: false,
  visible: false,
  /** "all", "s:STATION" ("s:" for communities of no station), "c:COMMUNITY" or "g:GRID". */
  node: "all",
  network: "all",
  /** "all", "online" or "offline" (anything not online). */
  status: "all",
  layout: storedLayout(),
  page: 0,
  /** The camera shown alone on its main stream, or null. */
  enlarged: null,
  /** camera id -> tile of the page shown. */
  tiles: new Map(),
  timers: [],
  reloadTimer: null,
};

function storedLayout() {
  try {
    const n = Number(localStorage.getItem("xl.wall.layout"));
    if (LAYOUTS.includes(n)) return n;
  } catch (_) {
    /* storage unavailable */
  }
  return 4;
}

const COLLATOR = new Intl.Collator("zh-CN", { numeric: true });
const ZH_DIGITS = { 零: 0, 〇: 0, 一: 1, 二: 2, 两: 2, 三: 3, 四: 4, 五: 5, 六: 6, 七: 7, 八: 8, 九: 9 };

/** Compares names as a person reads them: 第二网格 before 第十网格, cam-2 before cam-10. */
function compareNames(a, b) {
  // Chinese numbers as digits, for the comparison only: 第十二网格 -> 第12网格.
  const digits = (s) =>
    String(s).replace(/[零〇一二两三四五六七八九十百]+/g, (m) => {
      let total = 0;
      let digit = 0;
      for (const ch of m) {
        if (ch === "百" || ch === "十") {
          total += (digit || 1) * (ch === "百" ? 100 : 10);
          digit = 0;
        } else digit = ZH_DIGITS[ch];
      }
      return String(total + digit);
    });
  return COLLATOR.compare(digits(a), digits(b));
}

const camState = (c) => (typeof c?.status === "string" ? c.status : c?.status?.state || "offline");
const camReason = (c) => c?.status_reason || c?.status?.reason || "";
const stationOf = (communityId) => item("communities", communityId)?.entry?.station || "";
const gridOf = (cameraId) => item("cameras", cameraId)?.entry?.grid || "";
/** Whether the hub relays the camera live: its streams are RTSP (a file stand-in is not). */
function hasLive(cameraId) {
  const e = item("cameras", cameraId)?.entry;
  const sources = [e?.main, e?.sub].filter(Boolean);
  return !e || sources.length === 0 || sources.some((s) => s.kind !== "file");
}
const findCamera = (id) => wall.cameras.find((c) => String(c.id) === String(id));

/** The tree nodes a camera is under. */
function nodeKeys(c) {
  const keys = ["all", `s:${stationOf(c.community)}`, `c:${c.community}`];
  const grid = gridOf(c.id);
  if (grid) keys.push(`g:${grid}`);
  return keys;
}

const inNode = (c, node) => node === "all" || nodeKeys(c).includes(node);
const passesNetwork = (c, network) => network === "all" || c.network === network;
const passesStatus = (c, status) => status === "all" || (camState(c) === "online") === (status === "online");

/** The chosen node's cameras that pass both filters, in the tree's order. */
function shownCameras() {
  const sortKey = (c) => [
    nameOf("stations", stationOf(c.community)),
    nameOf("communities", c.community),
    gridOf(c.id) ? nameOf("grids", gridOf(c.id)) : "",
    c.name || String(c.id),
    String(c.id),
  ];
  return wall.cameras
    .filter((c) => inNode(c, wall.node) && passesNetwork(c, wall.network) && passesStatus(c, wall.status))
    .map((c) => [sortKey(c), c])
    .sort(([a], [b]) => {
      for (let i = 0; i < a.length; i++) {
        const d = compareNames(a[i], b[i]);
        if (d) return d;
      }
      return 0;
    })
    .map(([, c]) => c);
}

// ---------------------------------------------------------------- lifecycle (app.js calls these)

/** Wires the wall's fixed controls; once, at start. */
export function initWall() {
  for (const b of $$("[data-wall-layout]")) {
    b.addEventListener("click", () => setLayout(Number(b.dataset.wallLayout)));
  }
  $("#wall-prev").addEventListener("click", () => turnPage(-1));
  $("#wall-next").addEventListener("click", () => turnPage(1));
  $("#wall-back").addEventListener("click", backToGrid);
  $("#wall-grid").addEventListener("keydown", onGridKey);
  $("#wall-tree").addEventListener("keydown", onTreeKey);
  document.addEventListener("keydown", (e) => {
    if (wall.visible && wall.enlarged && e.key === "Escape") {
      e.preventDefault();
      backToGrid();
    }
  });
}

/** The cameras tab was chosen: draw what is known, then load the cameras. */
export function showWall() {
  if (!wall.visible) {
    wall.visible = true;
    wall.timers.push(setInterval(refreshThumbs, THUMB_REFRESH_MS));
    wall.timers.push(setInterval(loadCamerasQuietly, LIST_REFRESH_MS));
  }
  renderWall();
  if (wall.enlarged) focusTile(wall.enlarged);
  loadCameras();
}

/** Another tab was chosen: every player stops. */
export function hideWall() {
  if (!wall.visible) return;
  wall.visible = false;
  for (const id of wall.timers) clearInterval(id);
  wall.timers = [];
  clearTimeout(wall.reloadTimer);
  for (const tile of wall.tiles.values()) dropTile(tile);
  wall.tiles.clear();
}

/** Logout: stop and forget. */
export function stopWall() {
  hideWall();
  wall.cameras = [];
  wall.loaded = false;
  wall.node = "all";
  wall.page = 0;
  wall.enlarged = null;
  $("#wall-grid").replaceChildren();
  $("#wall-tree").replaceChildren();
}

/**
 * Shows `cameraId` alone on its main stream (the alert detail's live button), now if the wall
 * is shown, else when app.js shows it next.
 */
export function openWallCamera(cameraId) {
  wall.enlarged = String(cameraId);
  if (!wall.visible) return;
  renderWall();
  focusTile(wall.enlarged);
}

/** The camera an alert's live button plays: the alert's own, else the one watching its gate. */
export function liveCameraOf(alert) {
  if (!alert) return null;
  if (alert.camera) return String(alert.camera);
  const gateCamera = alert.gate ? item("gates", alert.gate)?.entry?.camera : null;
  return gateCamera ? String(gateCamera) : null;
}

/** A camera's status changed (the alert stream's `camera` event: {camera, status}). */
export function onWallCameraStatus(msg) {
  const id = String(msg?.camera ?? "");
  if (!id) return;
  const label = typeof msg.status === "string" ? msg.status : msg.status?.state || "offline";
  const c = findCamera(id);
  if (!c) {
    if (wall.visible) reloadSoon(); // one the wall does not know yet
    return;
  }
  if (camState(c) === label) return;
  c.status = label;
  if (label === "online") c.status_reason = null;
  // The event carries no reason: the list has it.
  else if (wall.visible) reloadSoon();
  if (wall.visible) renderWall();
}

// ---------------------------------------------------------------- loading

async function loadCameras() {
  try {
    const list = await api("GET", "/api/v1/cameras");
    wall.cameras = Array.isArray(list) ? list : [];
    wall.loaded = true;
    if (wall.visible) renderWall();
  } catch (e) {
    if (e.status !== 401) toast(e.message, "error");
  }
}

async function loadCamerasQuietly() {
  if (!wall.visible || document.hidden) return;
  try {
    const list = await api("GET", "/api/v1/cameras");
    if (!Array.isArray(list)) return;
    wall.cameras = list;
    wall.loaded = true;
    if (wall.visible) renderWall();
  } catch (_) {
    /* next time */
  }
}

function reloadSoon() {
  clearTimeout(wall.reloadTimer);
  wall.reloadTimer = setTimeout(loadCamerasQuietly, 1000);
}

// ---------------------------------------------------------------- drawing

/** Draws the tree, the filters and the page (tiles still on it keep playing). */
export function renderWall() {
  if (!wall.visible) return;
  renderTree();
  renderFilters();
  renderGrid();
  const online = wall.cameras.filter((c) => camState(c) === "online").length;
  $("#camera-summary").textContent = t("cameras.summary", { online, total: wall.cameras.length });
}

function nodeLabel(node) {
  if (node === "all") return t("wall.tree.all");
  const [kind, id] = [node.slice(0, 1), node.slice(2)];
  if (kind === "s") return id ? nameOf("stations", id) : t("wall.tree.no_station");
  if (kind === "c") return nameOf("communities", id);
  return nameOf("grids", id);
}

function renderTree() {
  const tree = $("#wall-tree");
  const focused = document.activeElement?.closest?.("#wall-tree") ? document.activeElement.dataset.node : null;
  const counts = new Map();
  for (const c of wall.cameras) {
    if (!passesNetwork(c, wall.network) || !passesStatus(c, wall.status)) continue;
    for (const k of nodeKeys(c)) counts.set(k, (counts.get(k) || 0) + 1);
  }
  // Communities from the topology, and any a camera names that the topology lacks.
  const communities = new Map();
  for (const it of items("communities")) communities.set(String(it.entry.id), it.entry.station || "");
  for (const c of wall.cameras) if (!communities.has(String(c.community))) communities.set(String(c.community), "");
  const stations = new Map(items("stations").map((it) => [String(it.entry.id), []]));
  for (const [id, station] of communities) {
    if (!stations.has(station)) stations.set(station, []);
    stations.get(station).push(id);
  }
  const grids = new Map();
  for (const it of items("grids")) {
    const c = String(it.entry.community);
    if (!grids.has(c)) grids.set(c, []);
    grids.get(c).push(String(it.entry.id));
  }
  const byName = (kind) => (a, b) => compareNames(nameOf(kind, a), nameOf(kind, b)) || compareNames(a, b);
  const node = (key, level, children = []) =>
    h(
      "li",
      {
        role: "treeitem",
        "aria-level": String(level),
        "aria-selected": key === wall.node ? "true" : "false",
        "aria-expanded": children.length ? "true" : null,
      },
      h(
        "button",
        {
          type: "button",
          class: `tree-node${key === wall.node ? " selected" : ""}${counts.get(key) ? "" : " empty"}`,
          "data-testid": "wall-node",
          dataset: { node: key },
          onclick: () => selectNode(key),
        },
        h("span", { class: "tree-label" }, nodeLabel(key)),
        h("span", { class: "tree-count", "data-testid": "wall-node-count" }, String(counts.get(key) || 0)),
      ),
      children.length ? h("ul", { role: "group" }, children) : null,
    );
  const stationIds = Array.from(stations.keys())
    .filter((s) => s !== "")
    .sort(byName("stations"));
  if (stations.has("")) stationIds.push(""); // communities of no station last
  const tops = stationIds
    .filter((s) => s !== "" || stations.get(s).length)
    .map((s) =>
      node(
        `s:${s}`,
        2,
        stations
          .get(s)
          .sort(byName("communities"))
          .map((c) =>
            node(
              `c:${c}`,
              3,
              (grids.get(c) || []).sort(byName("grids")).map((g) => node(`g:${g}`, 4)),
            ),
          ),
      ),
    );
  tree.replaceChildren(node("all", 1, tops));
  if (focused) tree.querySelector(`[data-node="${CSS.escape(focused)}"]`)?.focus();
}

function renderFilters() {
  const inChosen = wall.cameras.filter((c) => inNode(c, wall.node));
  const netCount = (n) => inChosen.filter((c) => passesStatus(c, wall.status) && passesNetwork(c, n)).length;
  const stCount = (s) => inChosen.filter((c) => passesNetwork(c, wall.network) && passesStatus(c, s)).length;
  const seg = (value, current, label, count, onclick, testid) =>
    h(
      "button",
      {
        type: "button",
        class: `seg-btn${value === current ? " active" : ""}`,
        "aria-pressed": value === current ? "true" : "false",
        "data-testid": testid,
        dataset: { value },
        onclick,
      },
      label,
      h("span", { class: "seg-count" }, String(count)),
    );
  const pickNetwork = (n) => () => {
    wall.network = n;
    wall.page = 0;
    renderWall();
  };
  const pickStatus = (s) => () => {
    wall.status = s;
    wall.page = 0;
    renderWall();
  };
  $("#wall-network").replaceChildren(
    seg("all", wall.network, t("wall.network.all"), netCount("all"), pickNetwork("all"), "wall-network"),
    ...NETWORKS.map((n) =>
      seg(n, wall.network, tOr(`network.${n}`, n), netCount(n), pickNetwork(n), "wall-network"),
    ),
  );
  $("#wall-status").replaceChildren(
    seg("all", wall.status, t("wall.status.all"), stCount("all"), pickStatus("all"), "wall-status"),
    seg("online", wall.status, t("wall.status.online"), stCount("online"), pickStatus("online"), "wall-status"),
    seg("offline", wall.status, t("wall.status.offline"), stCount("offline"), pickStatus("offline"), "wall-status"),
  );
}

function renderGrid() {
  const grid = $("#wall-grid");
  let want;
  let layout;
  if (wall.enlarged) {
    const c = findCamera(wall.enlarged) || { id: wall.enlarged, name: nameOf("cameras", wall.enlarged), missing: true };
    want = [c];
    layout = 1;
  } else {
    const list = shownCameras();
    const pages = Math.max(1, Math.ceil(list.length / wall.layout));
    wall.page = Math.min(Math.max(0, wall.page), pages - 1);
    want = list.slice(wall.page * wall.layout, (wall.page + 1) * wall.layout);
    layout = wall.layout;
    $("#wall-page").textContent = t("wall.page", { page: wall.page + 1, pages });
    $("#wall-prev").disabled = wall.page === 0;
    $("#wall-next").disabled = wall.page >= pages - 1;
    $("#camera-empty").hidden = !wall.loaded || list.length > 0;
  }
  // One tile on the page: it is big, so it plays the main stream.
  const stream = layout === 1 ? "main" : "sub";
  grid.dataset.layout = String(layout);
  grid.classList.toggle("enlarged", !!wall.enlarged);
  $("#wall-pager").hidden = !!wall.enlarged;
  $("#wall-back").hidden = !wall.enlarged;
  if (wall.enlarged) $("#camera-empty").hidden = true;
  $("#wall-title").textContent = wall.enlarged
    ? findCamera(wall.enlarged)?.name || nameOf("cameras", wall.enlarged)
    : nodeLabel(wall.node);
  for (const b of $$("[data-wall-layout]")) {
    const on = !wall.enlarged && Number(b.dataset.wallLayout) === wall.layout;
    b.classList.toggle("active", on);
    b.setAttribute("aria-pressed", on ? "true" : "false");
  }

  const keep = new Set(want.map((c) => String(c.id)));
  for (const [id, tile] of wall.tiles) {
    if (!keep.has(id) || tile.stream !== stream) {
      dropTile(tile);
      wall.tiles.delete(id);
    }
  }
  let prev = null;
  for (const c of want) {
    const id = String(c.id);
    let tile = wall.tiles.get(id);
    if (!tile) {
      tile = makeTile(id, stream);
      wall.tiles.set(id, tile);
    }
    // In place where it already is: a <video> moved in the document may pause.
    const at = prev ? prev.nextSibling : grid.firstChild;
    if (at !== tile.el) grid.insertBefore(tile.el, at);
    prev = tile.el;
    updateTile(tile, c);
  }
}

// ---------------------------------------------------------------- tiles

function makeTile(id, stream) {
  const tile = {
    id,
    stream,
    player: null,
    play: null,
    played: false,
    ended: null,
    camera: null,
    snapshotTried: false,
    hasImage: false,
  };
  tile.video = h("video", { class: "tile-video", muted: true, autoplay: true, playsinline: true, "data-testid": "tile-video" });
  tile.img = h("img", { class: "tile-thumb", alt: "", hidden: true });
  tile.placeholder = h("span", { class: "tile-placeholder" }, t("cameras.no_image"));
  tile.overlay = h("div", { class: "tile-overlay", "data-testid": "tile-overlay" });
  tile.name = h("span", { class: "tile-name", "data-testid": "tile-name" });
  tile.badge = h("span", { class: "tile-badge", "data-testid": "tile-transcoded", hidden: true }, t("wall.transcoded"));
  tile.streamBadge = h("span", { class: "tile-stream muted" });
  tile.status = h("span", { class: "cam-status" });
  tile.el = h(
    "figure",
    {
      class: "wall-tile",
      tabindex: "0",
      "data-testid": "camera-card",
      dataset: { cameraId: id, stream, play: "thumb" },
      ondblclick: () => toggleEnlarge(id),
    },
    h("div", { class: "tile-media" }, tile.placeholder, tile.img, tile.video, tile.overlay),
    h("figcaption", { class: "tile-caption" }, tile.name, tile.badge, tile.streamBadge, tile.status),
  );
  refreshThumb(tile);
  return tile;
}

function dropTile(tile) {
  stopPlayer(tile);
  tile.el.remove();
}

function startPlayer(tile) {
  tile.ended = null;
  tile.played = false;
  tile.player = new LivePlayer(tile.video, tile.id, {
    stream: tile.stream,
    onState: (s) => {
      tile.play = s;
      if (s.state === "playing") tile.played = true;
      if (s.state === "closed") {
        tile.ended = s;
        stopPlayer(tile);
        if (s.code === CLOSE_GONE) reloadSoon();
      }
      paintTile(tile);
    },
  });
  tile.player.start();
}

function stopPlayer(tile) {
  if (!tile.player) return;
  const p = tile.player;
  tile.player = null;
  tile.play = null;
  tile.played = false;
  p.stop();
}

/** Brings the tile in line with its camera: a player while online, the thumbnail otherwise. */
function updateTile(tile, c) {
  tile.camera = c;
  const st = c.missing ? (wall.loaded ? "offline" : "connecting") : camState(c);
  tile.el.dataset.state = st;
  // A session that ended for good (removed, unsupported) is tried again once the camera has
  // been away and come back.
  if (st !== "online") tile.ended = null;
  if (st === "online" && !tile.player && !tile.ended && !c.missing && hasLive(tile.id)) startPlayer(tile);
  if (tile.player && (st !== "online" || !hasLive(tile.id))) {
    stopPlayer(tile);
    refreshThumb(tile);
  }
  paintTile(tile);
}

/** What the tile says: name, status, stream, transcoded badge, and the overlay. */
function paintTile(tile) {
  const c = tile.camera || {};
  const st = tile.el.dataset.state;
  tile.name.textContent = c.name || nameOf("cameras", tile.id);
  tile.name.title = [tile.id, nameOf("communities", c.community)].filter(Boolean).join(" · ");
  tile.status.className = `cam-status cam-${st}`;
  tile.status.textContent = tOr(`camstate.${st}`, st);
  tile.status.title = camReason(c);
  tile.streamBadge.textContent = tile.stream === "main" ? t("wall.stream.main") : t("wall.stream.sub");
  const p = tile.player ? tile.play || { state: "connecting" } : null;
  const play = p ? p.state : tile.ended ? "closed" : "thumb";
  tile.el.dataset.play = play;
  const transcoded = !!(p && p.transcoded);
  tile.el.dataset.transcoded = transcoded ? "true" : "false";
  tile.badge.hidden = !transcoded;
  tile.badge.textContent = t("wall.transcoded");
  tile.badge.title = t("wall.transcoded_title");
  // The video while it plays, and its last picture while it reconnects; the thumbnail else.
  const showVideo = !!p && (p.state === "playing" || tile.played);
  const say = overlayText(tile, st, p);
  tile.video.hidden = !showVideo;
  tile.img.hidden = showVideo || !tile.hasImage;
  // "No image yet" only where the overlay has nothing to say (it sits in the same place).
  tile.placeholder.hidden = showVideo || tile.hasImage || !!say;
  tile.placeholder.textContent = t("cameras.no_image");
  tile.overlay.hidden = !say;
  tile.overlay.textContent = say;
  tile.overlay.dataset.kind = play === "closed" || st === "offline" || p?.state === "offline" ? "bad" : "wait";
}

function overlayText(tile, st, p) {
  const c = tile.camera || {};
  const ended = tile.ended;
  if (ended) {
    if (ended.code === CLOSE_GONE) return t("live.gone");
    if (ended.code === CLOSE_FORBIDDEN) return t("live.forbidden");
    return t("live.unsupported", { codec: ended.reason || "?" });
  }
  if (c.missing && wall.loaded) return t("live.gone");
  if (p) {
    if (p.state === "playing") return "";
    if (p.state === "reconnecting") return t("live.reconnecting");
    if (p.state === "offline") return p.reason ? t("live.offline", { reason: p.reason }) : t("live.offline_plain");
    return t("live.connecting");
  }
  if (st === "offline") return camReason(c) ? t("live.offline", { reason: camReason(c) }) : t("live.offline_plain");
  if (st === "connecting") return t("live.connecting");
  if (!hasLive(tile.id)) return t("live.none");
  return "";
}

/** Reloads a tile's thumbnail (not while it plays): the latest key frame, else the alert snapshot. */
function refreshThumb(tile) {
  if (tile.player && tile.play?.state === "playing") return;
  const base = `/api/v1/cameras/${encodeURIComponent(tile.id)}`;
  const load = (url, onFail) => {
    const img = new Image();
    img.alt = "";
    img.className = "tile-thumb";
    img.onload = () => {
      if (!wall.tiles.has(tile.id) || wall.tiles.get(tile.id) !== tile) return;
      img.hidden = tile.img.hidden;
      tile.img.replaceWith(img);
      tile.img = img;
      tile.hasImage = true;
      paintTile(tile);
    };
    img.onerror = onFail;
    img.src = `${url}?t=${Date.now()}`;
  };
  // The snapshot is tried once per tile: it is an alert's picture, and each look is audited.
  load(`${base}/thumbnail`, () => {
    if (tile.snapshotTried || tile.hasImage) return;
    tile.snapshotTried = true;
    load(`${base}/snapshot`, () => {});
  });
}

function refreshThumbs() {
  if (!wall.visible || document.hidden) return;
  for (const tile of wall.tiles.values()) refreshThumb(tile);
}

// ---------------------------------------------------------------- navigation

function selectNode(key) {
  wall.node = key;
  wall.page = 0;
  wall.enlarged = null;
  renderWall();
}

function setLayout(n) {
  if (!LAYOUTS.includes(n)) return;
  // Keep the first camera of the page in view.
  const first = wall.page * wall.layout;
  wall.layout = n;
  wall.page = Math.floor(first / n);
  wall.enlarged = null;
  try {
    localStorage.setItem("xl.wall.layout", String(n));
  } catch (_) {
    /* storage unavailable */
  }
  renderWall();
}

function turnPage(delta) {
  if (wall.enlarged) return;
  wall.page += delta;
  renderGrid();
}

function toggleEnlarge(id) {
  if (wall.enlarged) backToGrid();
  else {
    wall.enlarged = id;
    renderWall();
    focusTile(id);
  }
}

function backToGrid() {
  if (!wall.enlarged) return;
  const id = wall.enlarged;
  wall.enlarged = null;
  // The page that has the camera, when it is on one.
  const at = shownCameras().findIndex((c) => String(c.id) === id);
  if (at >= 0) wall.page = Math.floor(at / wall.layout);
  renderWall();
  focusTile(id);
}

function focusTile(id) {
  wall.tiles.get(String(id))?.el.focus({ preventScroll: true });
}

function onGridKey(e) {
  const tileEl = e.target.closest?.(".wall-tile");
  if (e.key === "PageDown" || e.key === "PageUp") {
    e.preventDefault();
    turnPage(e.key === "PageDown" ? 1 : -1);
    return;
  }
  if (!tileEl) return;
  if (e.key === "Enter" || e.key === " ") {
    e.preventDefault();
    toggleEnlarge(tileEl.dataset.cameraId);
    return;
  }
  const tiles = $$(".wall-tile", $("#wall-grid"));
  const i = tiles.indexOf(tileEl);
  const cols = Math.round(Math.sqrt(Number($("#wall-grid").dataset.layout) || 1));
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols }[e.key];
  if (step === undefined) return;
  e.preventDefault();
  tiles[Math.min(tiles.length - 1, Math.max(0, i + step))]?.focus();
}

function onTreeKey(e) {
  if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
  const nodes = $$(".tree-node", $("#wall-tree"));
  const i = nodes.indexOf(document.activeElement);
  if (i < 0) return;
  e.preventDefault();
  nodes[Math.min(nodes.length - 1, Math.max(0, i + (e.key === "ArrowDown" ? 1 : -1)))].focus();
}
