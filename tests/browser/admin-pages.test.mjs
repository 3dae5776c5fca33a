#!/usr/bin/env node
// Browser test of the console's admin pages for the rest of the topology and for users,
// against a running hub (no camera needs to stream): an admin adds a station, a community of
// it, a grid, a camera in that grid, a gate watched by the camera (write-only push secret), a
// police user limited to the station and a property user of the community; renames the
// community and sees the new name in the tables; disables and enables the station; is told
// that the grid cannot go while the camera is in it; edits a camera someone else changed
// meanwhile and is told so (409, reloaded); imports a CSV with a bad row (per-row report,
// nothing stored) and then a good one; sees the cluster page say that this hub runs alone;
// and does the same in English.
//
//   node tests/browser/admin-pages.test.mjs --url http://127.0.0.1:8080 --user admin \
//     --password 'admin-password' --artifacts target/browser-artifacts/admin-pages
//
// Options: --url (required), --user (default admin), --password (or XL_CONSOLE_PASSWORD),
// --prefix P (ids made start with it; default "t"), --artifacts DIR, --chromium PATH,
// --timeout SECS (each step, default 20), --headed. Exit status 0 when every step passed; 1
// with an "admin pages test: FAILED at step ..." line on stderr; 2 for bad arguments.

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
      prefix: { type: "string", default: "t" },
      artifacts: { type: "string", default: "artifacts" },
      chromium: { type: "string" },
      timeout: { type: "string", default: "20" },
      headed: { type: "boolean", default: false },
    },
  }));
} catch (e) {
  console.error(`admin pages test: ${e.message}`);
  process.exit(2);
}
const password = opts.password ?? process.env.XL_CONSOLE_PASSWORD;
if (!opts.url || password === undefined) {
  console.error("admin pages test: missing --url or --password (or XL_CONSOLE_PASSWORD)");
  process.exit(2);
}
const p = opts.prefix;
const ids = {
  station: `${p}-station`,
  community: `${p}-community`,
  grid: `${p}-grid`,
  camera: `${p}-cam`,
  gate: `${p}-gate`,
  police: `${p}-police`,
  property: `${p}-property`,
  imported: [`${p}-csv-1`, `${p}-csv-2`],
};

const exitCode = await runInBrowser(
  {
    name: "admin pages test",
    executablePath: opts.chromium || process.env.CHROMIUM || "/usr/bin/chromium",
    headed: opts.headed,
    artifacts: resolve(opts.artifacts),
  },
  async (ctx) => {
    const { page } = ctx;
    page.setDefaultTimeout(Math.max(1, Number(opts.timeout) || 20) * 1000);
    await logIn(ctx, { baseUrl: opts.url.replace(/\/+$/, ""), user: opts.user, password });
    await page.getByTestId("tab-admin").click();

    const rowOf = (id) => page.locator(`[data-testid="admin-row"][data-id="${id}"]`);
    const form = page.getByTestId("admin-form");
    const formError = form.locator('[data-testid="admin-form-error"]:not([hidden])');
    const open = async (nav) => {
      await page.getByTestId(`admin-nav-${nav}`).click();
      await page.locator(`[data-testid="admin-body"][data-page="${nav}"]`).waitFor();
    };
    /** Opens the add form, fills `fields` (name -> value; arrays tick checkboxes), saves. */
    const add = async (nav, id, fields) => {
      await open(nav);
      await page.getByTestId("admin-add").click();
      await fill(fields);
      await save(id);
    };
    const fill = async (fields) => {
      for (const [name, value] of Object.entries(fields)) {
        const field = form.getByTestId(`field-${name}`);
        const tag = await field.evaluate((el) => el.tagName.toLowerCase());
        if (tag === "select") await field.selectOption(value);
        else if (Array.isArray(value)) for (const v of value) await field.locator(`input[value="${v}"]`).check();
        else if ((await field.getAttribute("type")) === "checkbox") await field.setChecked(value);
        else await field.fill(value);
      }
    };
    const save = async (id) => {
      await form.getByTestId("admin-save").click();
      const ok = await Promise.race([
        form.waitFor({ state: "detached" }).then(() => true),
        formError.waitFor().then(() => false),
      ]);
      if (!ok) fail(`saving ${id} was refused: ${await formError.textContent()}`);
      await rowOf(id).waitFor();
    };
    const cell = (id, n) => rowOf(id).locator("td").nth(n).textContent();

    ctx.step = "add a station, a community of it and a grid";
    await add("stations", ids.station, { id: ids.station, name: "东城派出所" });
    await add("communities", ids.community, { id: ids.community, name: "安乐小区", station: ids.station });
    if (!(await cell(ids.community, 2)).includes("东城派出所")) fail("the community's row does not name its station");
    await add("grids", ids.grid, { id: ids.grid, name: "第一网格", community: ids.community });

    ctx.step = "add a camera in the grid";
    await add("cameras", ids.camera, {
      id: ids.camera,
      name: "安乐北门",
      community: ids.community,
      grid: ids.grid,
      network: "skynet",
      main: "rtsp://10.9.8.7:554/Streaming/Channels/101",
      username: "viewer",
      password: "camera-secret-1",
      decode: "key-frames",
      detect: false,
    });
    await rowOf(ids.camera).getByTestId("admin-edit").click();
    const secretHint = await form.getByTestId("field-password").getAttribute("placeholder");
    if ((await form.getByTestId("field-password").inputValue()) !== "") fail("the camera's password is shown");
    ctx.log(`camera saved; its password field says "${secretHint}"`);
    await form.getByTestId("admin-cancel").click();

    ctx.step = "add a gate watched by the camera";
    await add("gates", ids.gate, {
      id: ids.gate,
      name: "安乐东门门禁",
      community: ids.community,
      firmware: "hikvision-isapi",
      camera: ids.camera,
      transport: "http-push",
      push_secret: "gate-push-secret-0123456789",
      push_allow_from: "10.0.0.0/24",
      offline_after_secs: "120",
    });
    if (!(await cell(ids.gate, 4)).includes("安乐北门")) fail("the gate's row does not name its camera");

    ctx.step = "a bad gate is refused with the API's reason beside the field";
    await page.getByTestId("admin-add").click();
    await fill({ id: `${ids.gate}-bad`, name: "坏门禁", community: ids.community, firmware: "hikvision-isapi", transport: "http-push" });
    await form.getByTestId("admin-save").click();
    await formError.waitFor();
    const why = await formError.textContent();
    if (!/push/i.test(why)) fail(`the refusal does not say why: ${why}`);
    ctx.log(`refused as it should be: ${why}`);
    await ctx.shot("01-gate-refused.png");
    await form.getByTestId("admin-cancel").click();

    ctx.step = "add a police user limited to the station and a property user";
    await add("users", ids.police, { username: ids.police, password: "police-password-1", role: "police", stations: [ids.station] });
    if (!(await cell(ids.police, 2)).includes("东城派出所")) fail("the police user's scope is not the station");
    await add("users", ids.property, { username: ids.property, password: "property-password-1", role: "property", communities: [ids.community] });
    if (!(await cell(ids.property, 2)).includes("安乐小区")) fail("the property user's scope is not the community");

    ctx.step = "rename the community";
    await open("communities");
    await rowOf(ids.community).getByTestId("admin-edit").click();
    await fill({ name: "安乐家园" });
    await save(ids.community);
    await page.waitForFunction((id) => document.querySelector(`[data-testid="admin-row"][data-id="${id}"]`)?.textContent.includes("安乐家园"), ids.community);
    await open("cameras");
    if (!(await cell(ids.camera, 2)).includes("安乐家园")) fail("the camera table still shows the community's old name");

    ctx.step = "disable and enable the station";
    await open("stations");
    await rowOf(ids.station).getByTestId("admin-disable").click();
    await rowOf(ids.station).getByTestId("admin-enable").waitFor();
    await rowOf(ids.station).getByTestId("admin-enable").click();
    await rowOf(ids.station).getByTestId("admin-disable").waitFor();

    ctx.step = "the grid cannot go while the camera is in it";
    await open("grids");
    page.once("dialog", (d) => d.accept());
    await rowOf(ids.grid).getByTestId("admin-delete").click();
    const toast = page.locator('#toast[data-kind="error"]:not([hidden])');
    await toast.waitFor();
    const refusal = await toast.textContent();
    if (!refusal.includes(ids.camera)) fail(`deleting the grid in use says "${refusal}", not who uses it`);
    if (!(await rowOf(ids.grid).count())) fail("the grid is gone");
    ctx.log(`grid kept: ${refusal}`);

    ctx.step = "an edit of a camera someone else changed meanwhile";
    await open("cameras");
    await rowOf(ids.camera).getByTestId("admin-edit").click();
    await fill({ name: "安乐北门（改）" });
    // Someone else disables the camera with the revision the page read.
    const status = await page.evaluate(async (id) => {
      const csrf = document.cookie.split("; ").find((c) => c.startsWith("xl_csrf="))?.slice(8) ?? "";
      const one = await fetch(`/api/v1/topology/cameras/${id}`);
      const r = await fetch(`/api/v1/topology/cameras/${id}/disable`, {
        method: "POST",
        headers: { "If-Match": one.headers.get("ETag"), "X-CSRF-Token": decodeURIComponent(csrf) },
      });
      return r.status;
    }, ids.camera);
    if (status !== 200) fail(`disabling behind the page's back answered ${status}`);
    await form.getByTestId("admin-save").click();
    await formError.waitFor();
    const conflict = await formError.textContent();
    if (!(await form.getByTestId("field-name").inputValue()).startsWith("安乐北门") || !/他人|someone else/.test(conflict)) {
      fail(`a stale save says "${conflict}"`);
    }
    if ((await form.getByTestId("field-name").inputValue()) !== "安乐北门") fail("the form was not reloaded from the store");
    ctx.log(`stale edit: ${conflict}`);
    await ctx.shot("02-conflict.png");
    await form.getByTestId("admin-cancel").click();
    await rowOf(ids.camera).getByTestId("admin-enable").waitFor();

    ctx.step = "a CSV with a bad row is refused row by row";
    const header = "id,name,community,grid,network,main_url,sub_url,username,password";
    const good = `${ids.imported[0]},导入一,${ids.community},,community,rtsp://10.1.1.1/a,,,\n`;
    await page.getByTestId("admin-import-file").setInputFiles({
      name: "bad.csv",
      mimeType: "text/csv",
      buffer: Buffer.from(`${header}\n${good}${ids.imported[1]},导入二,${ids.community},,community,http://10.1.1.2/b,,,\n`),
    });
    const report = page.locator('[data-testid="import-report"][data-state="error"]');
    await report.waitFor();
    const rows = await report.getByTestId("import-rows").locator("tbody tr").allTextContents();
    if (rows.length !== 1 || !rows[0].startsWith("2") || !rows[0].includes("main_url")) fail(`the report's rows: ${JSON.stringify(rows)}`);
    if (await rowOf(ids.imported[0]).count()) fail("a refused import stored its good row");
    await ctx.shot("03-import-refused.png");

    ctx.step = "a good CSV is imported";
    await page.getByTestId("admin-import-file").setInputFiles({
      name: "good.csv",
      mimeType: "text/csv",
      buffer: Buffer.from(`${header}\n${good}${ids.imported[1]},导入二,${ids.community},,private,,rtsp://10.1.1.2/b,,\n`),
    });
    await page.locator('[data-testid="import-report"][data-state="ok"]').waitFor();
    for (const id of ids.imported) await rowOf(id).waitFor();

    ctx.step = "search";
    await page.getByTestId("admin-search").fill("导入");
    if ((await page.getByTestId("admin-row").count()) !== 2) fail("searching 导入 does not find exactly the two imported cameras");
    await page.getByTestId("admin-search").fill("");

    ctx.step = "the cluster page of a single hub";
    await open("cluster");
    const single = page.getByTestId("cluster-single");
    await single.waitFor();
    if (!(await single.textContent()).includes("单机运行")) fail(`the single-hub notice says "${await single.textContent()}"`);
    if (await page.getByTestId("cluster-nodes").count()) fail("a single hub shows a table of nodes");
    await ctx.shot("05-cluster-single.png");

    ctx.step = "the same pages in English";
    await page.getByTestId("lang-en").click();
    await open("cluster");
    await page.getByText("This hub runs alone (no [cluster] in its config)").waitFor();
    await open("gates");
    await rowOf(ids.gate).getByTestId("admin-edit").click();
    if ((await form.getByTestId("admin-save").textContent()) !== "Save") fail("the form is not in English");
    if ((await form.getByTestId("field-push_secret").inputValue()) !== "") fail("the gate's push secret is shown");
    await ctx.shot("04-english.png");
    await form.getByTestId("admin-cancel").click();
    await page.getByTestId("lang-zh").click();
  },
);
process.exit(exitCode);
