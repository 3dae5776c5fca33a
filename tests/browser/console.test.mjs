#!/usr/bin/env node
// Browser test of the duty console: headless Debian chromium driven by playwright-core.
//
// The command line it expects (run from the repository root, after scripts/setup-browser):
//
//   node tests/browser/console.test.mjs \
//     --url http://127.0.0.1:8080 \
//     --user duty --password 'duty-password' \
//     --publish-cmd 'mosquitto_pub -h 127.0.0.1 -p 1883 -q 1 -t TOPIC -f DOOR_FORCED_PAYLOAD' \
//     --artifacts target/browser-artifacts
//
// Options:
//   --url URL            the hub (serves the console at `/`)                       [required]
//   --user NAME          a duty user                                    (default: duty)
//   --password PW        its password; or the XL_CONSOLE_PASSWORD environment variable
//   --publish-cmd CMD    shell command (sh -c) that makes the hub raise a
//                        gate.forced_open alert, e.g. publishing a door-forced payload
//                        to the broker; run once the console shows the live list      [required]
//   --artifacts DIR      where the screenshots go: 01-login.png, 02-alert-live.png,
//                        03-detail.png, 04-acknowledged.png, the page's console.log,
//                        and failure.png on failure               (default: ./artifacts)
//   --chromium PATH      the browser (default: $CHROMIUM or /usr/bin/chromium)
//   --kind KIND          the alert kind to wait for            (default: gate.forced_open)
//   --timeout SECS       how long to wait for each step                    (default: 20)
//   --allow-no-snapshot  do not fail when the alert has no snapshot
//   --headed             show the browser (debugging)
//
// Exit status 0 when every step passed; 1 with a "console test: FAILED: ..." line on stderr
// otherwise; 2 for bad arguments.

import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { parseArgs } from "node:util";

import { StepError, fail, logIn, runInBrowser } from "./lib.mjs";

let opts;
try {
  ({ values: opts } = parseArgs({
    options: {
      url: { type: "string" },
      user: { type: "string", default: "duty" },
      password: { type: "string" },
      "publish-cmd": { type: "string" },
      artifacts: { type: "string", default: "artifacts" },
      chromium: { type: "string" },
      kind: { type: "string", default: "gate.forced_open" },
      timeout: { type: "string", default: "20" },
      "allow-no-snapshot": { type: "boolean", default: false },
      headed: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  }));
} catch (e) {
  console.error(`console test: ${e.message}`);
  process.exit(2);
}
if (opts.help) {
  console.log("usage: console.test.mjs --url URL --publish-cmd CMD [--user U] [--password P] [--artifacts DIR]");
  process.exit(0);
}
const password = opts.password ?? process.env.XL_CONSOLE_PASSWORD;
const missing = [
  !opts.url && "--url",
  !opts["publish-cmd"] && "--publish-cmd",
  password === undefined && "--password (or XL_CONSOLE_PASSWORD)",
].filter(Boolean);
if (missing.length) {
  console.error(`console test: missing ${missing.join(", ")} (see the comment at the top of this file)`);
  process.exit(2);
}
const baseUrl = opts.url.replace(/\/+$/, "");
const artifacts = resolve(opts.artifacts);
const executablePath = opts.chromium || process.env.CHROMIUM || "/usr/bin/chromium";
const timeout = Math.max(1, Number(opts.timeout) || 20) * 1000;
const kind = opts.kind;

/** Runs the publish command; resolves with its output, rejects on a non-zero exit or timeout. */
function runPublish(cmd) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn("/bin/sh", ["-c", cmd], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new StepError(`publish command timed out after ${timeout / 1000}s: ${cmd}`));
    }, timeout);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new StepError(`publish command failed to start: ${e.message}`));
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolvePromise(out);
      else reject(new StepError(`publish command exited with ${code ?? signal}: ${cmd}\n${out}`));
    });
  });
}

const exitCode = await runInBrowser(
  { name: "console test", executablePath, headed: opts.headed, artifacts },
  async (ctx) => {
    const { page } = ctx;
    page.setDefaultTimeout(timeout);
    await logIn(ctx, { baseUrl, user: opts.user, password, before: "01-login.png" });

    ctx.step = "wait for the live alert list";
    await page.locator('[data-testid="alert-list"][data-loaded="true"]').waitFor({ state: "attached" });
    await page.locator('[data-testid="stream-status"][data-state="live"]').waitFor();
    const before = await page
      .locator(`[data-testid="alert-row"][data-kind="${kind}"]`)
      .evaluateAll((rows) => rows.map((r) => r.dataset.alertId));
    if (before.length) ctx.log(`note: ${before.length} ${kind} alert(s) already listed; waiting for a new one`);
    await page.evaluate(() => {
      window.__xlNoReload = true;
    });

    ctx.step = "publish";
    ctx.log(`running the publish command`);
    const out = await runPublish(opts["publish-cmd"]);
    if (out.trim()) ctx.log(`publish output: ${out.trim()}`);

    ctx.step = `wait for a new ${kind} alert without reloading`;
    const rowHandle = await page
      .waitForFunction(
        ({ kind, before }) => {
          const rows = document.querySelectorAll(`[data-testid="alert-row"][data-kind="${kind}"]`);
          for (const r of rows) if (!before.includes(r.dataset.alertId)) return r.dataset.alertId;
          return null;
        },
        { kind, before },
        { timeout },
      )
      .catch(() =>
        fail(`no new ${kind} alert appeared in the list within ${timeout / 1000}s of the publish command`),
      );
    const alertId = await rowHandle.jsonValue();
    if (!(await page.evaluate(() => window.__xlNoReload === true))) fail("the page reloaded");
    ctx.log(`alert ${alertId} appeared live`);
    const row = page.locator(`[data-testid="alert-row"][data-alert-id="${alertId}"]`);
    await page.waitForTimeout(300); // let the row's highlight settle for the picture
    await ctx.shot("02-alert-live.png");

    ctx.step = "open the alert";
    await row.click();
    await page.locator(`[data-testid="alert-detail"][data-alert-id="${alertId}"]`).waitFor({ state: "attached" });
    await page.getByTestId("alert-title").waitFor({ state: "visible" });
    const snapshot = page.getByTestId("alert-snapshot");
    try {
      await page.waitForFunction(
        () => {
          const img = document.querySelector('[data-testid="alert-snapshot"]');
          return !!img && img.dataset.loaded === "true" && img.complete && img.naturalWidth > 0;
        },
        null,
        { timeout },
      );
      const size = await snapshot.evaluate((img) => `${img.naturalWidth}x${img.naturalHeight}`);
      ctx.log(`snapshot loaded (${size})`);
    } catch (e) {
      const loaded = await snapshot.getAttribute("data-loaded").catch(() => null);
      const msg = loaded === "error" ? "the snapshot failed to load" : "the alert shows no snapshot";
      if (!opts["allow-no-snapshot"]) fail(msg);
      ctx.log(`warning: ${msg}`);
    }
    await ctx.shot("03-detail.png");

    ctx.step = "acknowledge with a note";
    const note = `浏览器测试：已到现场查看 (browser test ${new Date().toISOString()})`;
    await page.getByTestId("alert-note").fill(note);
    const ack = page.getByTestId("alert-acknowledge");
    if (!(await ack.isEnabled())) fail("the acknowledge button is disabled");
    await ack.click();
    await page.locator('[data-testid="alert-state"][data-state="acknowledged"]').waitFor();
    await page.locator(`[data-testid="alert-row"][data-alert-id="${alertId}"][data-state="acknowledged"]`).waitFor({
      state: "attached",
    });
    await page.getByTestId("alert-history").getByText(note, { exact: false }).waitFor();
    ctx.log(`alert ${alertId} acknowledged, the note is in its history`);
    await ctx.shot("04-acknowledged.png");
  },
);
process.exit(exitCode);
