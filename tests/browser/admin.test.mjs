#!/usr/bin/env node
// Browser test of the console's admin pages against a running hub: an admin adds a camera
// (with "test connection" and its preview), draws a zone on its frame with an all-week
// schedule and saves; then, without a restart, the camera shows online on the camera wall and
// a person.intrusion alert for it appears in the live alert list.
//
// The command line it expects (run from the repository root, after scripts/setup-browser;
// crates/xueliang/tests/console.rs runs it against a hub and the RTSP test server):
//
//   node tests/browser/admin.test.mjs \
//     --url http://127.0.0.1:8080 --user admin --password 'admin-password' \
//     --camera-id walk-cam --camera-name '东门步道' --community xingfu \
//     --sub-url rtsp://127.0.0.1:8554/walk --artifacts target/browser-artifacts/admin
//
// Options:
//   --url URL              the hub (serves the console at `/`)                      [required]
//   --user NAME            an admin                                         (default: admin)
//   --password PW          its password; or the XL_CONSOLE_PASSWORD environment variable
//   --camera-id ID         the camera to add                                       [required]
//   --camera-name NAME     its display name                                        [required]
//   --community ID         the community to pick for it (it must exist)            [required]
//   --sub-url URL          its sub stream, an rtsp:// URL where people walk        [required]
//   --zone-id ID           the zone to draw                                  (default: yard)
//   --zone-name NAME       its display name, which the alert then shows          (default: none)
//   --config-camera ID     a camera the config file declares: its row must say "from config"
//                          and offer no delete
//   --artifacts DIR        screenshots (01-login.png ... 07-alert.png), the page's console.log,
//                          failure.png on failure                     (default: ./artifacts)
//   --chromium PATH        the browser (default: $CHROMIUM or /usr/bin/chromium)
//   --timeout SECS         how long to wait for each step in the page           (default: 20)
//   --live-timeout SECS    how long to wait for the camera online and for the alert (default: 60)
//   --headed               show the browser (debugging)
//
// Exit status 0 when every step passed; 1 with an "admin test: FAILED at step ..." line on
// stderr otherwise; 2 for bad arguments.

import { resolve } from "node:path";
import { parseArgs } from "node:util";

import { fail, logIn, runInBrowser } from "./lib.mjs";

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      url: { type: "string" },
      user: { type: "string", default: "admin" },
      password: { type: "string" },
      "camera-id": { type: "string" },
      "camera-name": { type: "string" },
      community: { type: "string" },
      "sub-url": { type: "string" },
      "zone-id": { type: "string", default: "yard" },
      "zone-name": { type: "string" },
      "config-camera": { type: "string" },
      artifacts: { type: "string", default: "artifacts" },
      chromium: { type: "string" },
      timeout: { type: "string", default: "20" },
      "live-timeout": { type: "string", default: "60" },
      headed: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  }));
} catch (e) {
  console.error(`admin test: ${e.message}`);
  process.exit(2);
}
if (opts.help) {
  console.log("usage: admin.test.mjs --url URL --camera-id ID --camera-name NAME --community ID --sub-url URL [--password P]");
  process.exit(0);
}
const password = opts.password ?? process.env.XL_CONSOLE_PASSWORD;
const missing = ["url", "camera-id", "camera-name", "community", "sub-url"]
  .filter((k) => !opts[k])
  .map((k) => `--${k}`);
if (password === undefined) missing.push("--password (or XL_CONSOLE_PASSWORD)");
if (missing.length) {
  console.error(`admin test: missing ${missing.join(", ")} (see the comment at the top of this file)`);
  process.exit(2);
}
const baseUrl = opts.url.replace(/\/+$/, "");
const timeout = Math.max(1, Number(opts.timeout) || 20) * 1000;
const liveTimeout = Math.max(1, Number(opts["live-timeout"]) || 60) * 1000;
const cameraId = opts["camera-id"];
const zoneId = opts["zone-id"];
const zoneName = opts["zone-name"];

const exitCode = await runInBrowser(
  {
    name: "admin test",
    executablePath: opts.chromium || process.env.CHROMIUM || "/usr/bin/chromium",
    headed: opts.headed,
    artifacts: resolve(opts.artifacts),
  },
  async (ctx) => {
    const { page } = ctx;
    page.setDefaultTimeout(timeout);
    await logIn(ctx, { baseUrl, user: opts.user, password, before: "01-login.png" });
    await page.evaluate(() => {
      window.__xlNoReload = true;
    });

    ctx.step = "open the cameras page";
    const adminTab = page.getByTestId("tab-admin");
    await adminTab.waitFor({ state: "visible" }).catch(() => fail("no admin tab: is the user an admin?"));
    await adminTab.click();
    await page.getByTestId("admin-nav-cameras").click();
    await page.locator('[data-testid="admin-body"][data-page="cameras"]').waitFor();
    const rowOf = (id) => page.locator(`[data-testid="admin-row"][data-id="${id}"]`);
    if (opts["config-camera"]) {
      const row = rowOf(opts["config-camera"]);
      await row.waitFor().catch(() => fail(`the config file's camera ${opts["config-camera"]} is not listed`));
      if (!(await row.getByTestId("from-config").count())) fail(`${opts["config-camera"]} has no "from config" badge`);
      if (await row.getByTestId("admin-delete").count()) fail(`${opts["config-camera"]} (from config) offers delete`);
    }
    if (await rowOf(cameraId).count()) fail(`camera ${cameraId} is listed before it was added`);
    await ctx.shot("02-cameras.png");

    ctx.step = "fill in the new camera";
    await page.getByTestId("admin-add").click();
    const form = page.locator('[data-testid="admin-form"][data-mode="add"]');
    await form.waitFor();
    await form.getByTestId("field-id").fill(cameraId);
    await form.getByTestId("field-name").fill(opts["camera-name"]);
    await form
      .getByTestId("field-community")
      .selectOption(opts.community)
      .catch(() => fail(`community ${opts.community} is not among the choices`));
    await form.getByTestId("field-sub").fill(opts["sub-url"]);

    ctx.step = "test connection";
    await form.getByTestId("camera-probe").click();
    const result = form.locator('[data-testid="probe-result"][data-state="ok"], [data-testid="probe-result"][data-state="error"]');
    await result.waitFor({ timeout: Math.max(timeout, 30_000) });
    if ((await result.getAttribute("data-state")) !== "ok") fail(`the probe failed: ${await result.textContent()}`);
    const codec = (await form.getByTestId("probe-codec").textContent()).trim();
    const resolution = (await form.getByTestId("probe-resolution").textContent()).trim();
    if (codec.toLowerCase() !== "h264") fail(`the probe says codec ${codec}, the test stream is H.264`);
    if (!/^\d+×\d+$/.test(resolution)) fail(`the probe shows no resolution (${resolution})`);
    await page
      .waitForFunction(() => {
        const img = document.querySelector('[data-testid="probe-snapshot"]');
        return !!img && img.dataset.loaded === "true" && img.naturalWidth > 0;
      })
      .catch(() => fail("the probe's preview image did not load"));
    ctx.log(`probe: ${codec} ${resolution}, fps ${await form.getByTestId("probe-fps").textContent()}, GOP ${await form.getByTestId("probe-gop").textContent()}`);
    await form.getByTestId("probe-snapshot").scrollIntoViewIfNeeded();
    await ctx.shot("03-probe.png");

    ctx.step = "save the camera";
    await form.getByTestId("admin-save").click();
    const saved = await Promise.race([
      rowOf(cameraId).waitFor().then(() => true),
      form.locator('[data-testid="admin-form-error"]:not([hidden])').waitFor().then(() => false),
    ]);
    if (!saved) fail(`saving was refused: ${await form.getByTestId("admin-form-error").textContent()}`);
    ctx.log(`camera ${cameraId} saved`);

    ctx.step = "open its zones";
    await rowOf(cameraId).getByTestId("admin-zones").click();
    const canvas = page.locator(`[data-testid="zone-editor"][data-camera-id="${cameraId}"] [data-testid="zone-canvas"]`);
    await page.locator('[data-testid="zone-canvas"][data-ready="true"]').waitFor();
    ctx.log(`zone editor picture: ${await canvas.getAttribute("data-background")}`);

    ctx.step = "draw a zone over most of the frame";
    const box = await canvas.boundingBox();
    for (const [x, y] of [[0.03, 0.03], [0.97, 0.03], [0.97, 0.97], [0.03, 0.97]]) {
      await canvas.click({ position: { x: x * box.width, y: y * box.height } });
    }
    await page.getByTestId("zone-close").click();
    if ((await canvas.getAttribute("data-points")) !== "4" || (await canvas.getAttribute("data-closed")) !== "true") {
      fail(`the zone has ${await canvas.getAttribute("data-points")} corners, closed: ${await canvas.getAttribute("data-closed")}`);
    }
    await page.getByTestId("zone-id").fill(zoneId);
    if (zoneName) await page.getByTestId("zone-name").fill(` ${zoneName} `);
    await page.getByTestId("zone-all-week").click();
    // Times are 24-hour text, whatever the browser's locale; a bad one is marked, "0:00" is
    // written back as "00:00" (the all-week range stays what it was).
    const start = page.locator('[data-testid="zone-schedule"] [data-testid="zone-start"]').first();
    if ((await start.getAttribute("type")) !== "text") fail(`the schedule's time input is ${await start.getAttribute("type")}`);
    if ((await start.inputValue()) !== "00:00") fail(`the all-week range starts at ${await start.inputValue()}`);
    await start.fill("24:00");
    if ((await start.getAttribute("aria-invalid")) !== "true") fail("24:00 is taken for a time");
    await start.fill("0:00");
    await start.press("Tab");
    if ((await start.inputValue()) !== "00:00" || (await start.getAttribute("aria-invalid")) !== "false") {
      fail(`"0:00" reads ${await start.inputValue()} (invalid: ${await start.getAttribute("aria-invalid")})`);
    }
    await ctx.shot("04-zone.png");

    ctx.step = "save the zones";
    await page.getByTestId("zone-save").click();
    const zoneSaved = await Promise.race([
      page.locator('[data-testid="zone-message"]:not([hidden])').waitFor().then(() => true),
      page.locator('[data-testid="zone-error"]:not([hidden])').waitFor().then(() => false),
    ]);
    if (!zoneSaved) fail(`saving the zone was refused: ${await page.getByTestId("zone-error").textContent()}`);
    const summary = await page.locator(`[data-testid="zone-row"][data-zone-id="${zoneId}"]`).textContent();
    ctx.log(`zone saved: ${summary}`);
    if (zoneName) {
      const shown = await page.locator(`[data-testid="zone-row"][data-zone-id="${zoneId}"] [data-testid="zone-row-name"]`).textContent();
      if (shown !== zoneName) fail(`the saved zone's name reads "${shown}", not "${zoneName}" (trimmed)`);
    }

    ctx.step = `wait for ${cameraId} online on the camera wall (no restart, no reload)`;
    await page.getByTestId("tab-cameras").click();
    await page
      .locator(`[data-testid="camera-card"][data-camera-id="${cameraId}"][data-state="online"]`)
      .waitFor({ timeout: liveTimeout })
      .catch(async () => {
        const card = page.locator(`[data-testid="camera-card"][data-camera-id="${cameraId}"]`);
        const seen = (await card.count()) ? `it shows ${await card.getAttribute("data-state")}` : "it is not on the wall";
        fail(`${cameraId} did not come online within ${liveTimeout / 1000}s: ${seen}`);
      });
    ctx.log(`${cameraId} is online on the wall`);
    await ctx.shot("05-wall.png");

    ctx.step = `wait for a person.intrusion alert of ${cameraId}`;
    const alertRow = page.locator(`[data-testid="alert-row"][data-kind="person.intrusion"][data-camera="${cameraId}"]`).first();
    await alertRow
      .waitFor({ timeout: liveTimeout })
      .catch(() => fail(`no person.intrusion alert of ${cameraId} within ${liveTimeout / 1000}s of it coming online`));
    if (!(await page.evaluate(() => window.__xlNoReload === true))) fail("the page reloaded");
    const where = await alertRow.locator(".row-sub").textContent();
    if (!where.includes(opts["camera-name"])) fail(`the alert row names the camera as "${where}", not by its name`);
    if (zoneName && !where.includes(zoneName)) fail(`the alert row names the zone as "${where}", not by its name`);
    await ctx.shot("06-alert-live.png");

    ctx.step = "open the alert";
    await alertRow.click();
    await page.getByTestId("alert-title").waitFor({ state: "visible" });
    const facts = await page.getByTestId("alert-facts").textContent();
    if (!facts.includes(opts["camera-name"]) || !facts.includes(zoneId)) fail(`the alert's facts lack the camera's name or the zone: ${facts}`);
    if (zoneName && !facts.includes(`${zoneName} (${zoneId})`)) fail(`the alert's facts lack the zone's name: ${facts}`);
    await ctx.shot("07-alert.png");
  },
);
process.exit(exitCode);
