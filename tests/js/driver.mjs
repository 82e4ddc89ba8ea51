// The line protocol both browser drivers (widget-browser.mjs, console-browser.mjs) speak with
// the Rust tests: one JSON command a line on stdin, exactly one JSON line answered on stdout for
// each, in order: {"id", "ok": true, ...result} or {"id", "ok": false, "error"}. `quit`, stdin
// closing and the lifetime end the process (closing the browser first).
import { createInterface } from "node:readline";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Serves `handlers` (`{name: async (cmd, deadline) => result}`) once `starting` (the browser's
 * launch) settled. `deadline(timeoutMs)` makes what a handler gets as its second argument;
 * `browser()` returns the browser to close on exit.
 */
export function serve({ name, handlers, starting, browser, deadline, defaultTimeout = 15000, lifetime }) {
  const log = (...args) => process.stderr.write(`${name}: ${args.join(" ")}\n`);
  const answer = (line) => process.stdout.write(JSON.stringify(line) + "\n");

  let quitting = false;
  async function shutdown(code) {
    if (quitting) return;
    quitting = true;
    try {
      const open = browser();
      if (open) await Promise.race([open.close(), sleep(5000)]);
    } catch (err) {
      log("close:", err.message);
    }
    process.exit(code);
  }

  async function run(line) {
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (err) {
      answer({ id: null, ok: false, error: `not JSON: ${err.message}` });
      return;
    }
    if (!cmd || typeof cmd !== "object") {
      answer({ id: null, ok: false, error: "a command is a JSON object" });
      return;
    }
    const id = cmd.id === undefined ? null : cmd.id;
    if (cmd.cmd === "quit") {
      answer({ id, ok: true });
      await shutdown(0);
      return;
    }
    const timeout = typeof cmd.timeoutMs === "number" && cmd.timeoutMs > 0 ? cmd.timeoutMs : defaultTimeout;
    let timer;
    try {
      const handler = Object.prototype.hasOwnProperty.call(handlers, cmd.cmd) ? handlers[cmd.cmd] : null;
      if (!handler) throw new Error(`unknown command ${JSON.stringify(cmd.cmd)}`);
      await Promise.race([starting, sleep(60000).then(() => Promise.reject(new Error("chromium did not start")))]).catch((err) => {
        throw new Error(`browser launch failed: ${err.message}`);
      });
      // A hard stop a little after the deadline, whatever the handler is waiting on.
      const hard = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${cmd.cmd}: no result within ${timeout} ms`)), timeout + 2000);
      });
      const result = await Promise.race([handler(cmd, deadline(timeout)), hard]);
      answer(Object.assign({}, result, { id, ok: true }));
    } catch (err) {
      // Playwright's messages carry a call log with terminal colours: keep the text only.
      const message = (err && err.message ? err.message : String(err)).replace(/\u001b\[[0-9;]*m/g, "").trim();
      log(`${cmd.cmd} failed:`, message);
      answer({ id, ok: false, error: message });
    } finally {
      clearTimeout(timer);
    }
  }

  process.on("unhandledRejection", (err) => log("unhandled rejection:", err && err.stack ? err.stack : err));
  process.on("uncaughtException", (err) => log("uncaught exception:", err && err.stack ? err.stack : err));
  process.stdout.on("error", () => shutdown(0));

  // Commands run one at a time, in order.
  let queue = Promise.resolve();
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on("line", (line) => {
    if (!line.trim()) return;
    queue = queue.then(() => (quitting ? undefined : run(line)));
  });
  lines.on("close", () => {
    queue.then(() => shutdown(0));
  });
  setTimeout(() => {
    log(`lifetime of ${lifetime / 60000} minutes reached, exiting`);
    shutdown(0);
  }, lifetime).unref();
  return { log };
}
