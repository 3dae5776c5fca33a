#!/usr/bin/env node
// The playback page's pure parts (crates/xl-api/console/playback.js): local days and their
// bounds (daylight-saving days too), the timeline's time <-> x mapping, recorded ranges as
// drawn segments, which range a click falls in and the clip it asks for, the clip after one
// ends, the download range around the playhead, the URLs, the alert and gate event markers, the
// export's file name. No browser needed:
//
//   node tests/browser/playback.test.mjs
//
// (node:test; exit status 0 when every test passed, 1 otherwise, each failure on stderr.)

import { test } from "node:test";
import assert from "node:assert/strict";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

// Times are local: the duty room's zone, unless a test says another.
process.env.TZ = "Asia/Shanghai";

const consoleDir = join(dirname(fileURLToPath(import.meta.url)), "../../crates/xl-api/console");
const pb = await import(join(consoleDir, "playback.js"));

const utc = (s) => Date.parse(s);
const MIN = 60_000;

/** Runs `f` with the process in time zone `tz`. */
function inZone(tz, f) {
  const was = process.env.TZ;
  process.env.TZ = tz;
  try {
    return f();
  } finally {
    process.env.TZ = was;
  }
}

test("a day is its local midnight to the next", () => {
  assert.deepEqual(pb.dayBounds("2026-01-15"), {
    from: utc("2026-01-14T16:00:00Z"),
    to: utc("2026-01-15T16:00:00Z"),
  });
  assert.equal(pb.dayString(utc("2026-01-14T16:00:00Z")), "2026-01-15");
  assert.equal(pb.dayString(utc("2026-01-14T15:59:59Z")), "2026-01-14");
  assert.equal(pb.parseDay("2026-2-3")?.getTime(), utc("2026-02-02T16:00:00Z"));
  for (const bad of ["2026-02-30", "2026-13-01", "15/01/2026", "", null, undefined, "2026-01-15x"]) {
    assert.equal(pb.parseDay(bad), null, String(bad));
    assert.equal(pb.dayBounds(bad), null, String(bad));
  }
  assert.equal(pb.shiftDay("2025-12-31", 1), "2026-01-01");
  assert.equal(pb.shiftDay("2026-03-01", -1), "2026-02-28");
  assert.equal(pb.shiftDay("nope", 1), null);
});

test("a daylight-saving day is 23 or 25 hours, with one tick per local hour", () => {
  inZone("Europe/Berlin", () => {
    const spring = pb.dayBounds("2026-03-29");
    assert.equal(spring.to - spring.from, 23 * 60 * MIN);
    const fall = pb.dayBounds("2026-10-25");
    assert.equal(fall.to - fall.from, 25 * 60 * MIN);
    const ticks = pb.hourTicks(spring);
    // 00:00, 01:00, then 03:00 (02:00 does not exist that day) ... 23:00, 24:00.
    assert.equal(ticks.length, 24);
    assert.deepEqual(
      ticks.slice(0, 3).map((t) => t.label),
      ["00:00", "01:00", "03:00"],
    );
    assert.equal(ticks[ticks.length - 1].ms, spring.to);
    assert.equal(pb.shiftDay("2026-03-29", 1), "2026-03-30");
  });
  const plain = pb.hourTicks(pb.dayBounds("2026-01-15"));
  assert.equal(plain.length, 25);
  assert.equal(plain[0].label, "00:00");
  assert.equal(plain[12].label, "12:00");
  assert.equal(plain[24].label, "24:00");
});

test("local date-times and clock times parse, 24-hour, and nothing else does", () => {
  assert.equal(pb.parseLocal("2026-01-15 14:32:05"), utc("2026-01-15T06:32:05Z"));
  assert.equal(pb.parseLocal(" 2026-01-15T08:00 "), utc("2026-01-15T00:00:00Z"));
  for (const bad of ["2026-01-15 24:00", "2026-01-15 12:60", "2026-01-15", "2026-02-30 10:00", "14:32", ""]) {
    assert.equal(pb.parseLocal(bad), null, bad);
  }
  assert.equal(pb.parseClockOn("2026-01-15", "23:59:59"), utc("2026-01-15T15:59:59Z"));
  assert.equal(pb.parseClockOn("2026-01-15", "7:05"), utc("2026-01-14T23:05:00Z"));
  assert.equal(pb.parseClockOn("2026-01-15", "2026-01-15 07:05"), null);
  assert.equal(pb.rfc3339(utc("2026-01-15T06:32:05Z")), "2026-01-15T06:32:05Z");
  assert.equal(pb.rfc3339(utc("2026-01-15T06:32:05.250Z")), "2026-01-15T06:32:05.250Z");
});

test("time and x map onto each other across the day, clamped to it", () => {
  const day = pb.dayBounds("2026-01-15");
  const noon = day.from + 12 * 60 * MIN;
  assert.equal(pb.timeToX(day.from, day, 1440), 0);
  assert.equal(pb.timeToX(noon, day, 1440), 720);
  assert.equal(pb.timeToX(day.to, day, 1440), 1440);
  assert.equal(pb.timeToX(day.from - 60 * MIN, day, 1440), 0);
  assert.equal(pb.timeToX(day.to + 60 * MIN, day, 1440), 1440);
  // One pixel a minute on a 1440-wide timeline.
  assert.equal(pb.xToTime(720, day, 1440), noon);
  assert.equal(pb.xToTime(721, day, 1440), noon + MIN);
  assert.equal(pb.xToTime(-5, day, 1440), day.from);
  // The right edge is the day's last instant, not the next day's first.
  assert.equal(pb.xToTime(1440, day, 1440), day.to - 1);
  assert.equal(pb.xToTime(2000, day, 1440), day.to - 1);
  for (const ms of [day.from, noon + 123_456, day.to - 60_000]) {
    assert.ok(Math.abs(pb.xToTime(pb.timeToX(ms, day, 1300), day, 1300) - ms) <= 1);
  }
});

const day = pb.dayBounds("2026-01-15");
const at = (hh, mm = 0, ss = 0) => day.from + ((hh * 60 + mm) * 60 + ss) * 1000;
const iso = (ms) => new Date(ms).toISOString();
// Recorded 00:00-08:00, 08:30-12:00, 12:00:00.5-12:00:01 (a sliver), 13:00-18:00.
const ranges = pb.parseSpans([
  { from: iso(at(13)), to: iso(at(18)) },
  { from: iso(at(0)), to: iso(at(8)) },
  { from: iso(at(8, 30)), to: iso(at(12)) },
  { from: iso(at(12) + 500), to: iso(at(12, 0, 1)) },
  { from: "not a time", to: iso(at(1)) },
  { from: iso(at(5)), to: iso(at(5)) },
]);

test("the API's spans become ms in time order, without bad or empty ones", () => {
  assert.deepEqual(ranges, [
    { from: at(0), to: at(8) },
    { from: at(8, 30), to: at(12) },
    { from: at(12) + 500, to: at(12, 0, 1) },
    { from: at(13), to: at(18) },
  ]);
  assert.deepEqual(pb.parseSpans(undefined), []);
  assert.deepEqual(pb.parseSpans({ from: 1 }), []);
});

test("spans are drawn clipped to the day, in percent", () => {
  const spans = [
    { from: day.from - 60 * MIN, to: at(6) },
    { from: at(12), to: at(18) },
    { from: day.to - 60 * MIN, to: day.to + 60 * MIN },
    { from: day.to + 60 * MIN, to: day.to + 120 * MIN },
  ];
  const segs = pb.segments(spans, day, 100);
  assert.equal(segs.length, 3);
  assert.deepEqual(segs[0], { from: day.from, to: at(6), x: 0, w: 25 });
  assert.equal(segs[1].x, 50);
  assert.equal(segs[1].w, 25);
  assert.equal(segs[2].to, day.to);
  assert.ok(Math.abs(segs[2].x + segs[2].w - 100) < 1e-9);
});

test("a click in a recorded range asks for up to ten minutes of it; in a gap, for nothing", () => {
  assert.equal(pb.spanAt(ranges, at(8)), null, "a range's end is not in it");
  assert.deepEqual(pb.spanAt(ranges, at(8, 30)), { from: at(8, 30), to: at(12) });
  assert.deepEqual(pb.clipFor(ranges, at(10, 15, 7)), { from: at(10, 15, 7), to: at(10, 25, 7) });
  // Near the end of its range: up to the range's end, not into the gap.
  assert.deepEqual(pb.clipFor(ranges, at(7, 55)), { from: at(7, 55), to: at(8) });
  assert.equal(pb.clipFor(ranges, at(8, 10)), null);
  assert.equal(pb.clipFor(ranges, at(20)), null);
  assert.deepEqual(pb.clipFor(ranges, at(14), 60_000), { from: at(14), to: at(14, 1) });
});

test("when a clip ends the next one follows, across gaps, until nothing is left", () => {
  assert.deepEqual(pb.nextClip(ranges, at(10, 25, 7)), { from: at(10, 25, 7), to: at(10, 35, 7) });
  assert.deepEqual(pb.nextClip(ranges, at(11, 55)), { from: at(11, 55), to: at(12) });
  // 08:00 is a range's end: on to the next range's start.
  assert.deepEqual(pb.nextClip(ranges, at(8)), { from: at(8, 30), to: at(8, 40) });
  // 12:00's sliver is half a second: skipped for 13:00.
  assert.deepEqual(pb.nextClip(ranges, at(12)), { from: at(13), to: at(13, 10) });
  // 0.4 s left of a range is not worth a clip either.
  assert.deepEqual(pb.nextClip(ranges, at(18) - 400), null);
  assert.equal(pb.nextClip(ranges, at(18)), null);
  assert.equal(pb.nextClip([], at(1)), null);
  // A whole day is gone through in clips that each start where the last ended.
  let clip = pb.clipFor(ranges, at(0));
  let clips = 1;
  let seen = clip.to - clip.from;
  while ((clip = pb.nextClip(ranges, clip.to))) {
    assert.ok(clip.to - clip.from <= pb.CLIP_MAX_MS);
    clips++;
    seen += clip.to - clip.from;
  }
  assert.equal(seen, (8 + 3.5 + 5) * 60 * MIN);
  assert.equal(clips, 48 + 21 + 30);
});

test("the download range is ten minutes around the playhead, inside the day", () => {
  assert.deepEqual(pb.around(at(12), day), { from: at(11, 55), to: at(12, 5) });
  assert.deepEqual(pb.around(at(0, 2), day), { from: at(0), to: at(0, 10) });
  assert.deepEqual(pb.around(day.to - MIN, day), { from: day.to - 10 * MIN, to: day.to });
  assert.deepEqual(pb.around(at(12), null, 60_000), { from: at(11, 59, 30), to: at(12, 0, 30) });
});

test("a clip's currentTime is wall time from its X-Clip-Start", () => {
  const start = at(10, 14, 58);
  assert.equal(pb.wallTime(start, 0), start);
  assert.equal(pb.wallTime(start, 9.5), at(10, 15, 7) + 500);
  // Asked from 10:15:07; the clip starts at the key frame 9 s before: seek 9 s in.
  assert.equal(pb.clipOffset(start, at(10, 15, 7)), 9);
  assert.equal(pb.clipOffset(start, start - 5000), 0);
});

test("the recording's URL names the camera, the range in UTC, the stream and a download", () => {
  const r = { from: at(10), to: at(10, 10) };
  assert.equal(
    pb.recordingUrl("north gate/1", r),
    "/api/v1/cameras/north%20gate%2F1/recording.mp4?from=2026-01-15T02%3A00%3A00Z&to=2026-01-15T02%3A10%3A00Z",
  );
  const u = new URL(pb.recordingUrl("cam-1", r, { stream: "sub", download: true }), "http://hub");
  assert.equal(u.pathname, "/api/v1/cameras/cam-1/recording.mp4");
  assert.deepEqual(Object.fromEntries(u.searchParams), {
    from: "2026-01-15T02:00:00Z",
    to: "2026-01-15T02:10:00Z",
    stream: "sub",
    download: "true",
  });
});

test("the day asked about ends now for today, and there is none for a day to come", () => {
  assert.deepEqual(pb.queryRange(day, at(9, 30)), { from: day.from, to: at(9, 30) });
  assert.deepEqual(pb.queryRange(day, day.to + 5 * 86_400_000), day);
  assert.equal(pb.queryRange(day, day.from), null);
  assert.equal(pb.queryRange(day, day.from - 1), null);
  assert.equal(pb.queryRange(null, day.from), null);
});

test("the markers are the camera's alerts and those of the gates it watches", () => {
  const gates = pb.gatesWatchedBy(
    [
      { entry: { id: "north-door", camera: "cam-1" } },
      { entry: { id: "south-door", camera: "cam-2" } },
      { entry: { id: "east-door" } },
      null,
    ],
    "cam-1",
  );
  assert.deepEqual(gates, ["north-door"]);
  const alerts = [
    { id: "a3", camera: "cam-1", raised_at: iso(at(15)) },
    { id: "a1", gate: "north-door", raised_at: iso(at(9)) },
    { id: "a2", camera: "cam-2", raised_at: iso(at(10)) },
    { id: "a4", gate: "south-door", raised_at: iso(at(11)) },
    { id: "a5", camera: "cam-1", raised_at: "yesterday" },
    { id: "a6", camera: "cam-1", gate: "north-door", raised_at: iso(at(12)) },
  ];
  const marks = pb.alertMarkers(alerts, "cam-1", gates);
  assert.deepEqual(
    marks.map((m) => [m.alert.id, m.at]),
    [
      ["a1", at(9)],
      ["a6", at(12)],
      ["a3", at(15)],
    ],
  );
  assert.deepEqual(pb.alertMarkers(null, "cam-1", []), []);
});

test("a gate event row gives its time, kind, gate and person", () => {
  assert.deepEqual(
    pb.gateEventMark({
      gate: "north-door",
      received_at: iso(at(9, 1)),
      event: { kind: "access_granted", person: { name: "王芳", card: "0012" } },
    }),
    { at: at(9, 1), kind: "access_granted", gate: "north-door", who: "王芳 / 0012" },
  );
  const nested = pb.gateEventMark({ event: { kind: "door_forced_open", received_at: iso(at(9, 2)) } });
  assert.equal(nested.at, at(9, 2));
  assert.equal(nested.kind, "door_forced_open");
  assert.ok(!Number.isFinite(pb.gateEventMark({}).at));
});

test("the export's file name comes from Content-Disposition", () => {
  assert.equal(pb.dispositionFilename('attachment; filename="export-01J9.zip"'), "export-01J9.zip");
  assert.equal(pb.dispositionFilename("attachment; filename=export.zip"), "export.zip");
  assert.equal(
    pb.dispositionFilename("attachment; filename=\"a.zip\"; filename*=UTF-8''%E8%AF%81%E6%8D%AE.zip"),
    "证据.zip",
  );
  assert.equal(pb.dispositionFilename('attachment; filename="say \\"hi\\".zip"'), 'say "hi".zip');
  assert.equal(pb.dispositionFilename("attachment"), null);
  assert.equal(pb.dispositionFilename(null), null);
});

test("sizes read as people write them; only police and admins export", () => {
  assert.equal(pb.fmtBytes(512), "512 B");
  assert.equal(pb.fmtBytes(3.4 * 1024 * 1024), "3.4 MB");
  assert.equal(pb.fmtBytes(120 * 1024 * 1024), "120 MB");
  assert.equal(pb.fmtBytes(-1), "—");
  assert.ok(pb.canExport({ role: "admin" }));
  assert.ok(pb.canExport({ role: "police" }));
  assert.ok(!pb.canExport({ role: "duty" }));
  assert.ok(!pb.canExport({ role: "property" }));
  assert.ok(!pb.canExport(null));
});
