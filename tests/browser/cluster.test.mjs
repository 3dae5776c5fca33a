#!/usr/bin/env node
// The cluster page's pure parts (crates/xl-api/console/admin.js, from leaseKind to pageRows):
// the API's answer (GET /api/v1/cluster) of a district of three nodes turned into the page's
// rows: leases grouped by node, each node's share of the district's cameras and its share by
// weight, late heartbeats, a holder whose heartbeat is gone, task names in both languages,
// cameras by their display names, the camera search and its pages. No browser needed:
//
//   node tests/browser/cluster.test.mjs
//
// (node:test; exit status 0 when every test passed, 1 otherwise, each failure on stderr.)

import { test } from "node:test";
import assert from "node:assert/strict";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const consoleDir = join(dirname(fileURLToPath(import.meta.url)), "../../crates/xl-api/console");
const cl = await import(join(consoleDir, "admin.js"));
const i18n = await import(join(consoleDir, "i18n.js"));

/** Runs `f` with the console in language `lang`. */
function inLang(lang, f) {
  const was = i18n.getLang();
  i18n.setLang(lang);
  try {
    return f();
  } finally {
    i18n.setLang(was);
  }
}

const camera = (id, node, age_ms = 800, revision = 100) => ({ key: `camera.${id}`, node, revision, age_ms });
const task = (name, node, age_ms = 1200, revision = 7) => ({ key: `task.${name}`, node, revision, age_ms });

/**
 * A district of three nodes as node-b answers: node-a (weight 100) holds 3 cameras and two
 * shards of the gate work, node-b (weight 200, this node) 5 cameras, notify and retention, node-c (weight
 * 100) 2 cameras and a heartbeat 7.5 s old; node-c advertises a URL that is no http(s) link.
 */
function district() {
  return {
    clustered: true,
    node: "node-b",
    nodes: [
      { id: "node-a", weight: 100, advertise: "http://10.0.0.1:8080", held: 5, cameras: 3, heartbeat_age_ms: 400 },
      { id: "node-b", weight: 200, advertise: "https://hub-b.example:8443/", held: 7, cameras: 5, heartbeat_age_ms: 1900 },
      { id: "node-c", weight: 100, advertise: "javascript:alert(1)", held: 2, cameras: 2, heartbeat_age_ms: 7500 },
    ],
    leases: [
      camera("cam-01", "node-a"),
      camera("cam-02", "node-b"),
      camera("cam-03", "node-b"),
      camera("cam-04", "node-a"),
      camera("cam-05", "node-c", 12_400, 310),
      camera("cam-06", "node-b"),
      camera("cam-07", "node-b"),
      camera("cam-08", "node-a"),
      camera("cam-09", "node-c"),
      camera("lobby.v2", "node-b"),
      task("retention", "node-b"),
      task("gate-alerts-10", "node-a", 300, 42),
      task("gate-alerts-2", "node-a"),
      task("notify", "node-b"),
    ],
  };
}

const NAMES = { "cam-01": "北门", "cam-05": "南门", "lobby.v2": "大堂" };
const nameOf = (id) => NAMES[id] ?? id;

test("a lease key is a camera's id or a task's name, split at the first dot", () => {
  assert.deepEqual(cl.leaseKind("camera.cam-01"), { kind: "camera", name: "cam-01" });
  assert.deepEqual(cl.leaseKind("camera.lobby.v2"), { kind: "camera", name: "lobby.v2" });
  assert.deepEqual(cl.leaseKind("task.gate-alerts-3"), { kind: "task", name: "gate-alerts-3" });
  for (const odd of ["camera.", "task", "gate.g1", "", null, undefined]) assert.equal(cl.leaseKind(odd).kind, "other", String(odd));
});

test("the leases are grouped by node, with each node's share of the cameras and by weight", () => {
  const rows = cl.clusterRows(district(), nameOf);
  assert.equal(rows.clustered, true);
  assert.equal(rows.node, "node-b");
  assert.deepEqual(rows.totals, { nodes: 3, cameras: 10, tasks: 4 });
  assert.deepEqual(
    rows.nodes.map((n) => [n.id, n.self, n.live, n.cameras, n.held, n.tasks]),
    [
      ["node-a", false, true, 3, 5, ["gate-alerts-2", "gate-alerts-10"]],
      ["node-b", true, true, 5, 7, ["notify", "retention"]],
      ["node-c", false, true, 2, 2, []],
    ],
  );
  assert.deepEqual(rows.nodes.map((n) => n.share), [0.3, 0.5, 0.2]);
  assert.deepEqual(rows.nodes.map((n) => n.weightShare), [0.25, 0.5, 0.25]);
  assert.deepEqual(rows.nodes.map((n) => cl.percentText(n.share)), ["30%", "50%", "20%"]);
  // The shares of every camera add up to the whole district.
  assert.equal(rows.nodes.reduce((sum, n) => sum + n.cameras, 0), rows.totals.cameras);
});

test("a heartbeat over 5 s is late, and only an http(s) address becomes a link", () => {
  const rows = cl.clusterRows(district(), nameOf);
  assert.deepEqual(rows.nodes.map((n) => [n.heartbeatMs, n.late]), [[400, false], [1900, false], [7500, true]]);
  assert.deepEqual(rows.nodes.map((n) => cl.secsText(n.heartbeatMs)), ["0.4", "1.9", "7.5"]);
  assert.deepEqual(rows.nodes.map((n) => n.link), ["http://10.0.0.1:8080", "https://hub-b.example:8443/", null]);
  assert.equal(rows.nodes[2].advertise, "javascript:alert(1)", "shown as text");
  assert.equal(cl.httpUrl("10.0.0.3:8080"), null);
  assert.equal(cl.httpUrl(null), null);
});

test("tasks come in their fixed order, shards by number, named in the console's language", () => {
  const rows = inLang("zh", () => cl.clusterRows(district(), nameOf));
  assert.deepEqual(
    rows.tasks.map((r) => [r.name, r.label, r.node, r.ageMs, r.revision]),
    [
      ["gate-alerts-2", "门禁告警处理 #2", "node-a", 1200, 7],
      ["gate-alerts-10", "门禁告警处理 #10", "node-a", 300, 42],
      ["notify", "告警推送", "node-b", 1200, 7],
      ["retention", "数据保留", "node-b", 1200, 7],
    ],
  );
  assert.deepEqual(
    inLang("en", () => cl.CLUSTER_TASKS.map(cl.taskLabel)),
    ["Gate alert processing", "Alert publishing", "Retention"],
  );
  // A task a newer node leases shows by its name (after the known ones) rather than not at all.
  const newer = district();
  newer.leases.push(task("audit-export", "node-c"));
  const later = cl.clusterRows(newer, nameOf);
  assert.deepEqual(later.tasks.map((r) => [r.name, r.label]).at(-1), ["audit-export", "audit-export"]);
  assert.deepEqual(later.nodes[2].tasks, ["audit-export"]);
  // A node's column puts a task's shards together.
  assert.equal(
    inLang("zh", () => cl.tasksText(rows.nodes[0].tasks.concat(["notify"]))),
    "门禁告警处理 #2 #10 · 告警推送",
  );
  assert.equal(inLang("en", () => cl.tasksText(["audit-export"])), "audit-export");
  assert.deepEqual(cl.taskParts("gate-alerts-7"), { base: "gate-alerts", shard: 7 });
  assert.deepEqual(cl.taskParts("gate-alerts"), { base: "gate-alerts", shard: null });
});

test("every task has a name in both languages", () => {
  for (const lang of i18n.LANGS) {
    for (const name of cl.CLUSTER_TASKS) {
      const label = inLang(lang, () => cl.taskLabel(name));
      assert.notEqual(label, name, `${name} in ${lang}`);
      assert.ok(i18n.keys(lang).includes(`cluster.task.${name}`), `${name} in ${lang}`);
    }
  }
});

test("camera leases carry display names and are sorted by them", () => {
  const rows = cl.clusterRows(district(), nameOf);
  assert.equal(rows.cameras.length, 10);
  const south = rows.cameras.find((r) => r.id === "cam-05");
  assert.deepEqual(south, { id: "cam-05", name: "南门", node: "node-c", ageMs: 12_400, revision: 310 });
  assert.equal(rows.cameras.find((r) => r.id === "lobby.v2").name, "大堂");
  // Names without one in the topology are their ids; the list is in name order, numbers in
  // names by their value (as a duty officer counts), then ids.
  assert.deepEqual(
    rows.cameras.map((r) => r.name),
    ["cam-02", "cam-03", "cam-04", "cam-06", "cam-07", "cam-08", "cam-09", "北门", "大堂", "南门"].sort((a, b) => a.localeCompare(b)),
  );
  const numbered = cl.clusterRows(
    { clustered: true, node: "n", nodes: [], leases: ["c10", "c2", "c1", "twin-b", "twin-a"].map((id) => camera(id, "n")) },
    (id) => ({ c10: "10号", c2: "2号", c1: "1号", "twin-a": "门", "twin-b": "门" })[id],
  );
  assert.deepEqual(numbered.cameras.map((r) => r.id), ["c1", "c2", "c10", "twin-a", "twin-b"]);
  assert.equal(cl.secsText(12_400), "12");
  assert.equal(cl.secsText(null), "—");
});

test("the camera search finds by name, id or node, in any case", () => {
  const rows = cl.clusterRows(district(), nameOf).cameras;
  assert.deepEqual(cl.filterCameraRows(rows, "南门").map((r) => r.id), ["cam-05"]);
  assert.deepEqual(cl.filterCameraRows(rows, " CAM-0 ").length, 9);
  assert.deepEqual(cl.filterCameraRows(rows, "node-c").map((r) => r.id).sort(), ["cam-05", "cam-09"]);
  assert.deepEqual(cl.filterCameraRows(rows, "lobby").map((r) => r.name), ["大堂"]);
  assert.equal(cl.filterCameraRows(rows, "nowhere").length, 0);
  assert.equal(cl.filterCameraRows(rows, "  ").length, 10);
});

test("camera leases are paged, the page clamped to those there are", () => {
  const many = Array.from({ length: 250 }, (_, i) => i);
  assert.deepEqual(cl.pageRows(many, 0).rows.length, cl.CLUSTER_PAGE_ROWS);
  assert.deepEqual({ ...cl.pageRows(many, 2), rows: cl.pageRows(many, 2).rows.length }, { rows: 50, page: 2, pages: 3 });
  assert.equal(cl.pageRows(many, 9).page, 2);
  assert.equal(cl.pageRows(many, -1).page, 0);
  assert.deepEqual(cl.pageRows([], 3), { rows: [], page: 0, pages: 1 });
  assert.deepEqual(cl.pageRows([1, 2, 3], 1, 2), { rows: [3], page: 1, pages: 2 });
});

test("a holder whose heartbeat is gone is shown after the live nodes, outside the weights", () => {
  const v = district();
  // node-c died: its heartbeat expired, its leases not yet.
  v.nodes = v.nodes.filter((n) => n.id !== "node-c");
  const rows = cl.clusterRows(v, nameOf);
  assert.deepEqual(rows.totals, { nodes: 2, cameras: 10, tasks: 4 });
  const gone = rows.nodes.at(-1);
  assert.deepEqual(
    [gone.id, gone.live, gone.late, gone.cameras, gone.held, gone.weightShare, gone.share],
    ["node-c", false, true, 2, 2, null, 0.2],
  );
  assert.deepEqual(rows.nodes.slice(0, 2).map((n) => n.weightShare), [1 / 3, 2 / 3]);
});

test("a single hub has nothing to show but that it runs alone", () => {
  const rows = cl.clusterRows({ clustered: false, node: null, nodes: [], leases: [] });
  assert.deepEqual(rows, {
    clustered: false,
    node: null,
    nodes: [],
    tasks: [],
    cameras: [],
    totals: { nodes: 0, cameras: 0, tasks: 0 },
  });
  assert.equal(cl.percentText(0), "0%");
  assert.equal(cl.percentText(0.001), "<1%");
  assert.equal(cl.percentText(null), "—");
});

test("a malformed answer shows what can be read, not half rows", () => {
  const rows = cl.clusterRows({
    clustered: true,
    node: "node-a",
    nodes: [null, { weight: 5 }, { id: "node-a", weight: 100, held: 1, heartbeat_age_ms: "soon" }],
    leases: [{ key: "camera.x" }, { node: "node-a" }, camera("cam-1", "node-a")],
  });
  assert.deepEqual(rows.nodes.map((n) => [n.id, n.cameras, n.heartbeatMs, n.late]), [["node-a", 1, null, false]]);
  assert.deepEqual(rows.cameras.map((r) => r.id), ["cam-1"]);
  assert.deepEqual(cl.clusterRows(null).nodes, []);
});
