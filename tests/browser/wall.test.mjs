#!/usr/bin/env node
// Browser test of the live camera wall (wall.js, player.js): headless Debian chromium driven
// by playwright-core against a real hub whose cameras are the real RTSP test server's streams.
//
//   node tests/browser/wall.test.mjs --url http://127.0.0.1:8080 --user duty \
//     --community xingfu --cameras cam-1,cam-2,cam-3,cam-4 --sub-width 640 --main-width 1280 \
//     --h265-camera cam-h265 --alert ALERT_ID --alert-camera cam-2 \
//     --property-user prop --other-camera other-1 --artifacts target/browser-artifacts/wall
//
// Options:
//   --url URL             the hub                                                  [required]
//   --user NAME           a duty user; its password in XL_CONSOLE_PASSWORD or --password
//   --community ID        the community whose node is chosen in the tree               [required]
//   --cameras A,B,C,D     its four community-network H.264 cameras (the 4-tile page)   [required]
//   --sub-width N         their sub stream's width (default 640)
//   --main-width N        their main stream's width (default 1280)
//   --h265-camera ID      a skynet camera of the community whose streams are H.265     [required]
//   --alert ID            an alert of --alert-camera: its detail's live button is checked
//   --alert-camera ID     the camera of --alert
//   --property-user NAME  a property user of the community (password: --property-password
//                         or XL_PROPERTY_PASSWORD); it may watch --cameras, not --other-camera
//   --other-camera ID     a camera of another community
//   --artifacts DIR       screenshots (01-login.png ... 07-property.png), console.log
//   --chromium PATH       the browser (default: $CHROMIUM or /usr/bin/chromium)
//   --timeout SECS        how long to wait for each step (default 30)
//   --headed              show the browser
//
// What it checks: duty opens the wall, chooses the community and the community network and a
// 4-tile layout: the four cameras play their sub stream (for each video currentTime advances
// by at least 2 s, readyState >= 3, videoWidth is the sub stream's width, a frame drawn on a
// canvas is not uniform) and, after 17 s more, each keeps at most about 15 s buffered (the
// player trims behind the live edge). A double-click enlarges a tile to its main stream (the
// same checks, at the main stream's width); Esc returns to the four tiles (and the focus to
// the tile; Enter enlarges it again); the wall speaks English when asked. The H.265 camera
// plays through the hub's H.264 fallback with the "transcoded" badge (when this browser cannot
// play H.265, which Debian's cannot). The alert's live button opens its camera enlarged on its
// main stream. A property user's wall shows only the community's community-network cameras,
// and a WebSocket it opens from the page to another community's camera closes without a
// single binary message (while one to its own camera gets the init segment).
//
// Exit status 0 when every step passed; 1 with "wall test: FAILED at step ..." otherwise; 2
// for bad arguments.

import { resolve } from "node:path";
import { parseArgs } from "node:util";

import { fail, logIn, runInBrowser } from "./lib.mjs";

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      url: { type: "string" },
      user: { type: "string", default: "duty" },
      password: { type: "string" },
      community: { type: "string" },
      cameras: { type: "string" },
      "sub-width": { type: "string", default: "640" },
      "main-width": { type: "string", default: "1280" },
      "h265-camera": { type: "string" },
      alert: { type: "string" },
      "alert-camera": { type: "string" },
      "property-user": { type: "string" },
      "property-password": { type: "string" },
      "other-camera": { type: "string" },
      artifacts: { type: "string", default: "artifacts" },
      chromium: { type: "string" },
      timeout: { type: "string", default: "30" },
      headed: { type: "boolean", default: false },
    },
  }));
} catch (e) {
  console.error(`wall test: ${e.message}`);
  process.exit(2);
}
const password = opts.password ?? process.env.XL_CONSOLE_PASSWORD;
const propertyPassword = opts["property-password"] ?? process.env.XL_PROPERTY_PASSWORD;
const missing = [
  !opts.url && "--url",
  !opts.community && "--community",
  !opts.cameras && "--cameras",
  !opts["h265-camera"] && "--h265-camera",
  password === undefined && "--password (or XL_CONSOLE_PASSWORD)",
  opts["property-user"] && !opts["other-camera"] && "--other-camera",
  opts["property-user"] && propertyPassword === undefined && "--property-password (or XL_PROPERTY_PASSWORD)",
  opts.alert && !opts["alert-camera"] && "--alert-camera",
].filter(Boolean);
if (missing.length) {
  console.error(`wall test: missing ${missing.join(", ")} (see the comment at the top of this file)`);
  process.exit(2);
}
const baseUrl = opts.url.replace(/\/+$/, "");
const cameras = opts.cameras.split(",").filter(Boolean);
if (cameras.length !== 4) {
  console.error("wall test: --cameras names exactly four cameras");
  process.exit(2);
}
const subWidth = Number(opts["sub-width"]);
const mainWidth = Number(opts["main-width"]);
const timeout = Math.max(1, Number(opts.timeout) || 30) * 1000;
const tile = (id) => `[data-testid="camera-card"][data-camera-id="${id}"]`;
/** Pixel variance above which a frame is a picture, not a flat fill (a real scene: hundreds). */
const MIN_VARIANCE = 40;

/**
 * Waits until every tile of `ids` (with `stream`) plays: the video's currentTime advances by
 * `secs` seconds from when it first plays; then checks readyState, videoWidth and a frame.
 * Resolves with {id: {width, height, advanced, readyState, variance, buffered}}.
 */
async function checkPlaying(ctx, ids, { stream, width, secs = 2, transcoded }) {
  const { page } = ctx;
  for (const id of ids) {
    await page
      .locator(`${tile(id)}[data-stream="${stream}"][data-play="playing"]`)
      .waitFor({ state: "attached", timeout })
      .catch(async () => {
        const el = page.locator(tile(id));
        const seen = (await el.count())
          ? `it shows play=${await el.getAttribute("data-play")} stream=${await el.getAttribute("data-stream")} ` +
            `state=${await el.getAttribute("data-state")} overlay="${await el.locator('[data-testid="tile-overlay"]').textContent()}"`
          : "it is not on the wall";
        fail(`${id} does not play its ${stream} stream within ${timeout / 1000}s: ${seen}`);
      });
  }
  const starts = await page.evaluate(
    (ids) => ids.map((id) => document.querySelector(`[data-camera-id="${id}"] video`).currentTime),
    ids.map((id) => id),
  );
  await page
    .waitForFunction(
      ({ ids, starts, secs }) =>
        ids.every((id, i) => {
          const v = document.querySelector(`[data-camera-id="${id}"] video`);
          return v && v.currentTime >= starts[i] + secs;
        }),
      { ids, starts, secs },
      { timeout: timeout + secs * 1000 },
    )
    .catch(async () => {
      const now = await page.evaluate(
        (ids) => ids.map((id) => document.querySelector(`[data-camera-id="${id}"] video`)?.currentTime),
        ids,
      );
      fail(`the videos did not advance ${secs}s (from ${JSON.stringify(starts)} to ${JSON.stringify(now)})`);
    });
  // Playing live, a video may wait a moment for the next picture (readyState 2): give it a few
  // seconds to have the future data it should have.
  await page
    .waitForFunction((ids) => ids.every((id) => document.querySelector(`[data-camera-id="${id}"] video`).readyState >= 3), ids, {
      timeout: 5000,
    })
    .catch(() => {});
  const facts = await page.evaluate((ids) => {
    const out = {};
    for (const id of ids) {
      const el = document.querySelector(`[data-camera-id="${id}"]`);
      const v = el.querySelector("video");
      const c = document.createElement("canvas");
      c.width = 160;
      c.height = 90;
      const g = c.getContext("2d");
      g.drawImage(v, 0, 0, c.width, c.height);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      let sum = 0;
      let sq = 0;
      const n = d.length / 4;
      for (let i = 0; i < d.length; i += 4) {
        const y = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
        sum += y;
        sq += y * y;
      }
      const mean = sum / n;
      const b = v.buffered;
      out[id] = {
        width: v.videoWidth,
        height: v.videoHeight,
        readyState: v.readyState,
        currentTime: v.currentTime,
        variance: sq / n - mean * mean,
        buffered: b.length ? b.end(b.length - 1) - b.start(0) : 0,
        ranges: b.length,
        transcoded: el.dataset.transcoded,
        badge: !el.querySelector('[data-testid="tile-transcoded"]').hidden,
      };
    }
    return out;
  }, ids);
  for (const id of ids) {
    const f = facts[id];
    ctx.log(
      `${id} (${stream}): ${f.width}x${f.height}, readyState ${f.readyState}, t=${f.currentTime.toFixed(1)}s, ` +
        `pixel variance ${f.variance.toFixed(0)}, ${f.buffered.toFixed(1)}s buffered, transcoded ${f.transcoded}`,
    );
    if (f.readyState < 3) fail(`${id}: readyState ${f.readyState} < 3 (HAVE_FUTURE_DATA)`);
    if (f.width !== width) fail(`${id}: videoWidth ${f.width}, not the ${stream} stream's ${width}`);
    if (!(f.variance > MIN_VARIANCE)) fail(`${id}: the frame drawn is uniform (pixel variance ${f.variance.toFixed(1)})`);
    if (transcoded !== undefined) {
      if (f.transcoded !== String(transcoded)) fail(`${id}: transcoded is ${f.transcoded}, expected ${transcoded}`);
      if (f.badge !== transcoded) fail(`${id}: the transcoded badge is ${f.badge ? "shown" : "not shown"}`);
    }
  }
  return facts;
}

const exitCode = await runInBrowser(
  { name: "wall test", executablePath: opts.chromium || process.env.CHROMIUM || "/usr/bin/chromium", headed: opts.headed, artifacts: resolve(opts.artifacts) },
  async (ctx) => {
    const { page } = ctx;
    page.setDefaultTimeout(timeout);
    await logIn(ctx, { baseUrl, user: opts.user, password, before: "01-login.png" });
    const playsH265 = await page.evaluate(() =>
      MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L93.B0"'),
    );
    ctx.log(`this browser ${playsH265 ? "plays" : "does not play"} H.265 in MSE`);

    ctx.step = "open the wall, choose the community, its community network and 4 tiles";
    await page.getByTestId("tab-cameras").click();
    const node = page.locator(`[data-testid="wall-node"][data-node="c:${opts.community}"]`);
    await node.waitFor();
    await page.getByTestId("wall-layout-4").click();
    await node.click();
    const communityCount = await node.getByTestId("wall-node-count").textContent();
    if (communityCount !== "5") fail(`the community's node counts ${communityCount} cameras, not 5`);
    await page.locator('[data-testid="wall-network"][data-value="community"]').click();
    if ((await node.getByTestId("wall-node-count").textContent()) !== "4") {
      fail("with the community network chosen, the community's node does not count 4 cameras");
    }
    await page.waitForFunction(
      (want) => {
        const shown = Array.from(document.querySelectorAll('[data-testid="camera-card"]')).map((t) => t.dataset.cameraId);
        return shown.length === want.length && want.every((id) => shown.includes(id));
      },
      cameras,
    ).catch(async () => {
      const shown = await page.locator('[data-testid="camera-card"]').evaluateAll((ts) => ts.map((t) => t.dataset.cameraId));
      fail(`the 4-tile page shows ${JSON.stringify(shown)}, not ${JSON.stringify(cameras)}`);
    });
    const pageText = await page.getByTestId("wall-page").textContent();
    if (!/\b1\s*\/\s*1\b/.test(pageText)) fail(`the pager reads "${pageText}", not page 1 of 1`);

    ctx.step = "the four tiles play their sub streams";
    await checkPlaying(ctx, cameras, { stream: "sub", width: subWidth, transcoded: false });
    await ctx.shot("02-wall-4.png");

    ctx.step = "the buffer stays bounded behind the live edge";
    const long = await checkPlaying(ctx, cameras, { stream: "sub", width: subWidth, secs: 17 });
    for (const id of cameras) {
      if (long[id].buffered > 16) fail(`${id} holds ${long[id].buffered.toFixed(1)}s of video: the buffer is not trimmed`);
    }

    ctx.step = "double-click enlarges a tile to its main stream";
    await page.locator(tile(cameras[0])).dblclick();
    await page.locator('[data-testid="wall-grid"].enlarged').waitFor({ state: "attached" });
    if ((await page.locator('[data-testid="camera-card"]').count()) !== 1) fail("the enlarged view shows more than one tile");
    await checkPlaying(ctx, [cameras[0]], { stream: "main", width: mainWidth });
    await ctx.shot("03-enlarged.png");

    ctx.step = "Esc returns to the four tiles, the enlarged one focused; Enter enlarges it again";
    await page.keyboard.press("Escape");
    await page.locator('[data-testid="wall-grid"]:not(.enlarged)').waitFor({ state: "attached" });
    const focused = await page.evaluate(() => document.activeElement?.dataset?.cameraId);
    if (focused !== cameras[0]) fail(`after Esc the focus is on ${focused}, not on the tile of ${cameras[0]}`);
    await page.keyboard.press("Enter");
    await page.locator(`[data-testid="wall-grid"].enlarged ${tile(cameras[0])}[data-stream="main"]`).waitFor({ state: "attached" });
    await page.keyboard.press("Escape");
    await page.locator('[data-testid="wall-grid"]:not(.enlarged)').waitFor({ state: "attached" });
    await checkPlaying(ctx, cameras, { stream: "sub", width: subWidth });

    ctx.step = "the wall in English";
    await page.getByTestId("lang-en").click();
    const pageEn = await page.getByTestId("wall-page").textContent();
    const statusEn = await page.locator(`${tile(cameras[0])} .cam-status`).textContent();
    if (!pageEn.startsWith("Page") || statusEn !== "Online") fail(`in English the pager reads "${pageEn}", the status "${statusEn}"`);
    await page.getByTestId("lang-zh").click();

    ctx.step = "the H.265 camera plays through the fallback";
    await page.locator('[data-testid="wall-network"][data-value="skynet"]').click();
    const h265 = opts["h265-camera"];
    await page.locator(tile(h265)).waitFor();
    await checkPlaying(ctx, [h265], { stream: "sub", width: subWidth, transcoded: !playsH265 });
    await ctx.shot("04-h265.png");
    await page.locator(tile(h265)).dblclick();
    await checkPlaying(ctx, [h265], { stream: "main", width: mainWidth, transcoded: !playsH265 });
    await ctx.shot("05-h265-main.png");
    await page.keyboard.press("Escape");
    await page.locator('[data-testid="wall-network"][data-value="all"]').click();

    if (opts.alert) {
      ctx.step = "the alert's live button opens its camera on the main stream";
      await page.getByTestId("tab-detail").click();
      await page.locator(`[data-testid="alert-row"][data-alert-id="${opts.alert}"]`).click();
      await page.locator(`[data-testid="alert-detail"][data-alert-id="${opts.alert}"]`).waitFor({ state: "attached" });
      await page.getByTestId("alert-live").click();
      await page.locator('[data-testid="camera-wall"]:not([hidden])').waitFor();
      await page.locator('[data-testid="wall-grid"].enlarged').waitFor({ state: "attached" });
      await checkPlaying(ctx, [opts["alert-camera"]], { stream: "main", width: mainWidth });
      await ctx.shot("06-alert-live.png");
      await page.keyboard.press("Escape");
    }

    if (opts["property-user"]) {
      ctx.step = "a property user sees only the community's own cameras";
      await page.getByTestId("logout").click();
      await page.getByTestId("login-view").waitFor();
      await logIn(ctx, { baseUrl, user: opts["property-user"], password: propertyPassword });
      ctx.step = "a property user sees only the community's own cameras";
      await page.getByTestId("tab-cameras").click();
      const all = page.locator('[data-testid="wall-node"][data-node="all"] [data-testid="wall-node-count"]');
      await page.waitForFunction(
        () => document.querySelector('[data-testid="wall-node"][data-node="all"] [data-testid="wall-node-count"]')?.textContent === "4",
      ).catch(async () => fail(`the property user's wall counts ${await all.textContent()} cameras, not 4`));
      await ctx.shot("07-property.png");

      ctx.step = "a property user's WebSocket to another community's camera is refused";
      const watch = (id) =>
        page.evaluate(
          ({ id, waitMs }) =>
            new Promise((done) => {
              const seen = { opened: false, texts: [], binary: 0, close: null };
              const ws = new WebSocket(`ws://${location.host}/api/v1/cameras/${encodeURIComponent(id)}/live?stream=sub&h265=false`);
              ws.binaryType = "arraybuffer";
              ws.onopen = () => (seen.opened = true);
              ws.onmessage = (e) => {
                if (typeof e.data === "string") seen.texts.push(e.data.slice(0, 200));
                else seen.binary += 1;
              };
              const finish = () => {
                clearTimeout(timer);
                ws.onclose = null;
                if (ws.readyState !== WebSocket.CLOSED) ws.close();
                done(seen);
              };
              ws.onclose = (e) => {
                seen.close = { code: e.code, reason: e.reason, clean: e.wasClean };
                finish();
              };
              // Its own camera: enough once the init segment (a binary message) came.
              ws.addEventListener("message", (e) => typeof e.data !== "string" && finish());
              const timer = setTimeout(finish, waitMs);
            }),
          { id, waitMs: timeout },
        );
      const other = await watch(opts["other-camera"]);
      ctx.log(`another community's camera: ${JSON.stringify(other)}`);
      if (other.binary > 0) fail(`the socket to ${opts["other-camera"]} got ${other.binary} binary message(s)`);
      if (!other.close) fail(`the socket to ${opts["other-camera"]} was not closed within ${timeout / 1000}s`);
      const own = await watch(cameras[1]);
      ctx.log(`its own community's camera: opened ${own.opened}, ${own.binary} binary, texts ${JSON.stringify(own.texts)}`);
      if (!own.opened || own.binary < 1) fail(`the property user's socket to its own ${cameras[1]} got no video`);
      if (!own.texts.some((t) => t.includes('"init"'))) fail(`the socket to ${cameras[1]} sent no init message`);
    }
  },
);
process.exit(exitCode);
