#!/usr/bin/env node
// The console's strings: both languages have the same keys, and every key the console's files
// name (t("..."), data-i18n="...", a field's label) exists, so no label shows as its key; and
// every alert kind the console names has a title template (alert-text.js).
// No browser needed: `node tests/browser/i18n.test.mjs` (crates/xueliang/tests/console.rs runs
// it). Exit status 0 when all hold; 1 with the missing keys on stderr.

import { readFileSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const consoleDir = join(dirname(fileURLToPath(import.meta.url)), "../../crates/xl-api/console");
const { keys, LANGS } = await import(join(consoleDir, "i18n.js"));
const { TITLE_FIELDS } = await import(join(consoleDir, "alert-text.js"));

const problems = [];
const [first, ...others] = LANGS;
const base = new Set(keys(first));
for (const lang of others) {
  const theirs = new Set(keys(lang));
  for (const k of base) if (!theirs.has(k)) problems.push(`"${k}" is in ${first} but not in ${lang}`);
  for (const k of theirs) if (!base.has(k)) problems.push(`"${k}" is in ${lang} but not in ${first}`);
}

// Every quoted literal that looks like a key of one of the strings' families. Keys built at run
// time (`decode.${policy}`) are listed below with the values they take.
const families = new Set([...base].map((k) => k.split(".")[0]));
const used = new Set();
for (const file of readdirSync(consoleDir).filter((f) => /\.(js|html)$/.test(f) && f !== "i18n.js")) {
  const text = readFileSync(join(consoleDir, file), "utf8");
  for (const m of text.matchAll(/["'`]([a-z_]+(?:\.[A-Za-z0-9_-]+)+)["'`]/g)) {
    if (families.has(m[1].split(".")[0]) && !/\.(js|css|html|png)$/.test(m[1])) used.add(`${m[1]}\t${file}`);
  }
}
const built = {
  decode: ["all", "skip-non-reference", "key-frames"],
  recmode: ["continuous", "motion-and-events", "events-only", "off"],
  transport: ["mqtt", "http-push", "both"],
  day: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
  "zones.bg": ["snapshot", "probe", "none"],
  role: ["admin", "duty", "police", "property"],
  network: ["community", "skynet", "private"],
  "admin.state": ["enabled", "disabled"],
  // alert-text.js: one title per kind of the catalog (its TITLE_FIELDS).
  title: Object.keys(TITLE_FIELDS),
};
// Every kind the console names has a title of its own in the console's language.
for (const k of base) {
  if (k.startsWith("kind.") && !(k.slice(5) in TITLE_FIELDS)) problems.push(`"${k.slice(5)}" has no title (alert-text.js TITLE_FIELDS)`);
}
for (const [prefix, values] of Object.entries(built)) for (const v of values) used.add(`${prefix}.${v}\t(built)`);
for (const entry of used) {
  const [k, file] = entry.split("\t");
  if (!base.has(k)) problems.push(`"${k}" (${file}) has no string`);
}

if (problems.length) {
  console.error(`i18n test: FAILED:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.error(`i18n test: ok (${base.size} keys in ${LANGS.join(", ")}; ${used.size} used)`);
