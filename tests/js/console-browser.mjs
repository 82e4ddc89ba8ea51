// A headless Chromium (playwright-core) the Rust end-to-end tests drive to use the web console
// the way a person does: by labels, roles and visible text.
// Usage: node console-browser.mjs <outDir>
// Environment: CHROMIUM (default /usr/bin/chromium).
//
// Protocol: one JSON command a line on stdin, exactly one JSON line answered on stdout for each,
// in order: {"id":<id>,"ok":true,...result} or {"id":<id>,"ok":false,"error":"<message>"}.
// Diagnostics go to stderr. Every command takes an optional "timeoutMs" (default 15000). It exits
// on {"cmd":"quit"}, when stdin closes, or after 10 minutes.
//
// A target (the "locator" of a command) is one of:
//   {label}                 the form control with that accessible label
//   {role, name?, exact?}   an element by ARIA role and accessible name (e.g. button "Send")
//   {text, exact?}          an element by its visible text
//   {css}                   a CSS selector
// with an optional "within": {css} scoping it, "hasText" keeping the matches that contain a text,
// and "nth" (default: the only match; "last": the last one).
//
// Commands ("cmd"):
//   goto {url}                          -> {status, timing: {domInteractive, domContentLoaded, load, firstContentfulPaint}}
//   click {target} | fill {target, value} | check {target, checked} | selectOption {target, value | option (its label)}
//   press {target, key}                 -> {}
//   waitVisible {target} | waitHidden {target} -> {text}
//   waitText {target, text}             -> {text}        (waits until the target's text contains it)
//   waitAttr {target, name, value?, changedFrom?} -> {value}
//   text {target} | count {target} | attr {target, name} | value {target} -> {text|count|value}
//   eval {expr}                         -> {value}
//   screenshot {path, fullPage?}        -> {path}        (relative paths are under outDir)
//   viewport {width, height}            -> {}
//   newSession                          -> {}            (a fresh context: no storage, a new page)
//   measure {url, ready, session?}    -> {readyMs, domInteractive, firstContentfulPaint, bytes, requests}
//   focusOrder {count}                  -> {order: [accessible names of the focused elements after each Tab]}
//   diagnostics {clear?}                -> {console, pageErrors, csp, failedRequests, httpErrors}
//   quit                                -> {}
import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { serve } from "./driver.mjs";

const outDir = path.resolve(process.argv[2] || ".");
mkdirSync(outDir, { recursive: true });
const DEFAULT_TIMEOUT = 15000;
const LIFETIME = 10 * 60 * 1000;

const log = (...args) => process.stderr.write(`console-browser: ${args.join(" ")}\n`);
const answer = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const diag = { console: [], pageErrors: [], csp: [], failedRequests: [], httpErrors: [] };

const INIT_SCRIPT = `document.addEventListener("securitypolicyviolation", (e) => {
  try { window.__reportCsp({ directive: e.effectiveDirective, blockedURI: e.blockedURI, source: e.sourceFile, line: e.lineNumber }); } catch (_) {}
}, true);`;

let browser, context, page;
const VIEWPORT = { width: 1280, height: 800 };

async function newSession() {
  if (context) await context.close().catch(() => {});
  context = await browser.newContext({ viewport: VIEWPORT });
  await context.exposeBinding("__reportCsp", (_source, v) => diag.csp.push(v));
  await context.addInitScript({ content: INIT_SCRIPT });
  page = await context.newPage();
  page.on("console", (m) => diag.console.push({ type: m.type(), text: m.text() }));
  page.on("pageerror", (e) => diag.pageErrors.push(e && e.stack ? String(e.stack) : String(e)));
  page.on("requestfailed", (r) => {
    // Navigations away abort the page's open requests (the socket's long poll, an image): not failures.
    const failure = r.failure() && r.failure().errorText;
    if (failure !== "net::ERR_ABORTED") diag.failedRequests.push({ url: r.url(), method: r.method(), failure });
  });
  page.on("response", (r) => {
    if (r.status() >= 400) diag.httpErrors.push({ url: r.url(), status: r.status() });
  });
}

const starting = (async () => {
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
  await newSession();
  log("chromium", browser.version(), "ready");
})();
starting.catch((err) => log("launch failed:", err && err.stack));

function locate(cmd) {
  let root = page;
  if (cmd.within) root = page.locator(cmd.within.css);
  let loc;
  if (cmd.label !== undefined) loc = root.getByLabel(cmd.label, { exact: cmd.exact ?? true });
  else if (cmd.role !== undefined) loc = root.getByRole(cmd.role, cmd.name !== undefined ? { name: cmd.name, exact: cmd.exact ?? false } : {});
  else if (cmd.text !== undefined && cmd.cmd !== "waitText") loc = root.getByText(cmd.text, { exact: cmd.exact ?? false });
  else if (cmd.css !== undefined) loc = root.locator(cmd.css);
  else throw new Error("no target: give label, role, text or css");
  if (cmd.hasText !== undefined) loc = loc.filter({ hasText: cmd.hasText });
  if (cmd.nth === "last") return loc.last();
  if (typeof cmd.nth === "number") return loc.nth(cmd.nth);
  return loc;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(fn, timeout, what) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last.done) return last.value;
    } catch (err) {
      last = { error: err.message };
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${timeout} ms (last: ${JSON.stringify(last)})`);
    await sleep(50);
  }
}

const handlers = {
  async goto(cmd, timeout) {
    const response = await page.goto(cmd.url, { timeout, waitUntil: "load" });
    const timing = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      const fcp = performance.getEntriesByName("first-contentful-paint")[0];
      return nav ? { domInteractive: nav.domInteractive, domContentLoaded: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, firstContentfulPaint: fcp ? fcp.startTime : null } : null;
    });
    return { status: response ? response.status() : null, timing };
  },
  async click(cmd, timeout) {
    await locate(cmd).click({ timeout });
    return {};
  },
  async fill(cmd, timeout) {
    await locate(cmd).fill(String(cmd.value), { timeout });
    return {};
  },
  async check(cmd, timeout) {
    await locate(cmd).setChecked(cmd.checked !== false, { timeout });
    return {};
  },
  async selectOption(cmd, timeout) {
    const option = cmd.value !== undefined ? { value: cmd.value } : { label: cmd.option };
    await locate(cmd).selectOption(option, { timeout });
    return {};
  },
  async press(cmd, timeout) {
    await locate(cmd).press(cmd.key, { timeout });
    return {};
  },
  async waitVisible(cmd, timeout) {
    const loc = locate(cmd);
    await loc.first().waitFor({ state: "visible", timeout });
    return { text: (await loc.first().innerText()).trim() };
  },
  async waitHidden(cmd, timeout) {
    await locate(cmd).first().waitFor({ state: "hidden", timeout });
    return {};
  },
  async waitText(cmd, timeout) {
    const loc = locate(cmd);
    const text = await until(async () => {
      const t = (await loc.innerText({ timeout: 500 })).trim();
      return { done: t.includes(cmd.text), value: t, text: t };
    }, timeout, `text ${JSON.stringify(cmd.text)}`);
    return { text };
  },
  async waitAttr(cmd, timeout) {
    const loc = locate(cmd);
    const value = await until(async () => {
      const v = await loc.getAttribute(cmd.name, { timeout: 500 });
      const done = v !== null && (cmd.value === undefined || v === cmd.value) && (cmd.changedFrom === undefined || v !== cmd.changedFrom);
      return { done, value: v };
    }, timeout, `attribute ${cmd.name}`);
    return { value };
  },
  async text(cmd, timeout) {
    return { text: (await locate(cmd).innerText({ timeout })).trim() };
  },
  async value(cmd, timeout) {
    return { value: await locate(cmd).inputValue({ timeout }) };
  },
  async count(cmd) {
    return { count: await locate(cmd).count() };
  },
  async attr(cmd, timeout) {
    return { value: await locate(cmd).getAttribute(cmd.name, { timeout }) };
  },
  async eval(cmd) {
    return { value: await page.evaluate(cmd.expr) };
  },
  async screenshot(cmd) {
    const file = path.resolve(outDir, cmd.path || "screenshot.png");
    mkdirSync(path.dirname(file), { recursive: true });
    await page.screenshot({ path: file, fullPage: Boolean(cmd.fullPage) });
    return { path: file };
  },
  async viewport(cmd) {
    await page.setViewportSize({ width: cmd.width, height: cmd.height });
    return {};
  },
  async newSession() {
    await newSession();
    return {};
  },
  async focusOrder(cmd) {
    const order = [];
    for (let i = 0; i < (cmd.count || 10); i++) {
      await page.keyboard.press("Tab");
      order.push(
        await page.evaluate(() => {
          const el = document.activeElement;
          if (!el || el === document.body) return "";
          const label = el.labels && el.labels[0] ? el.labels[0].innerText : "";
          return (el.getAttribute("aria-label") || label || el.innerText || el.value || el.tagName).trim();
        }),
      );
    }
    return { order };
  },
  // A cold load in a fresh context (nothing cached), `session` put in localStorage first: the time
  // from navigation start until `ready` (a selector) holds the focus, which the console gives a
  // page's heading once the page is drawn with its data.
  async measure(cmd, timeout) {
    await newSession();
    if (cmd.session) {
      const value = JSON.stringify(JSON.stringify(cmd.session));
      await context.addInitScript({ content: `localStorage.setItem("omnichat.session", ${value});` });
    }
    let bytes = 0;
    let requests = 0;
    page.on("requestfinished", async (r) => {
      try {
        const sizes = await r.sizes();
        bytes += sizes.responseBodySize + sizes.responseHeadersSize;
        requests += 1;
      } catch (_) {}
    });
    await page.goto(cmd.url, { waitUntil: "commit", timeout });
    const handle = await page.waitForFunction(
      (selector) => {
        const el = document.querySelector(selector);
        return el && document.activeElement === el ? performance.now() : false;
      },
      cmd.ready,
      { polling: "raf", timeout },
    );
    const readyMs = await handle.jsonValue();
    const paint = await page.evaluate(() => {
      const nav = performance.getEntriesByType("navigation")[0];
      const fcp = performance.getEntriesByName("first-contentful-paint")[0];
      return { domInteractive: nav ? nav.domInteractive : null, firstContentfulPaint: fcp ? fcp.startTime : null };
    });
    await sleep(300);
    return { readyMs, ...paint, bytes, requests };
  },
  async diagnostics(cmd) {
    const result = JSON.parse(JSON.stringify(diag));
    if (cmd.clear) for (const k of Object.keys(diag)) diag[k].length = 0;
    return result;
  },
};

serve({
  name: "console-browser",
  handlers,
  starting,
  browser: () => browser,
  deadline: (timeout) => timeout,
  defaultTimeout: DEFAULT_TIMEOUT,
  lifetime: LIFETIME,
});
