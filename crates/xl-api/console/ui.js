// Helpers shared by the console's modules: building elements, the JSON API (cookie session,
// X-CSRF-Token on every change), times, the toast. No state of the console lives here.

import { t } from "./i18n.js";

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** Builds an element: h("div", {class: "x", dataset: {id: 1}, onclick: f}, "text", child). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  const props = [];
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      // Properties rather than attributes (they hold after the user has typed), set once the
      // children are in (a <select>'s value needs its options).
      else if (k === "value" || k === "checked") props.push([k, v]);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  for (const [k, v] of props) el[k] = v;
  return el;
}

/** Replaces `el`'s children, leaving out null, undefined and false (conditional parts). */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

const svgNS = "http://www.w3.org/2000/svg";
/** Builds an SVG element. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return "";
}

// ---------------------------------------------------------------- times

export const pad = (n) => String(n).padStart(2, "0");

export function parseTime(v) {
  if (!v) return null;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function fmtTime(v, withDate = true) {
  const d = parseTime(v);
  if (!d) return "—";
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (!withDate) return hms;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms}`;
}

// ---------------------------------------------------------------- toast

let toastTimer = null;
export function toast(msg, kind = "info") {
  const el = $("#toast");
  el.textContent = msg;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), 4000);
}

// ---------------------------------------------------------------- API

/** An answer other than 2xx: its status, the API's message and, when JSON, the whole body. */
export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }

  /** The field the API named (`sub.url`, `zones[0].polygon`), if any. */
  get field() {
    const b = this.body;
    return b?.error?.field ?? b?.field ?? null;
  }

  /** The per-row report of a refused CSV import: [{row, field, message}]. */
  get rows() {
    const b = this.body;
    const rows = b?.rows ?? b?.error?.rows;
    return Array.isArray(rows) ? rows : null;
  }
}

let onUnauthorized = () => {};
/** What to do when the API answers 401 (the session ended): set once by the app. */
export function setUnauthorizedHandler(f) {
  onUnauthorized = f;
}

/**
 * Calls the API. `body` is sent as JSON; `opts.raw` instead sends a string with
 * `opts.contentType` (a CSV file); `opts.headers` adds headers (If-Match). Resolves with the
 * answer's JSON (or text, or null for 204); rejects with an ApiError.
 */
export async function api(method, path, body, opts = {}) {
  const res = await apiResponse(method, path, body, opts);
  if (res.status === 204) return null;
  const ct = res.headers.get("content-type") || "";
  return ct.includes("json") ? res.json() : res.text();
}

/**
 * Like `api`, but resolves with the 2xx Response itself, body unread, for answers that are
 * not JSON (a video's headers, an export's zip as a blob). Rejects with an ApiError.
 */
export async function apiResponse(method, path, body, opts = {}) {
  const headers = { Accept: "application/json", ...(opts.headers || {}) };
  if (method !== "GET" && method !== "HEAD") {
    const csrf = cookie("xl_csrf");
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  const init = { method, headers, credentials: "same-origin" };
  if (opts.raw !== undefined) {
    headers["Content-Type"] = opts.contentType || "text/plain";
    init.body = opts.raw;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, t("error.network"));
  }
  if (!res.ok) {
    let msg = `HTTP ${res.status}`;
    let data = null;
    try {
      data = await res.json();
      msg = data?.error?.message || data?.message || (typeof data?.error === "string" ? data.error : msg);
    } catch (_) {
      /* not JSON */
    }
    if (res.status === 401 && !path.endsWith("/auth/login")) onUnauthorized();
    throw new ApiError(res.status, msg, data);
  }
  return res;
}
