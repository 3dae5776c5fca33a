#!/usr/bin/env node
// Browser test: alerts read in the console's language, whatever the browser's. The browser runs
// with an English locale (en-US); the console starts in Chinese. A person.intrusion alert (the
// server's title is English, with the camera's id) must be titled in Chinese with the camera's
// name, and in English once English is chosen; its repeats fold into one history line per run
// ("重复 23 次，10:02:11–10:03:10"); a gate alert is titled with the gate's name; the zone
// schedule shows 24-hour times (text, not the browser's 12-hour time inputs).
//
// The command line it expects (run from the repository root, after scripts/setup-browser;
// crates/xueliang/tests/console.rs makes the alerts with the real rules engine and runs it):
//
//   node tests/browser/alert-text.test.mjs --url http://127.0.0.1:8080 --user admin \
//     --intrusion ALERT_ID --camera-id square-cam --camera-name 幸福广场东门 --zone lawn \
//     --server-title 'Person in zone lawn on camera square-cam' --history raised,23,noted,2 \
//     --gate-alert ALERT_ID --gate-name 北门门禁 --schedule 22:00-06:00 --artifacts DIR
//
// Options:
//   --url URL            the hub (serves the console at `/`)                       [required]
//   --user NAME          an admin (the zone schedule is on the admin pages) (default: admin)
//   --password PW        its password; or the XL_CONSOLE_PASSWORD environment variable
//   --intrusion ID       a person.intrusion alert                                  [required]
//   --camera-id ID       its camera's id                                           [required]
//   --camera-name NAME   that camera's display name (not its id)                   [required]
//   --zone ZONE          its zone, as the console shows it (the id, or the name)   [required]
//   --server-title TEXT  the alert's title as the server wrote it (English)        [required]
//   --history LIST       its history lines, oldest first: an action (raised, noted, ...) or
//                        a number, a run of that many repeats folded into one line [required]
//   --gate-alert ID      a gate.forced_open alert                       (optional)
//   --gate-name NAME     its gate's display name                        (with --gate-alert)
//   --schedule S-E       the first range of the camera's first zone, "HH:MM-HH:MM" (optional)
//   --artifacts DIR      screenshots 01-zh-list.png, 02-zh-detail.png, 03-en-detail.png,
//                        04-en-schedule.png, the page's console.log, failure.png on failure
//   --chromium PATH      the browser (default: $CHROMIUM or /usr/bin/chromium)
//   --timeout SECS       how long to wait for each step                    (default: 20)
//   --headed             show the browser (debugging)
//
// Exit status 0 when every step passed; 1 with an "alert text test: FAILED ..." line on stderr
// otherwise; 2 for bad arguments.

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
      intrusion: { type: "string" },
      "camera-id": { type: "string" },
      "camera-name": { type: "string" },
      zone: { type: "string" },
      "server-title": { type: "string" },
      history: { type: "string" },
      "gate-alert": { type: "string" },
      "gate-name": { type: "string" },
      schedule: { type: "string" },
      artifacts: { type: "string", default: "artifacts" },
      chromium: { type: "string" },
      timeout: { type: "string", default: "20" },
      headed: { type: "boolean", default: false },
    },
  }));
} catch (e) {
  console.error(`alert text test: ${e.message}`);
  process.exit(2);
}
const password = opts.password ?? process.env.XL_CONSOLE_PASSWORD;
const required = ["url", "intrusion", "camera-id", "camera-name", "zone", "server-title", "history"];
const missing = required.filter((k) => !opts[k]).map((k) => `--${k}`);
if (password === undefined) missing.push("--password (or XL_CONSOLE_PASSWORD)");
if (opts["gate-alert"] && !opts["gate-name"]) missing.push("--gate-name");
if (missing.length) {
  console.error(`alert text test: missing ${missing.join(", ")} (see the comment at the top of this file)`);
  process.exit(2);
}
const baseUrl = opts.url.replace(/\/+$/, "");
const executablePath = opts.chromium || process.env.CHROMIUM || "/usr/bin/chromium";
const timeout = Math.max(1, Number(opts.timeout) || 20) * 1000;
const cameraName = opts["camera-name"];
const cameraId = opts["camera-id"];
const zone = opts.zone;
const history = opts.history.split(",").map((x) => (/^\d+$/.test(x) ? Number(x) : x));

const CJK = /[\u3400-\u9fff]/;
const LATIN_WORD = /[A-Za-z]{2,}/;
/** `text` without the names it is expected to hold (which may be in either script). */
const without = (text, ...names) => names.reduce((s, n) => s.split(n).join(" "), text);

const exitCode = await runInBrowser(
  {
    name: "alert text test",
    executablePath,
    headed: opts.headed,
    artifacts: resolve(opts.artifacts),
    // The browser speaks English; the console speaks what the officer chooses.
    locale: "en-US",
  },
  async (ctx) => {
    const { page } = ctx;
    page.setDefaultTimeout(timeout);
    await logIn(ctx, { baseUrl, user: opts.user, password });
    const row = (id) => page.locator(`[data-testid="alert-row"][data-alert-id="${id}"]`);
    const rowTitle = (id) => row(id).getByTestId("alert-row-title").textContent();
    /** Waits until the row's title names `name` (display names come with the topology). */
    const titleNaming = (id, name) =>
      page
        .waitForFunction(
          ({ id, name }) =>
            document
              .querySelector(`[data-testid="alert-row"][data-alert-id="${id}"] [data-testid="alert-row-title"]`)
              ?.textContent.includes(name),
          { id, name },
          { timeout },
        )
        .catch(async () => fail(`the title of alert ${id} never names ${name}: ${await rowTitle(id).catch(() => "(no row)")}`));
    /** The detail's history as lines: an action, or the count of a folded run of repeats. */
    const historyLines = () =>
      page.locator('[data-testid="alert-history"] > li').evaluateAll((lis) =>
        lis.map((li) => ({
          line: li.dataset.testid === "history-repeats" ? Number(li.dataset.count) : li.dataset.action,
          action: li.querySelector(".hist-action")?.textContent ?? "",
          actor: li.querySelector(".hist-actor")?.textContent ?? "",
        })),
      );
    const checkHistory = async (repeatsText) => {
      await page.locator('[data-testid="alert-history"] [data-testid="history-repeats"]').first().waitFor();
      const lines = await historyLines();
      const got = lines.map((l) => l.line);
      if (JSON.stringify(got) !== JSON.stringify(history)) {
        fail(`history lines ${JSON.stringify(got)}, expected ${JSON.stringify(history)} (runs of repeats folded)`);
      }
      for (const l of lines.filter((l) => typeof l.line === "number")) {
        if (!repeatsText(l.line).test(l.action)) fail(`folded repeats read "${l.action}", expected ${repeatsText(l.line)}`);
      }
      return lines;
    };

    ctx.step = "the console starts in Chinese in an English browser";
    await page.locator('[data-testid="alert-list"][data-loaded="true"]').waitFor({ state: "attached" });
    if ((await page.evaluate(() => document.documentElement.lang)) !== "zh-CN") fail("the console is not in Chinese");

    ctx.step = "the intrusion's title in Chinese names the camera";
    await row(opts.intrusion).waitFor().catch(() => fail(`alert ${opts.intrusion} is not listed`));
    await titleNaming(opts.intrusion, cameraName);
    const zhTitle = (await rowTitle(opts.intrusion)).trim();
    ctx.log(`zh title: ${zhTitle} (server: ${opts["server-title"]})`);
    const zhRest = without(zhTitle, cameraName, zone);
    if (!zhTitle.includes(zone)) fail(`the Chinese title "${zhTitle}" does not name the zone ${zone}`);
    if (zhTitle.includes(cameraId)) fail(`the Chinese title "${zhTitle}" shows the camera's id`);
    if (!CJK.test(zhRest) || LATIN_WORD.test(zhRest)) fail(`the title "${zhTitle}" is not Chinese`);
    if (opts["gate-alert"]) {
      await row(opts["gate-alert"]).waitFor().catch(() => fail(`alert ${opts["gate-alert"]} is not listed`));
      await titleNaming(opts["gate-alert"], opts["gate-name"]);
      const gateTitle = (await rowTitle(opts["gate-alert"])).trim();
      ctx.log(`zh gate title: ${gateTitle}`);
      const rest = without(gateTitle, opts["gate-name"]);
      if (!CJK.test(rest) || LATIN_WORD.test(rest)) fail(`the gate alert's title "${gateTitle}" is not Chinese`);
    }
    await ctx.shot("01-zh-list.png");

    ctx.step = "the intrusion's detail in Chinese folds its repeats";
    await row(opts.intrusion).click();
    await page.locator(`[data-testid="alert-detail"][data-alert-id="${opts.intrusion}"]`).waitFor({ state: "attached" });
    const zhDetail = (await page.getByTestId("alert-title").textContent()).trim();
    if (zhDetail !== zhTitle) fail(`the detail's title "${zhDetail}" is not the list's "${zhTitle}"`);
    const zhLines = await checkHistory((n) => new RegExp(`^重复 ${n} 次，\\d\\d:\\d\\d:\\d\\d–(\\d{4}-\\d\\d-\\d\\d )?\\d\\d:\\d\\d:\\d\\d$`));
    const repeatActor = zhLines.find((l) => typeof l.line === "number").actor;
    if (repeatActor !== "系统") fail(`the repeats' actor reads "${repeatActor}", not 系统`);
    await page.getByTestId("alert-history").scrollIntoViewIfNeeded();
    await ctx.shot("02-zh-detail.png");

    ctx.step = "English: the same alert's title in English names the camera";
    await page.getByTestId("lang-en").click();
    if ((await page.evaluate(() => document.documentElement.lang)) !== "en") fail("the console did not switch to English");
    const enTitle = (await rowTitle(opts.intrusion)).trim();
    ctx.log(`en title: ${enTitle}`);
    if (!enTitle.includes(cameraName) || !enTitle.includes(zone)) fail(`the English title "${enTitle}" lacks the camera's name or the zone`);
    if (enTitle.includes(cameraId)) fail(`the English title "${enTitle}" shows the camera's id`);
    if (CJK.test(without(enTitle, cameraName, zone)) || !/^Person in zone /.test(enTitle)) {
      fail(`the title "${enTitle}" is not English`);
    }
    const enDetail = (await page.getByTestId("alert-title").textContent()).trim();
    if (enDetail !== enTitle) fail(`the detail's title "${enDetail}" is not the list's "${enTitle}"`);
    await checkHistory((n) => new RegExp(`^Repeated ${n} times, \\d\\d:\\d\\d:\\d\\d–(\\d{4}-\\d\\d-\\d\\d )?\\d\\d:\\d\\d:\\d\\d$`));
    if (opts["gate-alert"]) {
      const gateTitle = (await rowTitle(opts["gate-alert"])).trim();
      ctx.log(`en gate title: ${gateTitle}`);
      if (gateTitle !== `Door forced open at ${opts["gate-name"]}`) fail(`the gate alert's English title reads "${gateTitle}"`);
    }
    await ctx.shot("03-en-detail.png");

    if (opts.schedule) {
      ctx.step = "English: the zone schedule shows 24-hour times";
      const [start, end] = opts.schedule.split("-");
      await page.getByTestId("tab-admin").click();
      await page.getByTestId("admin-nav-cameras").click();
      await page.locator(`[data-testid="admin-row"][data-id="${cameraId}"]`).getByTestId("admin-zones").click();
      const first = (testid) => page.locator(`[data-testid="zone-schedule"] [data-testid="${testid}"]`).first();
      await first("zone-start").waitFor();
      const shown = await Promise.all(
        ["zone-start", "zone-end"].map((id) => first(id).evaluate((el) => ({ type: el.type, value: el.value }))),
      );
      ctx.log(`schedule inputs: ${JSON.stringify(shown)}`);
      // A time input would show "10:00 PM" here (the browser's locale), whatever its value.
      if (shown.some((s) => s.type !== "text")) fail(`the schedule's inputs are ${shown.map((s) => s.type)}, not 24-hour text`);
      if (shown[0].value !== start || shown[1].value !== end) {
        fail(`the schedule shows ${shown[0].value}–${shown[1].value}, expected ${start}–${end}`);
      }
      await ctx.shot("04-en-schedule.png");
    }
  },
);
process.exit(exitCode);
