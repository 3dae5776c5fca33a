// The topology as the caller may see it (GET /api/v1/topology): stations, communities, grids,
// cameras and gates, each item {kind, entry, meta}. The alert list, the detail and the camera
// wall take display names from it (falling back to ids); the admin pages list and edit it.

import { api } from "./ui.js";

/** The kinds, as the API's path segments, in the order of the hierarchy. */
export const KINDS = ["stations", "communities", "grids", "cameras", "gates"];

/** An id seen in an alert but not in the topology reloads it, at most this often. */
const UNKNOWN_RELOAD_MS = 30_000;

const cache = {
  items: Object.fromEntries(KINDS.map((k) => [k, []])),
  byId: Object.fromEntries(KINDS.map((k) => [k, new Map()])),
  loaded: false,
  loading: null,
  lastUnknownReload: 0,
  listeners: [],
};

/** Every item of `kind` the caller sees. */
export function items(kind) {
  return cache.items[kind] || [];
}

/** The item of `kind` with `id`, or undefined. */
export function item(kind, id) {
  return cache.byId[kind]?.get(String(id));
}

/**
 * The display name of `kind`'s `id`, or the id itself when the topology does not know it (not
 * loaded yet, or an id from before a rename). An id the loaded topology lacks reloads it, at
 * most every 30 s.
 */
export function nameOf(kind, id) {
  if (id === undefined || id === null || id === "") return "";
  const it = item(kind, id);
  if (!it) reloadForUnknown();
  return it?.entry?.name || String(id);
}

/**
 * Something an alert names is not in the loaded topology (an id, or a zone of a known camera):
 * reloads it, at most every 30 s.
 */
export function reloadForUnknown() {
  if (cache.loaded && Date.now() - cache.lastUnknownReload > UNKNOWN_RELOAD_MS) {
    cache.lastUnknownReload = Date.now();
    loadTopology();
  }
}

/** "name (id)" when the name says something the id does not; else the id. */
export function nameAndId(kind, id) {
  const name = nameOf(kind, id);
  return name && name !== String(id) ? `${name} (${id})` : String(id ?? "");
}

/** Calls `f` after every load (names may have changed). */
export function onTopology(f) {
  cache.listeners.push(f);
}

/** Forgets everything (logout). */
export function clearTopology() {
  for (const k of KINDS) {
    cache.items[k] = [];
    cache.byId[k] = new Map();
  }
  cache.loaded = false;
}

/**
 * (Re)loads the topology; concurrent calls share one request. Resolves true when loaded. A
 * failure leaves the previous names in place (the console works on ids alone).
 */
export function loadTopology() {
  if (cache.loading) return cache.loading;
  cache.loading = (async () => {
    try {
      const all = await api("GET", "/api/v1/topology");
      for (const k of KINDS) {
        const list = Array.isArray(all?.[k]) ? all[k].filter((x) => x && x.entry && x.entry.id) : [];
        list.sort((a, b) => String(a.entry.id).localeCompare(String(b.entry.id)));
        cache.items[k] = list;
        cache.byId[k] = new Map(list.map((x) => [String(x.entry.id), x]));
      }
      cache.loaded = true;
      for (const f of cache.listeners) f();
      return true;
    } catch (e) {
      if (e.status !== 401) console.warn("topology not loaded:", e.message);
      return false;
    } finally {
      cache.loading = null;
    }
  })();
  return cache.loading;
}
