#!/usr/bin/env node
// Browser test of playback (playback.js, the alert detail's clip, exports): headless Debian
// chromium driven by playwright-core against a real hub that records a real RTSP camera.
//
//   node tests/browser/playback-e2e.test.mjs --url http://127.0.0.1:8080 --user duty \
//     --camera pb-east --camera-search 东门 --alert ALERT_ID --width 640 \
//     --police-user police --artifacts target/browser-artifacts/playback
//
// Options:
//   --url URL              the hub                                                 [required]
//   --user NAME            a duty user; its password in XL_CONSOLE_PASSWORD or --password
//   --camera ID            a camera the hub records (continuously, for a minute or so)  [required]
//   --camera-search TEXT   what is typed in the camera search to find it (default: its id)
//   --alert ID             an alert of --camera raised while it was recorded           [required]
//   --width N              the recorded stream's width (default 640)
//   --police-user NAME     a police user (password: --police-password or XL_POLICE_PASSWORD)
//   --artifacts DIR        screenshots (01-login.png ... 08-evidence-key.png), console.log,
//                          reference.mp4 and frame-compare.json (the frame comparison), and,
//                          with --police-user, export.zip (the export as the browser saved it)
//                          and evidence-key.txt (the public key the key panel shows)
//   --ffmpeg PATH          the FFmpeg used to decode the reference (default: ffmpeg)
//   --chromium PATH        the browser (default: $CHROMIUM or /usr/bin/chromium)
//   --timeout SECS         how long to wait for each step (default 30)
//   --headed               show the browser
//
// What it checks (issue 18): duty opens the alert's detail: its clip loads, starts about 10 s
// before the alert was raised, and plays (currentTime advances by 2 s, readyState >= 2,
// videoWidth is the stream's). On the playback page, the camera found by the search shows its
// recorded range and the alert on the day's timeline; a click on the timeline inside the range
// plays the recording from the instant under the pointer (the clip asked for starts there, the
// video's wall time is within 3 s of it and advances). A pixel of the day is over a minute, so
// the test asks for the day again until a whole pixel lies inside the recording (which may take
// a minute or two of recording). "Go to" a time plays from that time, and the frame shown is
// compared with the hub's own recording: the same instant, decoded by FFmpeg from another MP4
// the hub serves (a range around it), is the closest of all its frames to the browser's picture
// (within 0.3 s) and nearly identical to it (a frame within 0.15 s of the instant: clips from
// two segments differ by their first key frames' arrival jitter), while a frame 3 s away differs
// clearly (the control). At 2x the video's playbackRate is 2 and it plays on. A police user
// exports the alert: the result shows the SHA-256 of the file the browser saves, and the
// evidence key panel shows the hub's public key.
//
// Exit status 0 when every step passed; 1 with "playback test: FAILED at step ..." otherwise;
// 2 for bad arguments.

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

import { fail, logIn, runInBrowser } from "./lib.mjs";

const NAME = "playback test";
let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      url: { type: "string" },
      user: { type: "string", default: "duty" },
      password: { type: "string" },
      camera: { type: "string" },
      "camera-search": { type: "string" },
      alert: { type: "string" },
      width: { type: "string", default: "640" },
      "police-user": { type: "string" },
      "police-password": { type: "string" },
      artifacts: { type: "string", default: "artifacts" },
      ffmpeg: { type: "string", default: "ffmpeg" },
      chromium: { type: "string" },
      timeout: { type: "string", default: "30" },
      headed: { type: "boolean", default: false },
    },
  }));
} catch (e) {
  console.error(`${NAME}: ${e.message}`);
  process.exit(2);
}
const password = opts.password ?? process.env.XL_CONSOLE_PASSWORD;
const policePassword = opts["police-password"] ?? process.env.XL_POLICE_PASSWORD;
const missing = [
  !opts.url && "--url",
  !opts.camera && "--camera",
  !opts.alert && "--alert",
  password === undefined && "--password (or XL_CONSOLE_PASSWORD)",
  opts["police-user"] && policePassword === undefined && "--police-password (or XL_POLICE_PASSWORD)",
].filter(Boolean);
if (missing.length) {
  console.error(`${NAME}: missing ${missing.join(", ")} (see the comment at the top of this file)`);
  process.exit(2);
}
const baseUrl = opts.url.replace(/\/+$/, "");
const camera = opts.camera;
const alertId = opts.alert;
const width = Number(opts.width);
const timeout = Math.max(1, Number(opts.timeout) || 30) * 1000;
const artifacts = resolve(opts.artifacts);

/** The grid frames are compared on: 10x10 boxes of a 640x360 picture, in grey. */
const GRID_W = 64;
const GRID_H = 36;
/**
 * The difference of two frames: the mean absolute difference of their grey grids (0-255),
 * less their difference in mean brightness (the two decoders' colour conversions differ by
 * about 1 over the whole picture). Under this, the browser's frame and FFmpeg's are the same
 * picture (they measure about 0.5). At 10 fps the test clip's people walking make neighbouring
 * frames differ by about 1.5 (median) and frames 3 s apart by 5 or more (5th percentile; never
 * under 2.7 in the whole clip).
 */
const SAME_FRAME_MAD = 1.0;
/** How far (ms) the best matching frame may lie from the wall time the browser shows: 3 frames. */
const MATCH_WITHIN_MS = 300;
/**
 * How far (ms) from the wall time the browser shows the same picture must be: a frame and a
 * half. A segment's wall clock starts at its first key frame's arrival and runs on the
 * camera's timestamps, so two clips starting in different segments (the browser's and the
 * reference) disagree by those arrivals' jitter (66 ms seen under load), which can make the
 * frame nearest in time the neighbour of the one shown.
 */
const SAME_WITHIN_MS = 150;
/** The control: a frame this far (ms) from the one shown, which must differ clearly. */
const CONTROL_OFFSET_MS = 3000;
/** ... by at least this mean absolute difference, and by twice the match's. */
const CONTROL_MIN_MAD = 2.0;

const rfc3339 = (ms) => new Date(ms).toISOString();
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;
const pbVideo = '[data-testid="playback-video"]';
const clipVideo = '[data-testid="alert-clip"]';
const timelineSel = '[data-testid="playback-timeline"]';

/**
 * Waits until the video at `sel` plays (readyState >= 2, not paused) and its currentTime then
 * advances by `secs`; returns what it was when it started and once it had advanced.
 */
async function checkAdvances(ctx, sel, secs, what) {
  const { page } = ctx;
  await page
    .waitForFunction(
      (sel) => {
        const v = document.querySelector(sel);
        return v && !v.paused && v.readyState >= 2 && v.currentTime > 0;
      },
      sel,
      { timeout },
    )
    .catch(async () => {
      const v = await videoFacts(page, sel);
      fail(`${what} does not play within ${timeout / 1000}s: ${JSON.stringify(v)}`);
    });
  const first = await videoFacts(page, sel);
  await page
    .waitForFunction(({ sel, until }) => document.querySelector(sel).currentTime >= until, { sel, until: first.currentTime + secs }, {
      timeout: timeout + secs * 1000,
    })
    .catch(async () => {
      const now = await videoFacts(page, sel);
      fail(`${what} did not advance ${secs}s (currentTime from ${first.currentTime} to ${now.currentTime}): ${JSON.stringify(now)}`);
    });
  return { first, then: await videoFacts(page, sel) };
}

/** The facts of the video at `sel` that the checks read. */
function videoFacts(page, sel) {
  return page.evaluate((sel) => {
    const v = document.querySelector(sel);
    if (!v) return null;
    return {
      currentTime: v.currentTime,
      readyState: v.readyState,
      paused: v.paused,
      videoWidth: v.videoWidth,
      videoHeight: v.videoHeight,
      playbackRate: v.playbackRate,
      error: v.error ? `${v.error.code} ${v.error.message}` : null,
      clipStart: v.dataset.clipStart ?? null,
      clipFrom: v.dataset.clipFrom ?? null,
      clipTo: v.dataset.clipTo ?? null,
      src: v.currentSrc,
    };
  }, sel);
}

/**
 * Pauses the video at `sel` on the next frame it presents and returns that frame as grey on
 * the comparison grid, with its media time (requestVideoFrameCallback: the frame's own
 * presentation time, not the clock's).
 */
function grabFrame(page, sel) {
  return page.evaluate(
    ({ sel, gw, gh }) =>
      new Promise((done, reject) => {
        const v = document.querySelector(sel);
        const timer = setTimeout(() => reject(new Error("the video presented no frame within 10 s")), 10_000);
        v.requestVideoFrameCallback((_now, meta) => {
          clearTimeout(timer);
          v.pause();
          const c = document.createElement("canvas");
          c.width = v.videoWidth;
          c.height = v.videoHeight;
          const g = c.getContext("2d", { willReadFrequently: true });
          g.drawImage(v, 0, 0, c.width, c.height);
          const d = g.getImageData(0, 0, c.width, c.height).data;
          const grey = new Array(gw * gh).fill(0);
          const bw = c.width / gw;
          const bh = c.height / gh;
          for (let y = 0; y < c.height; y++) {
            for (let x = 0; x < c.width; x++) {
              const i = (y * c.width + x) * 4;
              grey[Math.floor(y / bh) * gw + Math.floor(x / bw)] += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
            }
          }
          const n = bw * bh;
          done({
            mediaTime: meta.mediaTime,
            currentTime: v.currentTime,
            width: meta.width,
            height: meta.height,
            clipStart: v.dataset.clipStart,
            grey: grey.map((s) => s / n),
          });
        });
      }),
    { sel, gw: GRID_W, gh: GRID_H },
  );
}

/** Runs FFmpeg on `file`: every frame (its pts in seconds) as grey on the comparison grid. */
function decodeFrames(file) {
  const args = [
    "-hide_banner",
    "-nostats",
    "-loglevel",
    "info",
    "-copyts",
    "-i",
    file,
    "-an",
    "-vf",
    `showinfo,scale=${GRID_W}:${GRID_H}:flags=area,format=rgb24`,
    "-fps_mode",
    "passthrough",
    "-f",
    "rawvideo",
    "pipe:1",
  ];
  return new Promise((done, reject) => {
    const ff = spawn(opts.ffmpeg, args, { stdio: ["ignore", "pipe", "pipe"] });
    const out = [];
    let err = "";
    ff.stdout.on("data", (b) => out.push(b));
    ff.stderr.on("data", (b) => (err += b));
    ff.on("error", (e) => reject(new Error(`${opts.ffmpeg}: ${e.message}`)));
    ff.on("close", (code) => {
      if (code !== 0) return reject(new Error(`${opts.ffmpeg} exited ${code}: ${err.slice(-2000)}`));
      const pts = [...err.matchAll(/Parsed_showinfo.*\bpts_time:\s*(-?[\d.]+)/g)].map((m) => Number(m[1]));
      const raw = Buffer.concat(out);
      const size = GRID_W * GRID_H * 3;
      if (raw.length !== pts.length * size) {
        return reject(new Error(`FFmpeg gave ${raw.length} bytes for ${pts.length} frames of ${GRID_W}x${GRID_H}`));
      }
      const frames = pts.map((t, f) => {
        const grey = new Array(GRID_W * GRID_H);
        for (let i = 0; i < grey.length; i++) {
          const o = f * size + i * 3;
          grey[i] = 0.299 * raw[o] + 0.587 * raw[o + 1] + 0.114 * raw[o + 2];
        }
        return { pts: t, grey };
      });
      done(frames);
    });
  });
}

/** The mean absolute difference of two grey grids, less their difference in mean brightness. */
function mad(a, b) {
  let shift = 0;
  for (let i = 0; i < a.length; i++) shift += a[i] - b[i];
  shift /= a.length;
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i] - shift);
  return s / a.length;
}

/** Where the timeline draws what; `ms` of each whole pixel as the page maps a click (xToTime). */
function timelineFacts(page) {
  return page.evaluate(() => {
    const tl = document.querySelector('[data-testid="playback-timeline"]');
    const spans = (id) =>
      Array.from(tl.querySelectorAll(`[data-testid="${id}"]`)).map((r) => ({ from: Date.parse(r.dataset.from), to: Date.parse(r.dataset.to) }));
    const box = tl.getBoundingClientRect();
    const track = tl.querySelector('[data-testid="timeline-track"]').getBoundingClientRect();
    return {
      loaded: tl.dataset.loaded,
      camera: tl.dataset.camera,
      day: tl.dataset.day,
      from: Date.parse(tl.dataset.from),
      to: Date.parse(tl.dataset.to),
      left: box.left + tl.clientLeft,
      width: tl.clientWidth,
      trackY: Math.round(track.top + track.height / 2),
      ranges: spans("timeline-range"),
      gaps: spans("timeline-gap"),
      alerts: Array.from(tl.querySelectorAll('[data-testid="timeline-alert"]')).map((a) => a.dataset.alertId),
    };
  });
}

/**
 * The whole pixel of the timeline whose instant (as the page maps a click: x / width of the
 * day, to the millisecond) lies in [lo, hi] and is nearest `target`, or null.
 */
function pixelFor(tl, target, lo, hi) {
  let best = null;
  for (let cx = Math.ceil(tl.left); cx <= Math.floor(tl.left + tl.width); cx++) {
    const x = Math.min(1, Math.max(0, (cx - tl.left) / tl.width));
    const ms = Math.min(tl.to - 1, Math.round(tl.from + x * (tl.to - tl.from)));
    if (ms < lo || ms > hi) continue;
    if (!best || Math.abs(ms - target) < Math.abs(best.ms - target)) best = { cx, ms };
  }
  return best;
}

/** Local "HH:MM:SS" and "YYYY-MM-DD" of `ms` in the page's time zone. */
function localClock(page, ms) {
  return page.evaluate((ms) => {
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, "0");
    return { clock: `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`, day: `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}` };
  }, ms);
}

/** Opens the alert's detail from the live list and waits for its clip box to settle. */
async function openAlertClip(ctx) {
  const { page } = ctx;
  await page.getByTestId("tab-detail").click();
  await page.locator(`[data-testid="alert-row"][data-alert-id="${alertId}"]`).click();
  await page.locator(`[data-testid="alert-detail"][data-alert-id="${alertId}"]`).waitFor({ state: "attached" });
  const box = page.getByTestId("alert-clip-box");
  await page
    .locator('[data-testid="alert-clip-box"]:is([data-state="ok"], [data-state="missing"], [data-state="error"])')
    .waitFor({ state: "attached" })
    .catch(async () => fail(`the clip box stays "${await box.getAttribute("data-state")}"`));
  const state = await box.getAttribute("data-state");
  if (state !== "ok") fail(`the alert's clip is "${state}": ${await page.getByTestId("alert-clip-none").textContent()}`);
}

const exitCode = await runInBrowser(
  { name: NAME, executablePath: opts.chromium || process.env.CHROMIUM || "/usr/bin/chromium", headed: opts.headed, artifacts },
  async (ctx) => {
    const { page } = ctx;
    page.setDefaultTimeout(timeout);
    await logIn(ctx, { baseUrl, user: opts.user, password, before: "01-login.png" });

    ctx.step = "the alert's clip plays in its detail";
    const alert = await (await page.request.get(`${baseUrl}/api/v1/alerts/${encodeURIComponent(alertId)}`)).json();
    const raisedAt = Date.parse(alert?.alert?.raised_at ?? alert?.raised_at);
    if (!Number.isFinite(raisedAt)) fail(`GET /api/v1/alerts/${alertId} gives no raised_at: ${JSON.stringify(alert).slice(0, 300)}`);
    await openAlertClip(ctx);
    const clipStart = Date.parse(await page.locator(clipVideo).getAttribute("data-clip-start"));
    // From the key frame at or before 10 s before the alert (a key frame every 2 s).
    const pre = (raisedAt - clipStart) / 1000;
    ctx.log(`the alert's clip starts ${pre.toFixed(2)} s before it was raised`);
    if (!(pre >= 9.5 && pre <= 13)) fail(`the clip starts ${pre.toFixed(2)} s before the alert, not about 10 s before it`);
    const played = await page.locator(clipVideo).evaluate((v) => v.play().then(() => null, (e) => String(e)));
    if (played) fail(`the clip does not start: ${played}`);
    const clip = await checkAdvances(ctx, clipVideo, 2, "the alert's clip");
    ctx.log(`the alert's clip: ${JSON.stringify(clip.then)}`);
    if (clip.then.readyState < 2) fail(`the clip's readyState is ${clip.then.readyState}`);
    if (clip.then.videoWidth !== width) fail(`the clip is ${clip.then.videoWidth} wide, not ${width}`);
    if (!(await page.getByTestId("alert-clip-time").textContent())) fail("no wall time is shown under the clip");
    await ctx.shot("02-alert-clip.png");

    ctx.step = "the playback page finds the camera and shows its recording on the day's timeline";
    await page.getByTestId("tab-playback").click();
    await page.getByTestId("playback-camera-search").fill(opts["camera-search"] ?? camera);
    await page.getByTestId("playback-camera-search").press("Enter");
    const loaded = `${timelineSel}[data-loaded="true"][data-camera="${camera}"]`;
    await page.locator(loaded).waitFor({ state: "attached" });
    let tl = await timelineFacts(page);
    if (!tl.ranges.length) fail(`the timeline shows no recorded range: ${JSON.stringify(tl)}`);
    // The recording began where the first range begins; play from 10 s after (on its day).
    const began = Math.min(...tl.ranges.map((r) => r.from));
    const { day } = await localClock(page, began + 10_000);
    if (day !== tl.day) {
      await page.getByTestId("playback-date").fill(day);
      await page.getByTestId("playback-date").press("Enter");
      await page.locator(`${loaded}[data-day="${day}"]`).waitFor({ state: "attached" });
      tl = await timelineFacts(page);
    }
    ctx.log(`recorded: ${tl.ranges.map((r) => `${rfc3339(r.from)} - ${rfc3339(r.to)}`).join(", ")}; ${((tl.to - tl.from) / tl.width / 1000).toFixed(1)} s a pixel`);
    if (!tl.alerts.includes(alertId)) fail(`the alert is not on the timeline (alerts: ${JSON.stringify(tl.alerts)})`);
    await ctx.shot("03-timeline.png");

    ctx.step = "a click on the timeline plays the recording from there";
    // A pixel is most of a minute of the day: wait (asking for the day again) until a whole
    // pixel falls inside the recording, with 3 s before it and 8 s after it recorded.
    let target = null;
    const deadline = Date.now() + 3 * timeout;
    for (;;) {
      const r = tl.ranges.find((r) => r.to - r.from > 11_000);
      target = r && pixelFor(tl, began + 10_000, r.from + 3000, r.to - 8000);
      if (target || Date.now() > deadline) break;
      await page.waitForTimeout(5000);
      await page.getByTestId("playback-date").press("Enter");
      await page.locator(loaded).waitFor({ state: "attached" });
      tl = await timelineFacts(page);
    }
    if (!target) fail(`no whole pixel of the timeline falls inside the recording: ${JSON.stringify(tl.ranges)}`);
    const under = await page.evaluate(({ x, y }) => {
      const el = document.elementFromPoint(x, y);
      return { timeline: !!el?.closest('[data-testid="playback-timeline"]'), alert: !!el?.closest("[data-alert-id]") };
    }, { x: target.cx, y: tl.trackY });
    if (!under.timeline || under.alert) fail(`the point to click (${target.cx}, ${tl.trackY}) is not on the timeline's track: ${JSON.stringify(under)}`);
    ctx.log(`clicking the timeline at x=${target.cx}: ${rfc3339(target.ms)} (${secs(target.ms - began)} into the recording)`);
    await page.mouse.click(target.cx, tl.trackY);
    await page.locator(`${pbVideo}[data-clip-start]`).waitFor({ state: "attached" }).catch(async () => {
      const msg = page.getByTestId("playback-message");
      fail(`no clip is asked for; the player says (${await msg.getAttribute("data-kind")}) "${await msg.textContent()}"`);
    });
    const clicked = await checkAdvances(ctx, pbVideo, 2, "the recording clicked");
    const askedFrom = Date.parse(clicked.first.clipFrom);
    if (Math.abs(askedFrom - target.ms) > 1000) fail(`the click asked for the recording from ${clicked.first.clipFrom}, not ${rfc3339(target.ms)}`);
    const shownAt = Date.parse(clicked.first.clipStart) + clicked.first.currentTime * 1000;
    ctx.log(`the video shows ${rfc3339(shownAt)} as it starts (${secs(shownAt - target.ms)} from the instant clicked)`);
    if (Math.abs(shownAt - target.ms) > 3000) fail(`the video starts at ${rfc3339(shownAt)}, not at the instant clicked ${rfc3339(target.ms)}`);
    if (clicked.then.videoWidth !== width) fail(`the recording is ${clicked.then.videoWidth} wide, not ${width}`);
    const head = await page.getByTestId("timeline-playhead").evaluate((el) => ({ hidden: el.hidden, time: el.dataset.time }));
    if (head.hidden || !head.time) fail(`the playhead is not shown: ${JSON.stringify(head)}`);
    await ctx.shot("04-clicked.png");

    ctx.step = "go to a time: the frame shown is the recording's at that time";
    const goto = Math.floor((began + 12_000) / 1000) * 1000;
    const { clock } = await localClock(page, goto);
    await page.getByTestId("playback-goto").fill(clock);
    await page.getByTestId("playback-goto").press("Enter");
    await page.locator(`${pbVideo}[data-clip-from="${rfc3339(goto).replace(".000Z", "Z")}"]`).waitFor({ state: "attached" });
    const went = await checkAdvances(ctx, pbVideo, 1, `the recording from ${clock}`);
    const wentAt = Date.parse(went.first.clipStart) + went.first.currentTime * 1000;
    ctx.log(`"go to ${clock}": the video shows ${rfc3339(wentAt)} (${secs(wentAt - goto)} from it)`);
    if (Math.abs(wentAt - goto) > 3000) fail(`after "go to ${clock}" the video starts at ${rfc3339(wentAt)}`);
    const frame = await grabFrame(page, pbVideo);
    const shown = Date.parse(frame.clipStart) + frame.mediaTime * 1000;
    await ctx.shot("05-frame.png");
    // The same instant from the hub's own recording: another MP4, a range around it.
    const from = Math.floor((shown - 3000) / 1000) * 1000;
    const to = Math.ceil((shown + 4000) / 1000) * 1000;
    const refUrl = `${baseUrl}/api/v1/cameras/${encodeURIComponent(camera)}/recording.mp4?from=${rfc3339(from)}&to=${rfc3339(to)}`;
    const ref = await page.request.get(refUrl);
    if (ref.status() !== 200) fail(`GET ${refUrl} answered ${ref.status()}: ${(await ref.text()).slice(0, 300)}`);
    const refStart = Date.parse(ref.headers()["x-clip-start"]);
    const refFile = join(artifacts, "reference.mp4");
    writeFileSync(refFile, await ref.body());
    const frames = (await decodeFrames(refFile)).map((f) => ({ at: refStart + f.pts * 1000, grey: f.grey, mad: mad(frame.grey, f.grey) }));
    if (!frames.length) fail(`FFmpeg decoded no frame of ${refFile}`);
    const best = frames.reduce((a, b) => (b.mad < a.mad ? b : a));
    const nearest = (ms) => frames.reduce((a, b) => (Math.abs(b.at - ms) < Math.abs(a.at - ms) ? b : a));
    const near = frames.filter((f) => Math.abs(f.at - shown) <= SAME_WITHIN_MS);
    const same = near.length ? near.reduce((a, b) => (b.mad < a.mad ? b : a)) : nearest(shown);
    const control = nearest(shown + CONTROL_OFFSET_MS);
    const report = {
      shown: rfc3339(shown),
      mediaTime: frame.mediaTime,
      clipStart: frame.clipStart,
      reference: { url: refUrl, start: ref.headers()["x-clip-start"], frames: frames.length },
      best: { at: rfc3339(best.at), offsetMs: Math.round(best.at - shown), mad: best.mad },
      same: { at: rfc3339(same.at), mad: same.mad },
      control: { at: rfc3339(control.at), mad: control.mad },
      mads: frames.map((f) => [Math.round(f.at - shown), Number(f.mad.toFixed(2))]),
      grid: [GRID_W, GRID_H],
      browserGrey: frame.grey.map((v) => Number(v.toFixed(1))),
      ffmpegGrey: same.grey.map((v) => Number(v.toFixed(1))),
    };
    writeFileSync(join(artifacts, "frame-compare.json"), JSON.stringify(report, null, 1) + "\n");
    ctx.log(
      `the frame shown (${report.shown}) against ${frames.length} frames of the hub's MP4: the closest is ${report.best.offsetMs} ms ` +
        `from it (difference ${best.mad.toFixed(2)}); the best within ${SAME_WITHIN_MS} ms of that time differs by ${same.mad.toFixed(2)}, ` +
        `the one ${CONTROL_OFFSET_MS / 1000} s later by ${control.mad.toFixed(2)}`,
    );
    if (Math.abs(control.at - shown - CONTROL_OFFSET_MS) > 500) fail(`the reference has no frame ${CONTROL_OFFSET_MS / 1000} s after the one shown`);
    if (Math.abs(best.at - shown) > MATCH_WITHIN_MS) {
      fail(`the recording's frame most like the one shown is ${report.best.offsetMs} ms away from it (${JSON.stringify(report.best)})`);
    }
    if (!(same.mad <= SAME_FRAME_MAD)) {
      fail(`the frame shown differs from each of the recording's within ${SAME_WITHIN_MS} ms of ${report.shown} by over ${SAME_FRAME_MAD} (the least: ${same.mad.toFixed(2)})`);
    }
    if (!(control.mad >= CONTROL_MIN_MAD && control.mad >= 2 * same.mad)) {
      fail(`the control frame ${CONTROL_OFFSET_MS / 1000} s away differs by only ${control.mad.toFixed(2)} (the same frame: ${same.mad.toFixed(2)}): the comparison cannot tell frames apart`);
    }

    ctx.step = "2x speed";
    const resumed = await page.locator(pbVideo).evaluate((v) => v.play().then(() => null, (e) => String(e)));
    if (resumed) fail(`the video does not play on: ${resumed}`);
    await page.locator('[data-testid="playback-speed"][data-pb-rate="2"]').click();
    const pressed = await page.locator('[data-testid="playback-speed"][data-pb-rate="2"]').getAttribute("aria-pressed");
    if (pressed !== "true") fail(`the 2x button is not shown pressed (aria-pressed ${pressed})`);
    await checkAdvances(ctx, pbVideo, 1, "the recording at 2x");
    // The rate is the browser's to honour; the test checks it is set and the video plays on,
    // not how fast the clock of a loaded machine lets it run (no timing bounds in tests).
    const pace = await page.locator(pbVideo).evaluate((v) => ({ rate: v.playbackRate, paused: v.paused }));
    ctx.log(`at 2x: playbackRate ${pace.rate}, paused ${pace.paused}`);
    if (pace.rate !== 2) fail(`playbackRate is ${pace.rate}, not 2`);
    if (pace.paused) fail("the video paused when 2x was chosen");
    await ctx.shot("06-2x.png");

    if (!opts["police-user"]) return;
    ctx.step = "police: the alert's export";
    await page.getByTestId("logout").click();
    await page.getByTestId("login-view").waitFor();
    await logIn(ctx, { baseUrl, user: opts["police-user"], password: policePassword });
    ctx.step = "police: the alert's export";
    await openAlertClip(ctx);
    const download = page.waitForEvent("download", { timeout });
    await page.getByTestId("alert-export").click();
    const result = page.getByTestId("alert-export-result");
    await page
      .locator('[data-testid="alert-export-result"]:is([data-state="done"], [data-state="error"])')
      .waitFor({ state: "attached" })
      .catch(async () => fail(`the export stays "${await result.getAttribute("data-state")}"`));
    if ((await result.getAttribute("data-state")) !== "done") fail(`the export failed: ${await result.textContent()}`);
    const sha = await result.getAttribute("data-sha256");
    if (!/^[0-9a-f]{64}$/.test(sha ?? "")) fail(`the export shows no SHA-256: "${sha}"`);
    if ((await page.getByTestId("export-sha256").textContent()) !== sha) fail("the SHA-256 shown is not the export's");
    const saved = await download.catch(() => fail("the export's file was not saved"));
    const zip = join(artifacts, "export.zip");
    await saved.saveAs(zip);
    const savedSha = createHash("sha256").update(readFileSync(zip)).digest("hex");
    ctx.log(`export ${await result.getAttribute("data-filename")} saved as ${saved.suggestedFilename()}, SHA-256 ${savedSha}`);
    if (savedSha !== sha) fail(`the file saved has SHA-256 ${savedSha}, the page shows ${sha}`);
    await ctx.shot("07-export.png");

    ctx.step = "police: the evidence key panel";
    await page.getByTestId("tab-playback").click();
    await page.getByTestId("evidence-key").waitFor({ state: "visible" });
    const key = (await page.getByTestId("evidence-key-public").textContent()).trim();
    if (Buffer.from(key, "base64").length !== 32) fail(`the panel's public key "${key}" is not 32 bytes of base64`);
    if (!(await page.getByTestId("evidence-key-command").textContent()).includes(key)) fail("the verify command does not name the key");
    writeFileSync(join(artifacts, "evidence-key.txt"), `${key}\n`);
    await page.getByTestId("evidence-key").scrollIntoViewIfNeeded();
    await ctx.shot("08-evidence-key.png");
  },
);
process.exit(exitCode);
