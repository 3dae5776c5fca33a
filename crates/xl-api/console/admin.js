// The admin pages, shown to admins only: cameras (search, add / edit with "test connection",
// zones, disable, delete, CSV import), gates, stations, communities, grids and users; and the
// cluster page (the district's nodes and leases, read-only, refreshed while shown).
//
// Topology entries are whole xl_core::topology entries at /api/v1/topology/{kind}: an edit
// starts from the entry as read and sends it back whole, with If-Match: "<revision read>"; a
// 409 means someone else changed it meanwhile (or, for a delete, that it is still in use).
// Secrets (a camera's password, a gate's push secret) are write-only: a blank field leaves the
// stored one as it is. Entries from the config file are shown read-only.
//
// Every page is the same shape (a table, a search box, a form beside it) built by `table` and
// `buildForm` from a page definition; the pages differ only in their columns, fields and how
// form values become an entry.

import { t, tOr } from "./i18n.js";
import { $, $$, h, fill, api, toast, fmtTime } from "./ui.js";
import { items, item, nameOf, loadTopology } from "./topology.js";
import { zoneEditor } from "./zones.js";

const NETWORKS = ["community", "skynet", "private"];
const DECODE_POLICIES = ["all", "skip-non-reference", "key-frames"];
const RECORDING_MODES = ["continuous", "motion-and-events", "events-only", "off"];
const GATE_TRANSPORTS = ["mqtt", "http-push", "both"];
const ROLES = ["admin", "duty", "police", "property"];
/** Firmware the hub ships adapters for (a generic dialect may add more names). */
const FIRMWARE = ["hikvision-isapi", "dahua", "zkteco-adms", "esp-rfid", "esphome", "zigbee2mqtt", "generic"];
/** The CSV header POST /api/v1/cameras/import expects. */
const CSV_HEADER = "id,name,community,grid,network,main_url,sub_url,username,password";

const admin = {
  page: "cameras",
  search: "",
  /** The open form: {page, item (null when adding), form, el, probe}. */
  view: null,
  /** The open zone editor: {cameraId, editor}. */
  zones: null,
  /** The last CSV import's outcome. */
  report: null,
  users: [],
  /** Camera id -> the snapshot of its last "test connection" (a data URL), for the zone editor. */
  probeFrames: new Map(),
  tableWrap: null,
  /** The signed-in user. */
  me: null,
};

/** A problem the console finds in a form before asking the API, named like the API's fields. */
class FieldProblem extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

const enc = encodeURIComponent;
const ifMatch = (it) => ({ "If-Match": `"${it.meta?.revision ?? 0}"` });
const isConfig = (it) => it?.meta?.origin === "config";

// ---------------------------------------------------------------- small builders

function button(label, testid, onclick, cls = "btn-ghost") {
  return h("button", { type: "button", class: `btn btn-sm ${cls}`, "data-testid": testid, onclick }, label);
}

function badge(text, cls, testid) {
  return h("span", { class: `badge ${cls}`, "data-testid": testid }, text);
}

/** "name (id)" for a select, or the id alone when there is no other name. */
function optionOf(it) {
  const { id, name } = it.entry;
  return [String(id), name && name !== id ? `${name} (${id})` : String(id)];
}

const noneOption = () => ["", t("admin.none")];
const communityOptions = () => items("communities").map(optionOf);
const stationOptions = () => items("stations").map(optionOf);
const gridOptions = (v) => [noneOption(), ...items("grids").filter((g) => g.entry.community === v.community).map(optionOf)];
const cameraOptions = (v) => [noneOption(), ...items("cameras").filter((c) => c.entry.community === v.community).map(optionOf)];

/** A stream source as one line of text: the RTSP URL or the file's path. */
function sourceText(src) {
  if (!src) return "";
  return src.kind === "rtsp" ? src.url || "" : src.kind === "file" ? src.path || "" : "";
}

/** One line of text as a stream source: a URL (anything with "://") is RTSP, else a file. */
function sourceOf(text) {
  if (!text) return undefined;
  return text.includes("://") ? { kind: "rtsp", url: text } : { kind: "file", path: text };
}

/** Sets `e[k]` to `v`, or leaves the field out when `v` is empty (its default applies). */
function setOrDrop(e, k, v) {
  if (v === "" || v === undefined || v === null) delete e[k];
  else e[k] = v;
}

function stateCell(disabled) {
  return disabled
    ? badge(t("admin.state.disabled"), "badge-off", "row-state")
    : badge(t("admin.state.enabled"), "badge-on", "row-state");
}

// ---------------------------------------------------------------- table helper

/**
 * A table of `rows`: one column per `columns` entry ({label, value(row) -> text or node,
 * class}), the row's `actions(row)` buttons last. Each row is `data-testid="admin-row"` with
 * `data-id` = `key(row)`.
 */
function table({ columns, rows, key, rowClass, actions, empty, testid }) {
  if (!rows.length) return h("p", { class: "empty", "data-testid": `${testid}-empty` }, empty);
  return h(
    "table",
    { class: "table admin-table", "data-testid": testid },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.class === "num" ? "num" : "" }, t(c.label))), h("th", {}))),
    h(
      "tbody",
      {},
      rows.map((r) =>
        h(
          "tr",
          { "data-testid": "admin-row", dataset: { id: key(r) }, class: rowClass ? rowClass(r) : "" },
          columns.map((c) => h("td", { class: c.class }, c.value(r))),
          h("td", { class: "row-actions" }, actions(r)),
        ),
      ),
    ),
  );
}

// ---------------------------------------------------------------- form helper

/**
 * A form built from field specs: {name, label (i18n key), type (text, password, number,
 * select, checkbox, multi, textarea), options(values) -> [[value, label]], dependsOn ([names]
 * of the fields the options follow), required, fixed
 * (read-only when editing), show(values) -> bool, placeholder, help (i18n key), suggest
 * ([values] offered as a datalist), api ([names] of the API's fields it answers for; default
 * [name])}. Options and visibility follow the other fields as the user types.
 *
 * Returns {el, values(), showError(field, message), clearError()}.
 */
function buildForm({ fields, values, editing, readOnly, footer, onSubmit }) {
  const controls = new Map();
  const errorEl = h("p", { class: "form-error", "data-testid": "admin-form-error", hidden: true });
  const formEl = h("form", {
    class: "entry-form",
    "data-testid": "entry-form",
    onsubmit: (e) => {
      e.preventDefault();
      if (!readOnly) onSubmit();
    },
  });

  const optionsKey = new Map();
  function fillSelect(spec, select, v, want, keepStale = false) {
    const opts = spec.options(v);
    // An entry as stored may name something this list lacks (not visible, or gone): show it
    // rather than silently pick another. Later, as other fields change, the list rules.
    if (keepStale && want && !opts.some(([o]) => o === want)) opts.push([want, want]);
    const k = JSON.stringify(opts);
    if (optionsKey.get(spec.name) === k) return;
    optionsKey.set(spec.name, k);
    fill(select, ...opts.map(([o, label]) => h("option", { value: o }, label)));
    select.value = opts.some(([o]) => o === want) ? want : (opts[0]?.[0] ?? "");
  }
  function fillMulti(spec, box, v, want) {
    const opts = spec.options(v);
    const k = JSON.stringify(opts);
    if (optionsKey.get(spec.name) === k) return;
    optionsKey.set(spec.name, k);
    const chosen = new Set(want || []);
    fill(box,
      ...(opts.length
        ? opts.map(([o, label]) =>
            h(
              "label",
              { class: "check" },
              h("input", { type: "checkbox", value: o, checked: chosen.has(o), disabled: readOnly }),
              h("span", {}, label),
            ),
          )
        : [h("span", { class: "muted" }, t("admin.none_yet"))]),
    );
  }

  for (const spec of fields) {
    const type = spec.type || "text";
    const testid = `field-${spec.name}`;
    const locked = readOnly || (editing && spec.fixed);
    const label = h("span", { class: "field-label" }, t(spec.label), spec.required && !readOnly ? h("i", { class: "req" }, "*") : null);
    const help = spec.help ? h("small", { class: "field-help muted" }, t(spec.help)) : null;
    const err = h("small", { class: "field-error", hidden: true });
    let input;
    let wrap;
    if (type === "select") {
      input = h("select", { name: spec.name, "data-testid": testid, disabled: locked });
      fillSelect(spec, input, values, values[spec.name] ?? "", true);
      wrap = h("label", { class: "field" }, label, input, help, err);
    } else if (type === "checkbox") {
      input = h("input", { type: "checkbox", name: spec.name, "data-testid": testid, checked: !!values[spec.name], disabled: locked });
      wrap = h("label", { class: "field check" }, input, label, help, err);
    } else if (type === "multi") {
      input = h("div", { class: "multi", "data-testid": testid });
      fillMulti(spec, input, values, values[spec.name]);
      wrap = h("div", { class: "field" }, label, input, help, err);
    } else {
      const attrs = {
        name: spec.name,
        "data-testid": testid,
        value: values[spec.name] ?? "",
        placeholder: spec.placeholder,
        readonly: locked,
        required: spec.required && !locked,
        autocomplete: type === "password" ? "new-password" : "off",
        spellcheck: "false",
      };
      if (type === "textarea") input = h("textarea", { ...attrs, rows: 3 });
      else input = h("input", { ...attrs, type, min: type === "number" ? 1 : undefined });
      let list = null;
      if (spec.suggest) {
        list = h("datalist", { id: `dl-${spec.name}` }, spec.suggest.map((o) => h("option", { value: o })));
        input.setAttribute("list", list.id);
      }
      wrap = h("label", { class: "field" }, label, input, list, help, err);
    }
    wrap.dataset.field = spec.name;
    controls.set(spec.name, { spec, type, input, wrap, err });
    formEl.append(wrap);
  }
  formEl.append(errorEl, ...(footer || []));

  function read() {
    const v = {};
    for (const [name, c] of controls) {
      if (c.type === "checkbox") v[name] = c.input.checked;
      else if (c.type === "multi") v[name] = $$("input:checked", c.input).map((x) => x.value);
      else if (c.type === "password") v[name] = c.input.value;
      else v[name] = c.input.value.trim();
    }
    return v;
  }

  function refresh() {
    const v = read();
    for (const c of controls.values()) {
      if (c.spec.show) c.wrap.hidden = !c.spec.show(v);
      if (typeof c.spec.options !== "function") continue;
      // A stale initial value stays while it and what its options follow are as they were.
      const asBefore = [c.spec.name, ...(c.spec.dependsOn || [])].every((k) => v[k] === values[k]);
      if (c.type === "select") fillSelect(c.spec, c.input, v, v[c.spec.name], asBefore);
      else if (c.type === "multi") fillMulti(c.spec, c.input, v, v[c.spec.name]);
    }
  }
  formEl.addEventListener("change", refresh);
  formEl.addEventListener("input", refresh);
  refresh();

  function clearError() {
    errorEl.hidden = true;
    errorEl.textContent = "";
    for (const c of controls.values()) {
      c.wrap.classList.remove("invalid");
      c.err.hidden = true;
    }
  }

  /** Shows `message` above the buttons and marks the field the API named (`sub.url` -> sub). */
  function showError(field, message) {
    clearError();
    errorEl.textContent = message;
    errorEl.hidden = false;
    if (!field) return;
    const head = String(field).split(/[.[]/)[0];
    for (const c of controls.values()) {
      if ((c.spec.api || [c.spec.name]).includes(head)) {
        c.wrap.classList.add("invalid");
        c.err.textContent = field;
        c.err.hidden = false;
        c.wrap.scrollIntoView({ block: "nearest" });
        break;
      }
    }
  }

  return {
    el: formEl,
    values: () => {
      const v = read();
      // Hidden fields do not apply (a property user's stations).
      for (const c of controls.values()) if (c.wrap.hidden) delete v[c.spec.name];
      return v;
    },
    showError,
    clearError,
  };
}

// ---------------------------------------------------------------- topology pages

/**
 * A page of one topology kind from its definition: {id, kind, title, add, columns, search(entry)
 * -> [texts], fields({editing, item}), values(entry | undefined), toEntry(values, base entry),
 * rowActions?(item), formExtras?(view), toolbar?()}.
 */
function topologyPage(def) {
  const base = `/api/v1/topology/${def.kind}`;
  const path = (id) => `${base}/${enc(id)}`;
  return {
    ...def,
    list: () => items(def.kind),
    find: (id) => item(def.kind, id),
    key: (it) => String(it.entry.id),
    load: () => loadTopology(),
    readOnly: isConfig,
    searchText: (it) => def.search(it.entry).filter(Boolean).join(" ").toLowerCase(),
    rowClass: (it) => (it.entry.disabled ? "is-disabled" : ""),
    fields: def.fields,
    values: (it) => def.values(it?.entry, it),
    async save(values, it) {
      const entry = def.toEntry(values, it ? structuredClone(it.entry) : {});
      const saved = it
        ? await api("PUT", path(it.entry.id), entry, { headers: ifMatch(it) })
        : await api("POST", base, entry);
      await loadTopology();
      return saved;
    },
    actions(it) {
      const config = isConfig(it);
      const id = it.entry.id;
      return [
        button(t(config ? "admin.view" : "admin.edit"), "admin-edit", () => openForm(this, it)),
        ...(def.rowActions ? def.rowActions(it) : []),
        config
          ? null
          : it.entry.disabled
            ? button(t("admin.enable"), "admin-enable", () =>
                rowWrite(this, it, () => api("POST", `${path(id)}/enable`, undefined, { headers: ifMatch(it) }), "admin.enabled"),
              )
            : button(t("admin.disable"), "admin-disable", () =>
                rowWrite(this, it, () => api("POST", `${path(id)}/disable`, undefined, { headers: ifMatch(it) }), "admin.disabled"),
              ),
        config
          ? null
          : button(
              t("admin.delete"),
              "admin-delete",
              () => {
                if (!window.confirm(t("admin.confirm_delete", { what: `${it.entry.name || id} (${id})` }))) return;
                rowWrite(this, it, () => api("DELETE", path(id), undefined, { headers: ifMatch(it) }), "admin.deleted");
              },
              "btn-danger-ghost",
            ),
      ];
    },
  };
}

/** The name cell: the display name, and a "from config" badge for entries the file declares. */
function nameCell(it) {
  return [
    h("span", {}, it.entry.name || ""),
    isConfig(it) ? badge(t("admin.from_config"), "badge-config", "from-config") : null,
  ];
}

const idColumn = { label: "admin.col.id", value: (it) => it.entry.id, class: "mono" };
const nameColumn = { label: "admin.col.name", value: nameCell };
const stateColumn = { label: "admin.col.state", value: (it) => stateCell(it.entry.disabled) };
const communityColumn = { label: "admin.col.community", value: (it) => nameOf("communities", it.entry.community) };
const idField = { name: "id", label: "admin.f.id", required: true, fixed: true, help: "admin.help.id" };
const nameField = { name: "name", label: "admin.f.name", required: true };

/** The first community, so a form for a new camera or gate starts with a usable choice. */
const firstCommunity = () => items("communities")[0]?.entry.id ?? "";

const camerasPage = topologyPage({
  id: "cameras",
  kind: "cameras",
  title: "admin.nav.cameras",
  add: "admin.cameras.add",
  columns: [
    idColumn,
    nameColumn,
    communityColumn,
    { label: "admin.col.grid", value: (it) => (it.entry.grid ? nameOf("grids", it.entry.grid) : "—") },
    { label: "admin.col.network", value: (it) => tOr(`network.${it.entry.network}`, it.entry.network || "") },
    { label: "admin.col.stream", value: (it) => sourceText(it.entry.sub || it.entry.main), class: "mono clip" },
    { label: "admin.col.zones", value: (it) => String(it.entry.zones?.length ?? 0), class: "num" },
    stateColumn,
  ],
  search: (e) => [e.id, e.name, e.community, nameOf("communities", e.community)],
  fields: ({ item: it }) => {
    const secret = it?.meta?.secret_set ? "admin.secret_keep" : "admin.secret_none";
    return [
      idField,
      nameField,
      { name: "community", label: "admin.f.community", type: "select", required: true, options: communityOptions },
      { name: "grid", label: "admin.f.grid", type: "select", options: gridOptions, dependsOn: ["community"] },
      { name: "network", label: "admin.f.network", type: "select", options: () => NETWORKS.map((n) => [n, tOr(`network.${n}`, n)]) },
      { name: "main", label: "admin.f.main_url", placeholder: "rtsp://192.168.1.64:554/Streaming/Channels/101", help: "admin.help.url" },
      { name: "sub", label: "admin.f.sub_url", placeholder: "rtsp://192.168.1.64:554/Streaming/Channels/102", help: "admin.help.sub" },
      { name: "username", label: "admin.f.username" },
      { name: "password", label: "admin.f.password", type: "password", placeholder: it ? t(secret) : "" },
      { name: "decode", label: "admin.f.decode", type: "select", options: () => DECODE_POLICIES.map((d) => [d, t(`decode.${d}`)]) },
      { name: "detect", label: "admin.f.detect", type: "checkbox" },
      {
        name: "rec_mode",
        label: "admin.f.recording_mode",
        type: "select",
        options: () => [["", t("recmode.default")], ...RECORDING_MODES.map((m) => [m, t(`recmode.${m}`)])],
      },
      {
        name: "rec_stream",
        label: "admin.f.recording_stream",
        type: "select",
        options: () => [["", t("recmode.default")], ["main", t("wall.stream.main")], ["sub", t("wall.stream.sub")]],
      },
      { name: "rec_days", label: "admin.f.recording_days", type: "number", placeholder: t("recmode.default") },
    ];
  },
  values: (e) => ({
    id: e?.id ?? "",
    name: e?.name ?? "",
    community: e?.community ?? firstCommunity(),
    grid: e?.grid ?? "",
    network: e?.network ?? "community",
    main: sourceText(e?.main),
    sub: sourceText(e?.sub),
    username: e?.username ?? "",
    password: "",
    decode: e?.decode ?? "all",
    detect: e ? e.detect?.enabled !== false : true,
    rec_mode: e?.recording?.mode ?? "",
    rec_stream: e?.recording?.stream ?? "",
    rec_days: e?.recording?.retain_days != null ? String(e.recording.retain_days) : "",
  }),
  toEntry(v, e) {
    Object.assign(e, { id: v.id, name: v.name, community: v.community, network: v.network, decode: v.decode });
    setOrDrop(e, "grid", v.grid);
    setOrDrop(e, "main", sourceOf(v.main));
    setOrDrop(e, "sub", sourceOf(v.sub));
    setOrDrop(e, "username", v.username);
    // Absent keeps the stored password; the form never shows it.
    setOrDrop(e, "password", v.password);
    e.detect = { ...(e.detect || {}), enabled: v.detect };
    e.zones = e.zones || [];
    // Each part left empty takes the hub's [recording] default.
    const recording = {};
    if (v.rec_mode) recording.mode = v.rec_mode;
    if (v.rec_stream) recording.stream = v.rec_stream;
    if (v.rec_days !== "") {
      const n = Number(v.rec_days);
      if (!Number.isInteger(n) || n < 1 || n > 3650) throw new FieldProblem("rec_days", t("admin.err.retain_days"));
      recording.retain_days = n;
    }
    setOrDrop(e, "recording", Object.keys(recording).length ? recording : "");
    return e;
  },
  rowActions: (it) => [button(t("admin.zones"), "admin-zones", () => openZones(it.entry.id))],
  formExtras: probePanel,
  toolbar: importControls,
  afterSave(saved, view) {
    if (view.probe && saved?.entry?.id) admin.probeFrames.set(String(saved.entry.id), view.probe);
  },
});

const gatesPage = topologyPage({
  id: "gates",
  kind: "gates",
  title: "admin.nav.gates",
  add: "admin.gates.add",
  columns: [
    idColumn,
    nameColumn,
    communityColumn,
    { label: "admin.col.firmware", value: (it) => it.entry.firmware, class: "mono" },
    { label: "admin.col.camera", value: (it) => (it.entry.camera ? nameOf("cameras", it.entry.camera) : "—") },
    { label: "admin.col.transport", value: (it) => tOr(`transport.${it.entry.transport}`, t("transport.default")) },
    stateColumn,
  ],
  search: (e) => [e.id, e.name, e.community, nameOf("communities", e.community), e.firmware, e.device],
  fields: ({ item: it }) => [
    idField,
    nameField,
    { name: "community", label: "admin.f.community", type: "select", required: true, options: communityOptions },
    { name: "grid", label: "admin.f.grid", type: "select", options: gridOptions, dependsOn: ["community"] },
    { name: "firmware", label: "admin.f.firmware", required: true, suggest: FIRMWARE },
    { name: "device", label: "admin.f.device", help: "admin.help.device" },
    { name: "camera", label: "admin.f.camera", type: "select", options: cameraOptions, dependsOn: ["community"] },
    {
      name: "transport",
      label: "admin.f.transport",
      type: "select",
      options: () => [["", t("transport.default")], ...GATE_TRANSPORTS.map((x) => [x, t(`transport.${x}`)])],
    },
    {
      name: "push_secret",
      label: "admin.f.push_secret",
      type: "password",
      placeholder: it?.meta?.secret_set ? t("admin.secret_keep") : t("admin.secret_none"),
      help: "admin.help.push_secret",
    },
    { name: "push_allow_from", label: "admin.f.push_allow_from", type: "textarea", placeholder: "10.0.0.5\n10.0.8.0/24" },
    { name: "timezone", label: "admin.f.timezone", placeholder: "Asia/Shanghai" },
    { name: "offline_after_secs", label: "admin.f.offline_after_secs", type: "number", placeholder: "300" },
  ],
  values: (e) => ({
    id: e?.id ?? "",
    name: e?.name ?? "",
    community: e?.community ?? firstCommunity(),
    grid: e?.grid ?? "",
    firmware: e?.firmware ?? "",
    device: e?.device ?? "",
    camera: e?.camera ?? "",
    transport: e?.transport ?? "",
    push_secret: "",
    push_allow_from: (e?.push_allow_from || []).join("\n"),
    timezone: e?.timezone ?? "",
    offline_after_secs: e ? String(e.offline_after_secs ?? "") : "",
  }),
  toEntry(v, e) {
    Object.assign(e, { id: v.id, name: v.name, community: v.community, firmware: v.firmware });
    for (const k of ["grid", "device", "camera", "transport", "timezone", "push_secret"]) setOrDrop(e, k, v[k]);
    e.push_allow_from = v.push_allow_from.split(/[\s,]+/).filter(Boolean);
    if (v.offline_after_secs === "") delete e.offline_after_secs;
    else {
      const n = Number(v.offline_after_secs);
      if (!Number.isInteger(n) || n < 1) throw new FieldProblem("offline_after_secs", t("admin.err.whole_secs"));
      e.offline_after_secs = n;
    }
    return e;
  },
});

const stationsPage = topologyPage({
  id: "stations",
  kind: "stations",
  title: "admin.nav.stations",
  add: "admin.stations.add",
  columns: [
    idColumn,
    nameColumn,
    {
      label: "admin.col.communities",
      value: (it) => String(items("communities").filter((c) => c.entry.station === it.entry.id).length),
      class: "num",
    },
    stateColumn,
  ],
  search: (e) => [e.id, e.name],
  fields: () => [idField, nameField],
  values: (e) => ({ id: e?.id ?? "", name: e?.name ?? "" }),
  toEntry: (v, e) => Object.assign(e, { id: v.id, name: v.name }),
});

const communitiesPage = topologyPage({
  id: "communities",
  kind: "communities",
  title: "admin.nav.communities",
  add: "admin.communities.add",
  columns: [
    idColumn,
    nameColumn,
    { label: "admin.col.station", value: (it) => (it.entry.station ? nameOf("stations", it.entry.station) : "—") },
    {
      label: "admin.col.cameras",
      value: (it) => String(items("cameras").filter((c) => c.entry.community === it.entry.id).length),
      class: "num",
    },
    stateColumn,
  ],
  search: (e) => [e.id, e.name, e.station, nameOf("stations", e.station)],
  fields: () => [idField, nameField, { name: "station", label: "admin.f.station", type: "select", options: () => [noneOption(), ...stationOptions()] }],
  values: (e) => ({ id: e?.id ?? "", name: e?.name ?? "", station: e?.station ?? "" }),
  toEntry(v, e) {
    Object.assign(e, { id: v.id, name: v.name });
    setOrDrop(e, "station", v.station);
    return e;
  },
});

const gridsPage = topologyPage({
  id: "grids",
  kind: "grids",
  title: "admin.nav.grids",
  add: "admin.grids.add",
  columns: [idColumn, nameColumn, communityColumn, stateColumn],
  search: (e) => [e.id, e.name, e.community, nameOf("communities", e.community)],
  fields: () => [idField, nameField, { name: "community", label: "admin.f.community", type: "select", required: true, options: communityOptions }],
  values: (e) => ({ id: e?.id ?? "", name: e?.name ?? "", community: e?.community ?? firstCommunity() }),
  toEntry: (v, e) => Object.assign(e, { id: v.id, name: v.name, community: v.community }),
});

// ---------------------------------------------------------------- users

/** Whether the users API knows station scopes (it lists `stations` with each user). */
const usersHaveStations = () => admin.users.some((u) => Array.isArray(u.stations));
const scopedToStations = (role) => role === "police" || role === "duty";

function scopeText(u) {
  if (u.role === "property") return (u.communities || []).map((c) => nameOf("communities", c)).join("、") || "—";
  if (scopedToStations(u.role) && u.stations?.length) return u.stations.map((s) => nameOf("stations", s)).join("、");
  return t("admin.scope.all");
}

const usersPage = {
  id: "users",
  title: "admin.nav.users",
  add: "admin.users.add",
  list: () => admin.users,
  find: (name) => admin.users.find((u) => u.username === name),
  key: (u) => u.username,
  async load() {
    const list = await api("GET", "/api/v1/users");
    admin.users = Array.isArray(list) ? list.slice().sort((a, b) => a.username.localeCompare(b.username)) : [];
  },
  readOnly: () => false,
  searchText: (u) => [u.username, u.role, tOr(`role.${u.role}`, ""), scopeText(u)].join(" ").toLowerCase(),
  rowClass: (u) => (u.disabled ? "is-disabled" : ""),
  columns: [
    { label: "admin.col.username", value: (u) => u.username, class: "mono" },
    { label: "admin.col.role", value: (u) => tOr(`role.${u.role}`, u.role) },
    { label: "admin.col.scope", value: scopeText },
    { label: "admin.col.created", value: (u) => fmtTime(u.created_at) },
    { label: "admin.col.state", value: (u) => stateCell(u.disabled) },
  ],
  fields: ({ editing }) =>
    [
      { name: "username", label: "admin.f.username", required: true, fixed: true, help: "admin.help.username" },
      {
        name: "password",
        label: editing ? "admin.f.reset_password" : "admin.f.password",
        type: "password",
        required: !editing,
        placeholder: editing ? t("admin.password_keep") : "",
        help: "admin.help.password",
      },
      { name: "role", label: "admin.f.role", type: "select", options: () => ROLES.map((r) => [r, tOr(`role.${r}`, r)]) },
      {
        name: "communities",
        label: "admin.f.communities",
        type: "multi",
        options: communityOptions,
        show: (v) => v.role === "property",
        help: "admin.help.communities",
      },
      {
        name: "stations",
        label: "admin.f.stations",
        type: "multi",
        options: stationOptions,
        show: (v) => scopedToStations(v.role) && usersHaveStations(),
        help: "admin.help.stations",
      },
      editing ? { name: "disabled", label: "admin.f.disabled", type: "checkbox" } : null,
    ].filter(Boolean),
  values: (u) => ({
    username: u?.username ?? "",
    password: "",
    role: u?.role ?? "duty",
    communities: u?.communities ?? [],
    stations: u?.stations ?? [],
    disabled: !!u?.disabled,
  }),
  async save(v, u) {
    // The scope that does not apply to the role is cleared, so a role change leaves none behind.
    const scope = { communities: v.role === "property" ? v.communities || [] : [] };
    if (usersHaveStations()) scope.stations = scopedToStations(v.role) ? v.stations || [] : [];
    let saved;
    if (!u) {
      saved = await api("POST", "/api/v1/users", { username: v.username, password: v.password, role: v.role, ...scope });
    } else {
      const body = { role: v.role, ...scope, disabled: v.disabled };
      if (v.password) body.password = v.password;
      saved = await api("PATCH", `/api/v1/users/${enc(u.username)}`, body);
    }
    await this.load();
    return saved;
  },
  actions(u) {
    // An admin cannot lock themself out from here.
    const self = u.username === admin.me?.username;
    return [
      button(t("admin.edit"), "admin-edit", () => openForm(usersPage, u)),
      self
        ? null
        : button(t(u.disabled ? "admin.enable" : "admin.disable"), u.disabled ? "admin-enable" : "admin-disable", () =>
            rowWrite(usersPage, u, () => api("PATCH", `/api/v1/users/${enc(u.username)}`, { disabled: !u.disabled }), u.disabled ? "admin.enabled" : "admin.disabled"),
          ),
    ];
  },
};

const PAGES = {
  cameras: camerasPage,
  gates: gatesPage,
  stations: stationsPage,
  communities: communitiesPage,
  grids: gridsPage,
  users: usersPage,
};
/** The cluster page's id: read-only, not a table of entries, so not one of PAGES. */
const CLUSTER = "cluster";

// ---------------------------------------------------------------- writes

/** A row's write (disable, enable, delete): then reload; a 409 says why it was refused. */
async function rowWrite(page, it, write, doneKey) {
  try {
    await write();
    await page.load();
    toast(t(doneKey), "ok");
  } catch (e) {
    if (e.status === 409) await explainConflict(page, it, e, (msg) => toast(msg, "error"));
    else if (e.status !== 401) toast(e.message, "error");
  }
  if (admin.view && admin.view.item && page.key(admin.view.item) === page.key(it)) closeForm();
  renderAdmin();
}

/**
 * A 409 is either a stale revision (someone else changed the entry since it was read) or a
 * delete of an entry still in use: reload, and compare revisions to tell which.
 */
async function explainConflict(page, it, e, say) {
  const before = it.meta?.revision;
  await page.load().catch(() => {});
  const fresh = page.find(page.key(it));
  if (!fresh || fresh.meta?.revision !== before) {
    say(t("admin.conflict"));
    return fresh || null;
  }
  say(e.message);
  return undefined;
}

// ---------------------------------------------------------------- the form pane

function openForm(page, it, notice) {
  admin.zones = null;
  const editing = !!it;
  const readOnly = editing && page.readOnly(it);
  const view = { page, item: it || null, probe: null };
  const save = button(t("admin.save"), "admin-save", null, "btn-primary");
  save.type = "submit";
  const footer = h(
    "div",
    { class: "form-buttons" },
    readOnly ? null : save,
    button(t(readOnly ? "admin.close" : "admin.cancel"), "admin-cancel", () => {
      closeForm();
      renderAdmin();
    }),
  );
  view.form = buildForm({
    fields: page.fields({ editing, item: it }),
    values: page.values(it),
    editing,
    readOnly,
    footer: [footer],
    onSubmit: () => submit(view, save),
  });
  const title = editing ? t(readOnly ? "admin.form.view" : "admin.form.edit", { id: page.key(it) }) : t(page.add);
  view.el = h(
    "aside",
    {
      class: "admin-form-pane",
      "data-testid": "admin-form",
      dataset: { page: page.id, mode: readOnly ? "view" : editing ? "edit" : "add", id: it ? page.key(it) : "" },
    },
    h(
      "div",
      { class: "form-title" },
      h("h3", {}, title),
      readOnly ? badge(t("admin.from_config"), "badge-config", "from-config") : null,
    ),
    readOnly ? h("p", { class: "notice" }, t("admin.from_config_note")) : null,
    view.form.el,
    page.formExtras ? page.formExtras(view, readOnly) : null,
  );
  admin.view = view;
  renderAdmin();
  if (notice) view.form.showError(null, notice);
  const first = view.el.querySelector("input:not([readonly]):not([type=checkbox]), select:not([disabled])");
  if (first) first.focus();
}

function closeForm() {
  admin.view = null;
}

async function submit(view, saveButton) {
  const { page, form } = view;
  form.clearError();
  saveButton.disabled = true;
  try {
    const saved = await page.save(form.values(), view.item);
    page.afterSave?.(saved, view);
    toast(t("admin.saved"), "ok");
    closeForm();
    renderAdmin();
  } catch (e) {
    if (e instanceof FieldProblem) form.showError(e.field, e.message);
    else if (e.status === 409 && view.item) {
      const fresh = await explainConflict(page, view.item, e, (msg) => form.showError(null, msg));
      // Start again from what is stored now; the message stays on the reopened form.
      if (fresh) openForm(page, fresh, t("admin.conflict"));
      else if (fresh === null) {
        closeForm();
        renderAdmin();
        toast(t("admin.conflict_gone"), "error");
      }
    } else if (e.status !== 401) form.showError(e.field, e.message);
  } finally {
    saveButton.disabled = false;
  }
}

// ---------------------------------------------------------------- cameras: test connection

/** "Test connection": probes the sub URL (else the main one) with the form's credentials. */
function probePanel(view, readOnly) {
  if (readOnly) return null;
  const out = h("div", { class: "probe-result", "data-testid": "probe-result", hidden: true });
  const run = async () => {
    const v = view.form.values();
    const url = v.sub || v.main;
    out.hidden = false;
    if (!/^rtsps?:\/\//i.test(url || "")) {
      out.dataset.state = "error";
      fill(out, h("p", { class: "form-error" }, t("admin.probe.needs_rtsp")));
      return;
    }
    const body = { url };
    if (v.username) body.username = v.username;
    if (v.password) body.password = v.password;
    out.dataset.state = "running";
    fill(out, h("p", { class: "muted" }, t("admin.probe.running")));
    probe.disabled = true;
    try {
      const r = await api("POST", "/api/v1/cameras/probe", body);
      const gop = r.gop_frames != null ? t("admin.probe.gop_value", { frames: r.gop_frames, secs: r.gop_secs != null ? Number(r.gop_secs).toFixed(1) : "?" }) : "—";
      const facts = [
        ["admin.probe.codec", r.codec || "—", "probe-codec"],
        ["admin.probe.resolution", r.width && r.height ? `${r.width}×${r.height}` : "—", "probe-resolution"],
        ["admin.probe.fps", r.fps != null ? Number(r.fps).toFixed(1) : "—", "probe-fps"],
        ["admin.probe.gop", gop, "probe-gop"],
      ];
      const img = r.snapshot ? h("img", { class: "probe-snapshot", alt: t("admin.probe.preview"), "data-testid": "probe-snapshot" }) : null;
      if (img) {
        img.onload = () => (img.dataset.loaded = "true");
        img.onerror = () => (img.dataset.loaded = "error");
        img.src = r.snapshot;
        view.probe = r.snapshot;
        if (v.id) admin.probeFrames.set(v.id, r.snapshot);
      }
      out.dataset.state = "ok";
      fill(out,
        h("p", { class: "ok-text" }, t("admin.probe.ok")),
        h("dl", { class: "facts probe-facts" }, facts.flatMap(([k, val, id]) => [h("dt", {}, t(k)), h("dd", { "data-testid": id }, val)])),
        img || h("p", { class: "muted" }, t("admin.probe.no_preview")),
      );
    } catch (e) {
      out.dataset.state = "error";
      fill(out, h("p", { class: "form-error", "data-testid": "probe-error" }, t("admin.probe.failed", { msg: e.message })));
    } finally {
      probe.disabled = false;
    }
  };
  const probe = button(t("admin.probe"), "camera-probe", run);
  return h("div", { class: "probe" }, h("div", { class: "probe-head" }, probe, h("small", { class: "muted" }, t("admin.help.probe"))), out);
}

// ---------------------------------------------------------------- cameras: CSV import

function importControls() {
  const file = h("input", {
    type: "file",
    accept: ".csv,text/csv",
    hidden: true,
    "data-testid": "admin-import-file",
    onchange: () => {
      const f = file.files[0];
      file.value = "";
      if (f) importCsv(f);
    },
  });
  return [button(t("admin.import"), "admin-import", () => file.click()), file];
}

async function importCsv(f) {
  admin.report = { state: "running", name: f.name };
  renderAdmin();
  try {
    const text = await f.text();
    const r = await api("POST", "/api/v1/cameras/import", undefined, { raw: text, contentType: "text/csv" });
    admin.report = { state: "ok", name: f.name, created: r?.created ?? r?.ids?.length ?? 0 };
    await loadTopology();
  } catch (e) {
    admin.report = { state: "error", name: f.name, message: e.message, rows: e.rows || [] };
  }
  renderAdmin();
}

function importReport() {
  const r = admin.report;
  const head =
    r.state === "running"
      ? t("admin.import.running", { file: r.name })
      : r.state === "ok"
        ? t("admin.import.done", { file: r.name, n: r.created })
        : t("admin.import.refused", { file: r.name, msg: r.message });
  return h(
    "div",
    { class: `import-report is-${r.state}`, "data-testid": "import-report", dataset: { state: r.state } },
    h(
      "div",
      { class: "report-head" },
      h("strong", {}, head),
      button(t("admin.close"), "import-report-close", () => {
        admin.report = null;
        renderAdmin();
      }),
    ),
    r.rows?.length
      ? h(
          "table",
          { class: "table", "data-testid": "import-rows" },
          h("thead", {}, h("tr", {}, h("th", {}, t("admin.import.row")), h("th", {}, t("admin.import.field")), h("th", {}, t("admin.import.message")))),
          h(
            "tbody",
            {},
            r.rows.map((x) => h("tr", {}, h("td", { class: "num" }, x.row ?? "—"), h("td", { class: "mono" }, x.field ?? "—"), h("td", {}, x.message ?? ""))),
          ),
        )
      : null,
    r.state === "error" ? h("p", { class: "muted" }, t("admin.import.nothing_stored")) : null,
  );
}

// ---------------------------------------------------------------- zones

function openZones(cameraId) {
  const it = item("cameras", cameraId);
  if (!it) return;
  closeForm();
  const editor = zoneEditor({
    item: it,
    readOnly: isConfig(it),
    probeFrame: admin.probeFrames.get(String(cameraId)) || null,
    grabFrame: (body) => api("POST", "/api/v1/cameras/probe", body),
    save: async (entry, base) => {
      const saved = await api("PUT", `/api/v1/topology/cameras/${enc(cameraId)}`, entry, { headers: ifMatch(base) });
      // The alert list and detail name zones from the topology: give them the new ones.
      loadTopology();
      return saved;
    },
    reload: async () => {
      await loadTopology();
      return item("cameras", cameraId) || null;
    },
    onClose: () => {
      admin.zones = null;
      renderAdmin();
    },
  });
  admin.zones = { cameraId: String(cameraId), editor };
  renderAdmin();
}

// ---------------------------------------------------------------- cluster

// GET /api/v1/cluster: the district's nodes and leases as the answering node reads them from
// NATS (a single hub answers clustered: false and nothing else). Read-only; the page asks
// again every CLUSTER_REFRESH_MS while it is shown. The functions from here to `clusterState`
// are pure: tests/browser/cluster.test.mjs runs them under node.

/** How often the cluster page asks again while it is shown, in milliseconds. */
export const CLUSTER_REFRESH_MS = 5000;
/** Camera leases shown per page of their table. */
export const CLUSTER_PAGE_ROWS = 100;
/**
 * A heartbeat older than this (milliseconds) is marked late: nodes renew theirs every 2 s by
 * default (`[cluster] renew_every`), so this is two renewals missed; at `lease_ttl` (default
 * 10 s) the node drops out of the answer.
 */
export const HEARTBEAT_LATE_MS = 5000;
/**
 * The tasks a district leases to one node (`xueliang::cluster::TASK_*`), in the order shown.
 * The gate work is cut into shards, each its own task: `gate-alerts-0`, `gate-alerts-1`, ...
 */
export const CLUSTER_TASKS = ["gate-alerts", "notify", "retention"];

/** A task's name split into its kind and its shard: "gate-alerts-3" -> {base: "gate-alerts", shard: 3}. */
export function taskParts(name) {
  const m = /^(gate-alerts)-(\d+)$/.exec(String(name));
  return m ? { base: m[1], shard: Number(m[2]) } : { base: String(name), shard: null };
}

/** A lease key split at its first dot: `camera.<id>`, `task.<name>`; anything else is "other". */
export function leaseKind(key) {
  const k = String(key ?? "");
  for (const kind of ["camera", "task"]) {
    if (k.startsWith(`${kind}.`) && k.length > kind.length + 1) return { kind, name: k.slice(kind.length + 1) };
  }
  return { kind: "other", name: k };
}

/**
 * A task's name in the console's language ("gate-alerts" -> 门禁告警处理, "gate-alerts-3" ->
 * 门禁告警处理 #3); an unknown one as it is.
 */
export function taskLabel(name) {
  const { base, shard } = taskParts(name);
  const label = tOr(`cluster.task.${base}`, base);
  return shard === null ? label : `${label} #${shard}`;
}

/**
 * A node's tasks in one line, a task's shards together: ["gate-alerts-0", "gate-alerts-5",
 * "notify"] -> "门禁告警处理 #0 #5 · 通知推送". `names` in the order to show.
 */
export function tasksText(names) {
  const shards = new Map();
  for (const name of names) {
    const { base, shard } = taskParts(name);
    if (!shards.has(base)) shards.set(base, []);
    if (shard !== null) shards.get(base).push(`#${shard}`);
  }
  return [...shards]
    .map(([base, numbers]) => [tOr(`cluster.task.${base}`, base), ...numbers].join(" "))
    .join(" · ");
}

/** Milliseconds as seconds for a table: one decimal under 10 s, else whole; "—" for none. */
export function secsText(ms) {
  const n = Number(ms);
  if (ms === null || ms === undefined || !Number.isFinite(n) || n < 0) return "—";
  const s = n / 1000;
  return s < 10 ? s.toFixed(1) : String(Math.round(s));
}

/** A share (0..1) as a percentage: whole percents, "<1%" for a sliver, "—" for none. */
export function percentText(share) {
  if (share === null || share === undefined || !Number.isFinite(share)) return "—";
  if (share > 0 && share < 0.005) return "<1%";
  return `${Math.round(share * 100)}%`;
}

/**
 * `url` when it is an absolute http(s) URL (a node's advertised API, safe to make a link of),
 * else null.
 */
export function httpUrl(url) {
  if (typeof url !== "string" || !url) return null;
  try {
    const u = new URL(url);
    return u.protocol === "http:" || u.protocol === "https:" ? url : null;
  } catch (_) {
    return null;
  }
}

/** Names in natural order ("2号" before "10号"), then ids. */
const byNameThenId = (a, b) =>
  a.name.localeCompare(b.name, undefined, { numeric: true }) || a.id.localeCompare(b.id, undefined, { numeric: true });

/**
 * The cluster page's rows from the API's answer; `cameraName(id)` is a camera's display name
 * (the topology's, else the id). Returns
 * - `clustered`, `node` (the answering node's id);
 * - `nodes`: the live nodes in the answer's order, then any lease holder without a heartbeat
 *   (`live: false`: a node that died and whose leases have not expired yet), each {id, self,
 *   live, weight, advertise (the text), link (an http(s) URL or null), held (leases it reported
 *   at its heartbeat; counted from the leases for a node without one), cameras (its camera
 *   leases), tasks ([names]), heartbeatMs, late, share (of the district's camera leases,
 *   0..1), weightShare (its weight over the live nodes', 0..1; null when not live)};
 * - `tasks`: [{name, label, node, ageMs, revision}], the known tasks first in CLUSTER_TASKS
 *   order, then any other by name;
 * - `cameras`: [{id, name, node, ageMs, revision}] by name in natural order, then id;
 * - `totals`: {nodes (live), cameras, tasks}.
 * Anything malformed in the answer is left out rather than shown half.
 */
export function clusterRows(view, cameraName = (id) => id) {
  const self = typeof view?.node === "string" ? view.node : null;
  const liveNodes = (Array.isArray(view?.nodes) ? view.nodes : []).filter((n) => n && typeof n.id === "string");
  const leases = (Array.isArray(view?.leases) ? view.leases : []).filter(
    (l) => l && typeof l.key === "string" && typeof l.node === "string",
  );
  const tasks = [];
  const cameras = [];
  const byNode = new Map();
  const of = (id) => {
    if (!byNode.has(id)) byNode.set(id, { leases: 0, cameras: 0, tasks: [] });
    return byNode.get(id);
  };
  for (const l of leases) {
    const { kind, name } = leaseKind(l.key);
    const mine = of(l.node);
    mine.leases += 1;
    const common = { node: l.node, ageMs: Number.isFinite(l.age_ms) ? l.age_ms : null, revision: l.revision ?? null };
    if (kind === "camera") {
      mine.cameras += 1;
      cameras.push({ id: name, name: String(cameraName(name) || name), ...common });
    } else if (kind === "task") {
      mine.tasks.push(name);
      tasks.push({ name, label: taskLabel(name), ...common });
    }
  }
  const rank = (name) => {
    const i = CLUSTER_TASKS.indexOf(taskParts(name).base);
    return i < 0 ? CLUSTER_TASKS.length : i;
  };
  // Shards in number order (gate-alerts-2 before gate-alerts-10).
  const byName = (a, b) => a.localeCompare(b, "en", { numeric: true });
  tasks.sort((a, b) => rank(a.name) - rank(b.name) || byName(a.name, b.name) || a.node.localeCompare(b.node));
  for (const n of byNode.values()) n.tasks.sort((a, b) => rank(a) - rank(b) || byName(a, b));
  cameras.sort(byNameThenId);

  const totalWeight = liveNodes.reduce((sum, n) => sum + (Number(n.weight) > 0 ? Number(n.weight) : 0), 0);
  const share = (n) => (cameras.length ? n / cameras.length : 0);
  const nodes = liveNodes.map((n) => {
    const mine = byNode.get(n.id) || of(n.id);
    const weight = Number(n.weight) > 0 ? Number(n.weight) : 0;
    const heartbeatMs = Number.isFinite(n.heartbeat_age_ms) ? n.heartbeat_age_ms : null;
    return {
      id: n.id,
      self: n.id === self,
      live: true,
      weight,
      advertise: typeof n.advertise === "string" ? n.advertise : null,
      link: httpUrl(n.advertise),
      held: Number.isFinite(n.held) ? n.held : mine.leases,
      cameras: mine.cameras,
      tasks: mine.tasks,
      heartbeatMs,
      late: heartbeatMs !== null && heartbeatMs > HEARTBEAT_LATE_MS,
      share: share(mine.cameras),
      weightShare: totalWeight ? weight / totalWeight : null,
    };
  });
  const live = new Set(liveNodes.map((n) => n.id));
  for (const id of [...byNode.keys()].filter((id) => !live.has(id)).sort()) {
    const mine = byNode.get(id);
    nodes.push({
      id,
      self: id === self,
      live: false,
      weight: null,
      advertise: null,
      link: null,
      held: mine.leases,
      cameras: mine.cameras,
      tasks: mine.tasks,
      heartbeatMs: null,
      late: true,
      share: share(mine.cameras),
      weightShare: null,
    });
  }
  return {
    clustered: view?.clustered === true,
    node: self,
    nodes,
    tasks,
    cameras,
    totals: { nodes: liveNodes.length, cameras: cameras.length, tasks: tasks.length },
  };
}

/** The camera rows whose name, id or node contains `query` (any case); all for a blank one. */
export function filterCameraRows(rows, query) {
  const q = String(query ?? "").trim().toLowerCase();
  if (!q) return rows;
  return rows.filter((r) => [r.name, r.id, r.node].some((v) => String(v).toLowerCase().includes(q)));
}

/** Page `page` (from 0, clamped to those there are) of `rows`, `size` a page: {rows, page, pages}. */
export function pageRows(rows, page, size = CLUSTER_PAGE_ROWS) {
  const pages = Math.max(1, Math.ceil(rows.length / size));
  const p = Math.min(Math.max(0, Math.trunc(Number(page)) || 0), pages - 1);
  return { rows: rows.slice(p * size, (p + 1) * size), page: p, pages };
}

/** The cluster page's state: the last answer, and the refresh while the page is shown. */
const clusterState = {
  view: null,
  error: null,
  fetchedAt: null,
  inFlight: false,
  timer: null,
  search: "",
  page: 0,
  /** The page's parts that each refresh fills (the search box stays as typed). */
  el: null,
};

function clusterPageEl() {
  const search = h("input", {
    type: "search",
    class: "admin-search",
    "data-testid": "cluster-search",
    placeholder: t("cluster.search"),
    value: clusterState.search,
    oninput: (e) => {
      clusterState.search = e.target.value;
      clusterState.page = 0;
      renderClusterBody();
    },
  });
  const turn = (delta) => {
    clusterState.page += delta;
    renderClusterBody();
  };
  const el = {
    status: h("span", { class: "muted", "data-testid": "cluster-status" }),
    loading: h("p", { class: "empty", "data-testid": "cluster-loading" }, t("cluster.loading")),
    single: h("p", { class: "notice cluster-single", "data-testid": "cluster-single", hidden: true }, t("cluster.single")),
    district: h("div", { class: "cluster", "data-testid": "cluster-district", hidden: true }),
    summary: h("p", { class: "cluster-summary", "data-testid": "cluster-summary" }),
    nodes: h("div", { class: "admin-table-wrap" }),
    tasks: h("div", { class: "admin-table-wrap" }),
    cameras: h("div", { class: "admin-table-wrap" }),
    count: h("span", { class: "muted", "data-testid": "cluster-camera-count" }),
    pageLabel: h("span", { "data-testid": "cluster-page" }),
    prev: button(t("wall.prev"), "cluster-prev", () => turn(-1)),
    next: button(t("wall.next"), "cluster-next", () => turn(1)),
  };
  fill(el.district,
    el.summary,
    h("h3", {}, t("cluster.nodes")),
    el.nodes,
    h("h3", {}, t("cluster.tasks")),
    el.tasks,
    h(
      "div",
      { class: "panel-head cluster-cameras-head" },
      h("h3", {}, t("cluster.cameras")),
      el.count,
      search,
      h("div", { class: "cluster-pager" }, el.prev, el.pageLabel, el.next),
    ),
    el.cameras,
  );
  clusterState.el = el;
  return [
    h("div", { class: "panel-head admin-head" }, h("h2", {}, t("admin.nav.cluster")), el.status),
    el.loading,
    el.single,
    el.district,
  ];
}

/** A plain table of the cluster page: `columns` [{label, value(row), class}], one row each. */
function clusterTable(testid, columns, rows, rowAttrs) {
  return h(
    "table",
    { class: "table admin-table", "data-testid": testid },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.class === "num" ? "num" : "" }, t(c.label))))),
    h(
      "tbody",
      {},
      rows.map((r) => h("tr", rowAttrs(r), columns.map((c) => h("td", { class: c.class }, c.value(r))))),
    ),
  );
}

const agoText = (ms) => (secsText(ms) === "—" ? "—" : t("cluster.secs_ago", { n: secsText(ms) }));

function shareCell(n) {
  const fillEl = h("span", { class: "share-fill" });
  // CSSOM, not a style attribute: the CSP allows it.
  fillEl.style.width = `${Math.max(0, Math.min(1, n.share)) * 100}%`;
  return [
    h("span", { class: "share-n" }, String(n.cameras)),
    h("span", { class: "share-bar", "data-testid": "cluster-share-bar" }, fillEl),
    h("span", { class: "share-pct", "data-testid": "cluster-share" }, percentText(n.share)),
    n.weightShare !== null ? h("small", { class: "muted" }, t("cluster.by_weight", { pct: percentText(n.weightShare) })) : null,
  ];
}

const NODE_COLUMNS = [
  {
    label: "cluster.col.node",
    value: (n) => [
      h("span", { class: "mono" }, n.id),
      n.self ? badge(t("cluster.self"), "badge-config", "cluster-self") : null,
      n.live ? null : badge(t("cluster.no_heartbeat"), "badge-late", "cluster-no-heartbeat"),
    ],
  },
  { label: "cluster.col.weight", value: (n) => (n.weight === null ? "—" : String(n.weight)), class: "num" },
  { label: "cluster.col.cameras", value: shareCell, class: "share" },
  { label: "cluster.col.held", value: (n) => String(n.held), class: "num" },
  { label: "cluster.col.tasks", value: (n) => (n.tasks.length ? tasksText(n.tasks) : "—") },
  {
    label: "cluster.col.heartbeat",
    value: (n) =>
      n.live
        ? h("span", { class: n.late ? "is-late" : "", title: n.late ? t("cluster.late", { n: HEARTBEAT_LATE_MS / 1000 }) : null }, agoText(n.heartbeatMs))
        : "—",
    class: "num",
  },
  {
    label: "cluster.col.advertise",
    value: (n) =>
      n.link
        ? h("a", { href: n.link, target: "_blank", rel: "noopener noreferrer", "data-testid": "cluster-advertise" }, n.advertise)
        : n.advertise || "—",
    class: "mono clip",
  },
];

const TASK_COLUMNS = [
  { label: "cluster.col.task", value: (r) => [h("span", {}, taskLabel(r.name)), h("small", { class: "muted mono task-key" }, r.name)] },
  { label: "cluster.col.node", value: (r) => r.node, class: "mono" },
  { label: "cluster.col.renewed", value: (r) => agoText(r.ageMs), class: "num" },
  { label: "cluster.col.revision", value: (r) => (r.revision === null ? "—" : String(r.revision)), class: "num mono" },
];

const CAMERA_COLUMNS = [
  { label: "cluster.col.camera", value: (r) => r.name },
  { label: "cluster.col.id", value: (r) => r.id, class: "mono" },
  { label: "cluster.col.node", value: (r) => r.node, class: "mono" },
  { label: "cluster.col.renewed", value: (r) => agoText(r.ageMs), class: "num" },
  { label: "cluster.col.revision", value: (r) => (r.revision === null ? "—" : String(r.revision)), class: "num mono" },
];

/** Fills the cluster page from the last answer (names from the topology as now loaded). */
function renderClusterBody() {
  const el = clusterState.el;
  if (!el || admin.page !== CLUSTER) return;
  const { view, error } = clusterState;
  el.status.textContent = error
    ? t("cluster.failed", { msg: error })
    : clusterState.fetchedAt
      ? t("cluster.updated", { time: fmtTime(new Date(clusterState.fetchedAt).toISOString(), false), n: CLUSTER_REFRESH_MS / 1000 })
      : "";
  el.status.classList.toggle("is-late", !!error);
  el.loading.hidden = view !== null || !!error;
  el.single.hidden = !view || view.clustered === true;
  el.district.hidden = !view || view.clustered !== true;
  if (!view || view.clustered !== true) return;

  const rows = clusterRows(view, (id) => nameOf("cameras", id));
  el.summary.textContent = t("cluster.summary", {
    node: rows.node ?? "—",
    nodes: rows.totals.nodes,
    cameras: rows.totals.cameras,
    tasks: rows.totals.tasks,
  });
  fill(el.nodes,
    rows.nodes.length
      ? clusterTable("cluster-nodes", NODE_COLUMNS, rows.nodes, (n) => ({
          "data-testid": "cluster-node",
          dataset: { id: n.id },
          class: [n.self ? "is-self" : "", n.live ? "" : "is-disabled"].join(" ").trim(),
        }))
      : h("p", { class: "empty" }, t("cluster.no_nodes")),
  );
  fill(el.tasks,
    rows.tasks.length
      ? clusterTable("cluster-tasks", TASK_COLUMNS, rows.tasks, (r) => ({ "data-testid": "cluster-task", dataset: { task: r.name } }))
      : h("p", { class: "empty", "data-testid": "cluster-tasks-empty" }, t("cluster.no_tasks")),
  );
  const found = filterCameraRows(rows.cameras, clusterState.search);
  const shown = pageRows(found, clusterState.page);
  clusterState.page = shown.page;
  el.count.textContent = t("admin.count", { shown: found.length, total: rows.cameras.length });
  el.pageLabel.textContent = t("wall.page", { page: shown.page + 1, pages: shown.pages });
  el.prev.disabled = shown.page === 0;
  el.next.disabled = shown.page >= shown.pages - 1;
  el.prev.parentElement.hidden = shown.pages < 2;
  fill(el.cameras,
    shown.rows.length
      ? clusterTable("cluster-cameras", CAMERA_COLUMNS, shown.rows, (r) => ({ "data-testid": "cluster-camera", dataset: { id: r.id } }))
      : h("p", { class: "empty", "data-testid": "cluster-cameras-empty" }, t(rows.cameras.length ? "admin.no_match" : "cluster.no_cameras")),
  );
}

/** Asks for the cluster's state once (not while an answer is awaited) and redraws. */
async function loadCluster() {
  if (clusterState.inFlight) return;
  clusterState.inFlight = true;
  try {
    clusterState.view = await api("GET", "/api/v1/cluster");
    clusterState.error = null;
    clusterState.fetchedAt = Date.now();
  } catch (e) {
    // Shown on the page (and the last answer kept), not toasted every 5 s.
    if (e.status !== 401) clusterState.error = e.message;
  } finally {
    clusterState.inFlight = false;
  }
  renderClusterBody();
}

function startClusterRefresh() {
  stopClusterRefresh();
  loadCluster();
  // A browser tab in the background asks for nothing; it catches up at the next tick shown.
  clusterState.timer = setInterval(() => {
    if (!document.hidden) loadCluster();
  }, CLUSTER_REFRESH_MS);
}

function stopClusterRefresh() {
  if (clusterState.timer !== null) clearInterval(clusterState.timer);
  clusterState.timer = null;
}

// ---------------------------------------------------------------- rendering

function renderRows() {
  if (admin.page === CLUSTER) {
    renderClusterBody();
    return;
  }
  const page = PAGES[admin.page];
  if (!admin.tableWrap) return;
  const q = admin.search.trim().toLowerCase();
  const rows = page.list().filter((r) => !q || page.searchText(r).includes(q));
  fill(admin.tableWrap,
    table({
      columns: page.columns,
      rows,
      key: page.key,
      rowClass: page.rowClass,
      actions: (r) => page.actions(r),
      empty: q ? t("admin.no_match") : t("admin.empty"),
      testid: "admin-table",
    }),
  );
  const count = $("#admin-count");
  if (count) count.textContent = t("admin.count", { shown: rows.length, total: page.list().length });
}

/** Draws the admin panel for the current page (or the open zone editor). */
export function renderAdmin() {
  for (const b of $$("[data-admin-page]")) b.classList.toggle("active", b.dataset.adminPage === admin.page);
  const root = $("#admin-body");
  if (!root) return;
  if (admin.zones) {
    fill(root, admin.zones.editor.el);
    return;
  }
  if (admin.page === CLUSTER) {
    root.dataset.page = CLUSTER;
    fill(root, clusterPageEl());
    renderClusterBody();
    return;
  }
  clusterState.el = null;
  const page = PAGES[admin.page];
  root.dataset.page = page.id;
  const search = h("input", {
    type: "search",
    class: "admin-search",
    "data-testid": "admin-search",
    placeholder: t(page.id === "cameras" ? "admin.search.cameras" : "admin.search"),
    value: admin.search,
    oninput: (e) => {
      admin.search = e.target.value;
      renderRows();
    },
  });
  admin.tableWrap = h("div", { class: "admin-table-wrap" });
  fill(root,
    h(
      "div",
      { class: "panel-head admin-head" },
      h("h2", {}, t(page.title)),
      h("span", { id: "admin-count", class: "muted" }),
      search,
      ...(page.toolbar ? page.toolbar() : []),
      button(t(page.add), "admin-add", () => openForm(page, null), "btn-primary"),
    ),
    admin.report && page.id === "cameras" ? importReport() : null,
    page.id === "cameras" ? h("p", { class: "muted small" }, t("admin.import.help", { header: CSV_HEADER })) : null,
    h("div", { class: `admin-main${admin.view ? " with-form" : ""}` }, admin.tableWrap, admin.view?.el),
  );
  renderRows();
}

/**
 * Shows the admin panel, reloading what its page lists. With `page` (one of PAGES' keys or
 * "cluster", from the sub-navigation) it opens that page, closing the zone editor; without,
 * it shows the panel as it was left (the tab was selected again). The cluster page refreshes
 * itself while it is shown.
 */
export async function showAdminPage(requested) {
  if (requested && (PAGES[requested] || requested === CLUSTER)) {
    if (requested !== admin.page) {
      admin.page = requested;
      admin.search = "";
      admin.report = null;
      closeForm();
    }
    admin.zones = null;
  }
  const page = admin.page;
  renderAdmin();
  if (page === CLUSTER) {
    // Camera names come from the topology; the leases themselves come every few seconds.
    loadTopology();
    startClusterRefresh();
    return;
  }
  stopClusterRefresh();
  try {
    await PAGES[page].load();
    // The users page names communities and stations too.
    if (page === "users") await loadTopology();
  } catch (e) {
    if (e.status !== 401) toast(e.message, "error");
  }
  if (admin.page === page && !admin.zones) renderRows();
}

/** Fresh names or entries: redraws the table (an open form is left as typed). */
export function renderAdminRows() {
  if (!admin.zones) renderRows();
}

/** After a language switch: rebuilds the page; an open form keeps what was typed. */
export function rerenderAdmin() {
  if (admin.zones) {
    admin.zones.editor.rerender();
  } else if (admin.view) {
    const v = admin.view;
    const typed = v.form.values();
    openForm(v.page, v.item);
    // Put back what was typed (the form was rebuilt in the new language).
    for (const [k, val] of Object.entries(typed)) {
      const el = admin.view.el.querySelector(`[name="${CSS.escape(k)}"]`);
      if (!el) continue;
      if (el.type === "checkbox") el.checked = !!val;
      else if (typeof val === "string") el.value = val;
    }
    return;
  }
  renderAdmin();
}

/** The admin panel is no longer shown (another tab): the cluster page stops asking. */
export function hideAdmin() {
  stopClusterRefresh();
}

/** Starts afresh for `user` (sign-in, sign-out). */
export function resetAdmin(user = null) {
  stopClusterRefresh();
  Object.assign(clusterState, { view: null, error: null, fetchedAt: null, search: "", page: 0, el: null });
  admin.me = user;
  admin.view = null;
  admin.zones = null;
  admin.report = null;
  admin.users = [];
  admin.search = "";
  admin.probeFrames.clear();
}
