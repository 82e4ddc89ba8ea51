// A headless Chromium (playwright-core) the Rust end-to-end tests drive to exercise the website
// chat widget (widget.js) in a real browser.
// Usage: node widget-browser.mjs <outDir>
// Environment: CHROMIUM (default /usr/bin/chromium).
//
// Protocol: one JSON command a line on stdin, exactly one JSON line answered on stdout for each,
// in order: {"id":<id>,"ok":true,...result} or {"id":<id>,"ok":false,"error":"<message>"}.
// Nothing else is ever written to stdout (diagnostics go to stderr). Every command takes an
// optional "timeoutMs" (default 15000). It exits on {"cmd":"quit"}, when stdin closes (after
// answering the commands already read), or after 5 minutes.
//
// Commands ("cmd"):
//   goto {url} | reload      -> {ready, error, visitor, conversation, omniChat}
//   visit {url}              -> {status, title}   (any page: waits for the network to go idle)
//   waitSelector {selector}  -> {count}           (waits until it is visible)
//   open                     -> {open: true, alreadyOpen}
//   close                    -> {open: false, focus}   (focus: data-omnichat of the focused element)
//   prechat {name?, email?}  -> {}
//   send {text}              -> {status, messageId, clientId, message}
//   waitMessage {text?, from?, status?} -> {messageId, from, status, text, clientId, message}
//   waitTyping {visible}     -> {visible}
//   messages                 -> {messages: [{id, clientId, from, status, text, attachments}]}
//   badge                    -> {text, visible}
//   attach {path, send?}     -> {kind: "image"|"file", src|href, name, status, messageId, clientId}
//   waitImage {from?}        -> {src, naturalWidth, naturalHeight, messageId, from}
//   screenshot {path}        -> {path}   (absolute; relative paths are under outDir)
//   viewport {width, height} -> {}
//   eval {expr}              -> {value}
//   events                   -> {events: window.__omnichatEvents}
//   diagnostics {clear?}     -> {console, pageErrors, csp, cspPage, failedRequests, httpErrors, requests}
//   quit                     -> {}
import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { serve } from "./driver.mjs";

const outDir = path.resolve(process.argv[2] || ".");
mkdirSync(outDir, { recursive: true });
const DEFAULT_TIMEOUT = 15000;
const LIFETIME = 5 * 60 * 1000;
const POLL_MS = 50;
// Message statuses that mean "not stored yet".
const PENDING = ["sending", "uploading"];

const log = (...args) => process.stderr.write(`widget-browser: ${args.join(" ")}\n`);
const answer = (line) => process.stdout.write(JSON.stringify(line) + "\n");

// Collected from the start, across navigations.
const diag = { console: [], pageErrors: [], csp: [], failedRequests: [], httpErrors: [], requests: [] };

// Runs in every document before its own scripts (not subject to the page's CSP).
const INIT_SCRIPT = `(() => {
  window.__cspViolations = [];
  window.__omnichatEvents = [];
  window.__omnichatReady = null;
  window.__omnichatReadyFired = false;
  document.addEventListener("securitypolicyviolation", (e) => {
    const v = {
      violatedDirective: e.violatedDirective,
      effectiveDirective: e.effectiveDirective,
      blockedURI: e.blockedURI,
      sourceFile: e.sourceFile,
      lineNumber: e.lineNumber,
      sample: e.sample,
      documentURI: e.documentURI,
    };
    window.__cspViolations.push(v);
    try { if (typeof window.__omnichatReportCsp === "function") window.__omnichatReportCsp(v); } catch (_) {}
  }, true);
  for (const type of ["ready", "message", "open", "close"]) {
    window.addEventListener("omnichat:" + type, (e) => {
      if (type === "ready") { window.__omnichatReady = e.detail; window.__omnichatReadyFired = true; }
      window.__omnichatEvents.push({ type, detail: e.detail });
    });
  }
})();`;

// Everything the driver reads from the page, in one function (it is serialised into the page, so
// it must not use anything from this module). Returns {done, value, state}.
function probe(q) {
  const PENDING = q.pending || [];
  const deepAll = (sel) => {
    const out = [];
    const visit = (root) => {
      for (const el of root.querySelectorAll("*")) {
        if (el.matches(sel)) out.push(el);
        if (el.shadowRoot) visit(el.shadowRoot);
      }
    };
    visit(document);
    return out;
  };
  const deepOne = (sel) => deepAll(sel)[0] || null;
  const shown = (el) => {
    if (!el || !el.isConnected || el.hidden) return false;
    if (typeof el.checkVisibility === "function") {
      if (!el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) return false;
    }
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  };
  const attachmentsOf = (m) => {
    const list = [];
    for (const el of m.querySelectorAll("[data-omnichat=attachment-image], [data-omnichat=attachment-file]")) {
      if (el.getAttribute("data-omnichat") === "attachment-image") {
        const img = el.tagName === "IMG" ? el : el.querySelector("img");
        list.push({
          kind: "image",
          src: img ? img.currentSrc || img.src : el.getAttribute("src"),
          loaded: !!(img && img.complete && img.naturalWidth > 0),
          naturalWidth: img ? img.naturalWidth : 0,
          naturalHeight: img ? img.naturalHeight : 0,
        });
      } else {
        const a = el.tagName === "A" ? el : el.querySelector("a");
        list.push({ kind: "file", href: a ? a.href : el.getAttribute("href"), name: (el.textContent || "").trim() });
      }
    }
    return list;
  };
  const info = (m) => {
    const t = m.querySelector("[data-omnichat=message-text]");
    return {
      id: m.getAttribute("data-id"),
      clientId: m.getAttribute("data-client-id"),
      from: m.getAttribute("data-from"),
      status: m.getAttribute("data-status"),
      text: t ? t.textContent : null,
      attachments: attachmentsOf(m),
    };
  };
  const keyOf = (m) => m.getAttribute("data-client-id") || m.getAttribute("data-id") || "";
  const messages = () => deepAll("[data-omnichat=message]");
  const summary = () =>
    messages().map((m) => {
      const i = info(m);
      return { id: i.id, clientId: i.clientId, from: i.from, status: i.status, text: i.text && i.text.slice(0, 80), attachments: i.attachments.length };
    });
  const isPending = (m) => PENDING.includes(m.getAttribute("data-status"));

  switch (q.kind) {
    case "ready": {
      const om = window.OmniChat;
      const error = om && om.error ? om.error : null;
      const detail = window.__omnichatReady;
      const ready = !!window.__omnichatReadyFired;
      return {
        done: !!om && (ready || !!error),
        value: {
          ready,
          error,
          visitor: detail && detail.visitor ? detail.visitor : null,
          conversation: detail && detail.conversation ? detail.conversation : null,
          omniChat: !!om,
        },
        state: { omniChat: !!om, readyFired: ready, readyState: document.readyState, url: location.href },
      };
    }
    case "windowOpen": {
      const w = deepOne("[data-omnichat=window]");
      const open = w ? w.getAttribute("data-open") : null;
      return { done: open === q.want, value: { open: open === "true" }, state: { window: !!w, dataOpen: open } };
    }
    case "focusForEscape": {
      const host = document.querySelector("[data-omnichat=root]");
      const sr = host && host.shadowRoot;
      if (!sr) return { done: true, value: { focused: null } };
      const current = sr.activeElement;
      if (current) return { done: true, value: { focused: current.getAttribute("data-omnichat") } };
      const candidates = ["[data-omnichat=input]", "[data-omnichat=prechat-name]", "[data-omnichat=prechat-email]", "[data-omnichat=close]"]
        .map((s) => sr.querySelector(s))
        .concat(Array.from(sr.querySelectorAll("[data-omnichat=window] button, [data-omnichat=window] textarea, [data-omnichat=window] input")));
      for (const el of candidates) {
        if (!el || !shown(el)) continue;
        el.focus();
        if (sr.activeElement === el) return { done: true, value: { focused: el.getAttribute("data-omnichat") } };
      }
      return { done: true, value: { focused: null } };
    }
    case "focus": {
      const host = document.querySelector("[data-omnichat=root]");
      const sr = host && host.shadowRoot;
      const el = sr && sr.activeElement;
      return { done: true, value: { focus: el ? el.getAttribute("data-omnichat") || el.tagName.toLowerCase() : null } };
    }
    case "keys":
      return { done: true, value: messages().filter((m) => !q.from || m.getAttribute("data-from") === q.from).map(keyOf) };
    case "findMessage": {
      const exclude = new Set(q.exclude || []);
      const found = messages().filter((m) => {
        if (q.from && m.getAttribute("data-from") !== q.from) return false;
        if (exclude.size && exclude.has(keyOf(m))) return false;
        if (q.text) {
          const t = m.querySelector("[data-omnichat=message-text]");
          if (!t || !t.textContent.includes(q.text)) return false;
        }
        if (q.status && m.getAttribute("data-status") !== q.status) return false;
        return true;
      });
      const last = found[found.length - 1];
      const ok = !!last && (!q.notPending || !isPending(last));
      return { done: ok, value: ok ? info(last) : null, state: { matching: found.length, messages: summary() } };
    }
    case "attachment": {
      const exclude = new Set(q.exclude || []);
      const found = messages().filter(
        (m) =>
          m.getAttribute("data-from") === "visitor" &&
          !exclude.has(keyOf(m)) &&
          m.querySelector("[data-omnichat=attachment-image], [data-omnichat=attachment-file]"),
      );
      const last = found[found.length - 1];
      const ok = !!last && !isPending(last);
      return { done: ok, value: ok ? info(last) : null, state: { messages: summary() } };
    }
    case "image": {
      const found = [];
      for (const m of messages()) {
        if (q.from && m.getAttribute("data-from") !== q.from) continue;
        for (const a of attachmentsOf(m)) {
          if (a.kind === "image" && a.loaded) found.push({ src: a.src, naturalWidth: a.naturalWidth, naturalHeight: a.naturalHeight, messageId: m.getAttribute("data-id"), from: m.getAttribute("data-from") });
        }
      }
      const last = found[found.length - 1];
      return {
        done: !!last,
        value: last || null,
        state: { images: deepAll("[data-omnichat=attachment-image]").length, messages: summary() },
      };
    }
    case "typing": {
      const els = deepAll("[data-omnichat=typing]");
      const vis = els.map((el) => el.getAttribute("data-visible"));
      const done = q.visible ? vis.includes("true") : !vis.includes("true");
      return { done, value: { visible: !!q.visible }, state: { typing: vis } };
    }
    case "messages":
      return { done: true, value: messages().map(info) };
    case "badge": {
      const el = deepOne("[data-omnichat=badge]");
      return { done: true, value: { text: el ? (el.textContent || "").trim() : null, visible: shown(el) } };
    }
    case "events":
      return { done: true, value: window.__omnichatEvents || [] };
    case "csp":
      return { done: true, value: window.__cspViolations || [] };
    default:
      throw new Error("unknown probe " + q.kind);
  }
}

let browser, context, page;
const starting = (async () => {
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  browser = await chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.exposeBinding("__omnichatReportCsp", (_source, v) => {
    diag.csp.push(v);
  });
  await context.addInitScript({ content: INIT_SCRIPT });
  page = await context.newPage();
  page.on("console", (m) => diag.console.push({ type: m.type(), text: m.text() }));
  page.on("request", (r) => diag.requests.push(r.url()));
  page.on("pageerror", (e) => diag.pageErrors.push(e && e.stack ? String(e.stack) : String(e)));
  page.on("requestfailed", (r) => diag.failedRequests.push({ url: r.url(), method: r.method(), failure: r.failure() && r.failure().errorText }));
  page.on("response", (r) => {
    if (r.status() >= 400) diag.httpErrors.push({ url: r.url(), status: r.status() });
  });
  page.on("crash", () => diag.pageErrors.push("page crashed"));
  log("chromium", browser.version(), "ready");
})();
starting.catch((err) => log("launch failed:", err && err.stack));

class Deadline {
  constructor(ms) {
    this.ms = ms;
    this.end = Date.now() + ms;
  }
  left() {
    return Math.max(1, this.end - Date.now());
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Evaluates the probe until it is done or the deadline passes. Navigation in between (a destroyed
// execution context) is retried.
async function poll(q, deadline, what) {
  let last;
  let lastError;
  for (;;) {
    try {
      last = await page.evaluate(probe, { pending: PENDING, ...q });
      lastError = undefined;
      if (last.done) return last.value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline.end) {
      const state = last ? JSON.stringify(last.state ?? last.value) : "none";
      const extra = lastError ? `; last error: ${lastError.message.split("\n")[0]}` : "";
      throw new Error(`timed out after ${deadline.ms} ms waiting for ${what}; state: ${state}${extra}`);
    }
    await sleep(Math.min(POLL_MS, deadline.left()));
  }
}

async function once(q) {
  return (await page.evaluate(probe, { pending: PENDING, ...q })).value;
}

const loc = (name) => page.locator(`[data-omnichat=${name}]`).first();

// After a navigation: wait for window.OmniChat and the ready event (or OmniChat.error).
async function waitReady(deadline) {
  try {
    return await poll({ kind: "ready" }, deadline, "the widget");
  } catch (err) {
    if (!/^timed out/.test(err.message)) throw err;
    let v;
    try {
      v = await once({ kind: "ready" });
    } catch (_) {
      v = { ready: false, error: null, visitor: null, conversation: null, omniChat: false };
    }
    return v;
  }
}

function resolveOut(p) {
  return path.isAbsolute(p) ? p : path.join(outDir, p);
}

function need(cmd, field, type) {
  if (typeof cmd[field] !== type) throw new Error(`"${field}" (${type}) is required`);
  return cmd[field];
}

const handlers = {
  async goto(cmd, d) {
    const url = need(cmd, "url", "string");
    await page.goto(url, { waitUntil: "domcontentloaded", timeout: d.left() });
    return waitReady(d);
  },
  async visit(cmd, d) {
    const response = await page.goto(need(cmd, "url", "string"), { waitUntil: "networkidle", timeout: d.left() });
    return { status: response ? response.status() : null, title: await page.title() };
  },
  async waitSelector(cmd, d) {
    const selector = need(cmd, "selector", "string");
    await page.locator(selector).first().waitFor({ state: "visible", timeout: d.left() });
    return { count: await page.locator(selector).count() };
  },
  async reload(cmd, d) {
    await page.reload({ waitUntil: "domcontentloaded", timeout: d.left() });
    return waitReady(d);
  },
  async open(cmd, d) {
    const state = await once({ kind: "windowOpen", want: "true" });
    if (state.open) return { open: true, alreadyOpen: true };
    await loc("bubble").click({ timeout: d.left() });
    await poll({ kind: "windowOpen", want: "true" }, d, "[data-omnichat=window][data-open=true]");
    await page.locator("[data-omnichat=window][data-open=true]").first().waitFor({ state: "visible", timeout: d.left() });
    return { open: true, alreadyOpen: false };
  },
  async close(cmd, d) {
    await once({ kind: "focusForEscape" });
    await page.keyboard.press("Escape");
    await poll({ kind: "windowOpen", want: "false" }, d, "[data-omnichat=window][data-open=false]");
    const { focus } = await once({ kind: "focus" });
    return { open: false, focus };
  },
  async prechat(cmd, d) {
    if (cmd.name != null) await loc("prechat-name").fill(String(cmd.name), { timeout: d.left() });
    if (cmd.email != null) await loc("prechat-email").fill(String(cmd.email), { timeout: d.left() });
    await loc("prechat-submit").click({ timeout: d.left() });
    await loc("input").waitFor({ state: "visible", timeout: d.left() });
    return {};
  },
  async send(cmd, d) {
    const text = need(cmd, "text", "string");
    const before = await once({ kind: "keys", from: "visitor" });
    const input = loc("input");
    await input.fill(text, { timeout: d.left() });
    await input.press("Enter", { timeout: d.left() });
    const m = await poll(
      { kind: "findMessage", from: "visitor", text, exclude: before, notPending: true },
      d,
      `a new visitor message containing ${JSON.stringify(text)} that is not ${PENDING.join("/")}`,
    );
    return { status: m.status, messageId: m.id, clientId: m.clientId, message: m };
  },
  async waitMessage(cmd, d) {
    const text = cmd.text == null ? "" : String(cmd.text);
    const m = await poll(
      { kind: "findMessage", from: cmd.from || null, text, status: cmd.status || null },
      d,
      `${cmd.from ? "a " + cmd.from : "any"} message containing ${JSON.stringify(text)}${cmd.status ? " with status " + cmd.status : ""}`,
    );
    return { messageId: m.id, from: m.from, status: m.status, text: m.text, clientId: m.clientId, message: m };
  },
  async waitTyping(cmd, d) {
    const visible = cmd.visible !== false;
    return poll({ kind: "typing", visible }, d, `[data-omnichat=typing][data-visible=${visible}]`);
  },
  async messages() {
    return { messages: await once({ kind: "messages" }) };
  },
  async badge() {
    return once({ kind: "badge" });
  },
  async attach(cmd, d) {
    const file = resolveOut(need(cmd, "path", "string"));
    const before = await once({ kind: "keys", from: "visitor" });
    await loc("file-input").setInputFiles(file, { timeout: d.left() });
    if (cmd.send) await loc("send").click({ timeout: d.left() });
    const m = await poll({ kind: "attachment", exclude: before }, d, "a new visitor message with an attachment that is stored");
    const a = m.attachments[m.attachments.length - 1];
    const result = { kind: a.kind, status: m.status, messageId: m.id, clientId: m.clientId };
    if (a.kind === "image") result.src = a.src;
    else Object.assign(result, { href: a.href, name: a.name });
    return result;
  },
  async waitImage(cmd, d) {
    return poll({ kind: "image", from: cmd.from || null }, d, `a loaded attachment-image${cmd.from ? " from " + cmd.from : ""}`);
  },
  async screenshot(cmd, d) {
    const file = resolveOut(need(cmd, "path", "string"));
    mkdirSync(path.dirname(file), { recursive: true });
    await page.screenshot({ path: file, fullPage: true, timeout: d.left() });
    return { path: file };
  },
  async viewport(cmd) {
    await page.setViewportSize({ width: need(cmd, "width", "number"), height: need(cmd, "height", "number") });
    return {};
  },
  async eval(cmd) {
    const value = await page.evaluate(need(cmd, "expr", "string"));
    return { value: value === undefined ? null : value };
  },
  async events() {
    return { events: await once({ kind: "events" }) };
  },
  async diagnostics(cmd) {
    let cspPage = [];
    try {
      cspPage = await once({ kind: "csp" });
    } catch (err) {
      log("diagnostics: no CSP list from the page:", err.message);
    }
    const result = {
      console: diag.console.slice(),
      pageErrors: diag.pageErrors.slice(),
      csp: diag.csp.slice(),
      cspPage,
      failedRequests: diag.failedRequests.slice(),
      httpErrors: diag.httpErrors.slice(),
      requests: diag.requests.slice(),
    };
    if (cmd.clear) for (const k of Object.keys(diag)) diag[k].length = 0;
    return result;
  },
};

serve({
  name: "widget-browser",
  handlers,
  starting,
  browser: () => browser,
  deadline: (timeout) => new Deadline(timeout),
  defaultTimeout: DEFAULT_TIMEOUT,
  lifetime: LIFETIME,
});
