// What the browser tests share: launching Debian's chromium headless with playwright-core,
// recording the page's console, logging in, and reporting a failure by the step it happened in.

import { mkdirSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";

/** A failure the test explains itself (no stack trace in the report). */
export class StepError extends Error {}

export const fail = (msg) => {
  throw new StepError(msg);
};

/**
 * Runs `body(ctx)` in a fresh page of a headless chromium (1920x1080, the browser's locale
 * `locale`, zh-CN unless given; the console's own language is its choice) and resolves with
 * the exit status: 0 when it and the final checks (no uncaught error, no CSP violation in the
 * page) passed; 1 with "`name`: FAILED at step "...": why" on stderr. `ctx` has `page`, `log`,
 * `shot(file)` (a screenshot into `artifacts`) and `step`, which the body sets as it goes so a
 * failure names it. The page's console goes to `artifacts/console.log`.
 */
export async function runInBrowser({ name, executablePath, headed = false, artifacts, locale = "zh-CN" }, body) {
  const log = (msg) => console.error(`${name}: ${msg}`);
  mkdirSync(artifacts, { recursive: true });
  if (!existsSync(executablePath)) {
    console.error(`${name}: FAILED: no browser at ${executablePath} (run scripts/setup-browser)`);
    return 1;
  }
  let chromium;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch (e) {
    console.error(`${name}: FAILED: playwright-core is not installed (run scripts/setup-browser): ${e.message}`);
    return 1;
  }
  const pageLog = [];
  const cspViolations = [];
  const ctx = {
    step: "launch chromium",
    page: null,
    log,
    shot: (file) => ctx.page.screenshot({ path: join(artifacts, file) }),
  };
  // Live video autoplays muted; headless chromium still wants the policy said (TOOLCHAIN.md).
  const args = ["--autoplay-policy=no-user-gesture-required"];
  if (process.getuid && process.getuid() === 0) args.push("--no-sandbox");
  let browser;
  let exitCode = 0;
  try {
    browser = await chromium.launch({ executablePath, headless: !headed, args, timeout: 60_000 });
    const context = await browser.newContext({
      viewport: { width: 1920, height: 1080 },
      locale,
      timezoneId: process.env.TZ || "Asia/Shanghai",
    });
    const page = await context.newPage();
    ctx.page = page;
    page.on("console", (m) => {
      pageLog.push(`[${m.type()}] ${m.text()}`);
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    page.on("pageerror", (e) => pageLog.push(`[pageerror] ${e.stack || e.message}`));
    page.on("requestfailed", (r) => pageLog.push(`[requestfailed] ${r.url()} ${r.failure()?.errorText}`));

    await body(ctx);

    ctx.step = "check the page for errors";
    const pageErrors = pageLog.filter((l) => l.startsWith("[pageerror]"));
    if (pageErrors.length) fail(`uncaught errors in the page:\n${pageErrors.join("\n")}`);
    if (cspViolations.length) fail(`Content Security Policy violations:\n${cspViolations.join("\n")}`);
    console.error(`${name}: ok (screenshots in ${artifacts})`);
  } catch (e) {
    exitCode = 1;
    const msg = e instanceof StepError ? e.message : e.stack || String(e);
    console.error(`${name}: FAILED at step "${ctx.step}": ${msg}`);
    if (ctx.page) await ctx.shot("failure.png").catch(() => {});
  } finally {
    writeFileSync(join(artifacts, "console.log"), pageLog.join("\n") + "\n");
    if (browser) await browser.close().catch(() => {});
  }
  return exitCode;
}

/** Opens the console at `baseUrl` and signs in; `before` is the screenshot of the filled form. */
export async function logIn(ctx, { baseUrl, user, password, before }) {
  const { page } = ctx;
  ctx.step = "open the console";
  ctx.log(`opening ${baseUrl}/`);
  const resp = await page.goto(`${baseUrl}/`, { waitUntil: "domcontentloaded" });
  if (!resp || !resp.ok()) fail(`GET / answered ${resp ? resp.status() : "nothing"}`);
  await page.getByTestId("login-username").waitFor({ state: "visible" });
  await page.getByTestId("login-username").fill(user);
  await page.getByTestId("login-password").fill(password);
  if (before) await ctx.shot(before);

  ctx.step = "log in";
  await page.getByTestId("login-submit").click();
  const loggedIn = await Promise.race([
    page.getByTestId("app-view").waitFor({ state: "visible" }).then(() => true),
    page.getByTestId("login-error").waitFor({ state: "visible" }).then(() => false),
  ]);
  if (!loggedIn) fail(`login refused: ${await page.getByTestId("login-error").textContent()}`);
}
