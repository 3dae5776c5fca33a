// How an alert reads in the console's language. The server's `title` is one English line with
// ids ("Person in zone lawn on camera xingfu-square"), kept for MQTT, webhooks and logs; the
// console composes its own from the alert's kind and fields, with display names from the
// topology, and keeps the server's title only for a kind it does not know (or an alert that
// lacks a field its kind's title names). Also: where an alert happened, and its history with
// each run of repeats folded into one line. No DOM here.

import { t, tOr } from "./i18n.js";
import { parseTime, fmtTime } from "./ui.js";
import { item, nameOf, reloadForUnknown } from "./topology.js";

/** The fields each kind's title names (`title.{kind}` in i18n.js, with these placeholders). */
export const TITLE_FIELDS = {
  "gate.forced_open": ["gate"],
  "gate.held_open": ["gate"],
  "gate.duress": ["gate"],
  "gate.tamper": ["gate"],
  "gate.blacklist": ["gate"],
  "gate.denied_burst": ["gate"],
  "gate.offline": ["gate"],
  "camera.offline": ["camera"],
  "recording.failed": ["camera"],
  "person.intrusion": ["camera", "zone"],
  "person.loitering": ["camera", "zone"],
  "crowd.gathering": ["camera", "zone"],
};

/**
 * The zone's display name (the `name` the camera's zone may have), else its id. A zone the
 * loaded camera lacks (drawn since) reloads the topology, as an unknown id does.
 */
export function zoneName(camera, zone) {
  if (zone === undefined || zone === null || zone === "") return "";
  const cam = item("cameras", camera);
  const zones = cam?.entry?.zones;
  const z = Array.isArray(zones) ? zones.find((x) => String(x?.id) === String(zone)) : null;
  if (cam && !z) reloadForUnknown();
  return z?.name || String(zone);
}

/** "name (id)" when the zone has a name of its own; else its id. */
export function zoneNameAndId(camera, zone) {
  const name = zoneName(camera, zone);
  return name && name !== String(zone) ? `${name} (${zone})` : String(zone ?? "");
}

/** The alert's title in the console's language, naming its gate, camera and zone by name. */
export function alertTitle(a) {
  const fields = TITLE_FIELDS[a?.kind];
  if (!fields || fields.some((f) => !a[f])) return a?.title || tOr(`kind.${a?.kind}`, a?.kind || "?");
  return t(`title.${a.kind}`, {
    gate: nameOf("gates", a.gate),
    camera: nameOf("cameras", a.camera),
    zone: zoneName(a.camera, a.zone),
  });
}

/** Where: community · gate (else camera) · zone, by name. */
export function alertWhere(a) {
  return [
    nameOf("communities", a.community),
    a.gate ? nameOf("gates", a.gate) : nameOf("cameras", a.camera),
    a.zone ? zoneName(a.camera, a.zone) : "",
  ]
    .filter(Boolean)
    .join(" · ");
}

const at = (e) => parseTime(e?.at)?.getTime() ?? 0;

/**
 * The history, oldest first, as lines: `{entry}` for each entry, except that two or more
 * consecutive repeats (without a note) become one `{repeats: [entries]}`.
 */
export function foldHistory(history) {
  const lines = [];
  let run = [];
  const flush = () => {
    if (run.length === 1) lines.push({ entry: run[0] });
    else if (run.length > 1) lines.push({ repeats: run });
    run = [];
  };
  for (const e of (history || []).slice().sort((x, y) => at(x) - at(y))) {
    if (e.action === "repeated" && !e.note) run.push(e);
    else {
      flush();
      lines.push({ entry: e });
    }
  }
  flush();
  return lines;
}

/** "Repeated 23 times, 10:02:11–10:03:10" (the end with its date when on another day). */
export function repeatsText(run) {
  const first = run[0]?.at;
  const last = run[run.length - 1]?.at;
  const sameDay = parseTime(first)?.toDateString() === parseTime(last)?.toDateString();
  return t("history.repeats", { n: run.length, from: fmtTime(first, false), to: fmtTime(last, !sameDay) });
}

/** Who made a history entry: a user's name, or "system" in the console's language. */
export function actorText(e) {
  return e?.actor === "system" ? t("history.system") : e?.actor || "";
}

/**
 * The note of a history entry. The rules engine's own notes (an escalation at the deadline, a
 * device back online) are English; they are told again in the console's language from the
 * entry's action and the alert's fields. Anything else (a person's note) is shown as written.
 */
export function noteText(e, a) {
  if (!e?.note || e.actor !== "system") return e?.note || "";
  if (e.action === "escalated") return t("history.note.not_acknowledged");
  if (e.action === "resolved" && a?.kind === "camera.offline" && a.camera) {
    return t("history.note.camera_back", { camera: nameOf("cameras", a.camera) });
  }
  if (e.action === "resolved" && a?.kind === "recording.failed" && a.camera) {
    return t("history.note.recording_back", { camera: nameOf("cameras", a.camera) });
  }
  if (e.action === "resolved" && a?.kind === "gate.offline" && a.gate) {
    return t("history.note.gate_back", { gate: nameOf("gates", a.gate) });
  }
  return e.note;
}
