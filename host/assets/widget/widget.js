/* OmniChat website widget, served as /widget.js inside one function with the socket.io-client
   bundle: `io` is a local, the only global is window.OmniChat. Plain ES2019, no build step. Message
   text only ever becomes text nodes and checked http(s) links: nothing is parsed as HTML. */
(() => {
  "use strict";
  const script = document.currentScript || document.querySelector('script[data-channel][src*="widget.js"]');
  if (!script || (window.OmniChat && window.OmniChat.on)) return; // no tag, or loaded twice
  const CHANNEL = script.getAttribute("data-channel");
  if (!CHANNEL) return console.warn("OmniChat: the script tag needs data-channel");

  const HOST = new URL(script.src, location.href).origin;
  const API = `${HOST}/api/widget/${encodeURIComponent(CHANNEL)}`;
  const KEY = `omnichat:${CHANNEL}:`;
  const MAX_UPLOAD = 10 * 1024 * 1024;
  const ACCEPT = "image/*,video/*,audio/*,text/*,application/pdf,application/zip,.zip,.doc,.docx,.xls,.xlsx,.ppt,.pptx,.odt,.ods,.odp";
  const REL = "noopener noreferrer nofollow";
  const ICONS = {
    chat: "M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2z",
    close: "M19 6.41 17.59 5 12 10.59 6.41 5 5 6.41 10.59 12 5 17.59 6.41 19 12 13.41 17.59 19 19 17.59 13.41 12z",
    send: "M2.01 21 23 12 2.01 3 2 10l15 2-15 2z",
    attach:
      "M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z",
    clock:
      "M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 18a8 8 0 1 1 0-16 8 8 0 0 1 0 16zm.5-13H11v6l5.25 3.15.75-1.23-4.5-2.67z",
  };
  const CSS = `
:host{all:initial!important;--a:#1f6feb;--on:#fff}
*{box-sizing:border-box}
[hidden]{display:none!important}
.oc{--bg:#fff;--fg:#1f2328;--mut:#59636e;--ag:#eef1f4;--bd:#d1d9e0;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg)}
@media (prefers-color-scheme:dark){.oc{--bg:#181b20;--fg:#e6e9ec;--mut:#9aa4ae;--ag:#272c33;--bd:#3a414a}}
button{font:inherit;color:inherit;background:none;border:0;padding:0;cursor:pointer}
button:disabled{cursor:default;opacity:.6}
:focus-visible{outline:3px solid var(--a);outline-offset:2px}
header :focus-visible,.bubble:focus-visible,.visitor :focus-visible{outline-color:var(--fg)}
.bubble{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:56px;height:56px;border-radius:50%;background:var(--a);color:var(--on);box-shadow:0 4px 14px rgba(0,0,0,.25);display:grid;place-items:center;transition:transform .15s}
.bubble:hover{transform:scale(1.06)}
.bubble svg{width:28px;height:28px}
.bubble .close,.bubble[aria-expanded=true] .chat{display:none}
.bubble[aria-expanded=true] .close{display:block}
.badge{position:absolute;top:-3px;right:-3px;min-width:20px;height:20px;padding:0 6px;border-radius:10px;background:#cf222e;color:#fff;font-size:12px;font-weight:700;line-height:20px;text-align:center}
.win{position:fixed;right:20px;bottom:88px;z-index:2147483000;width:380px;height:min(640px,calc(100vh - 108px));display:flex;flex-direction:column;background:var(--bg);border-radius:14px;box-shadow:0 8px 32px rgba(0,0,0,.25);overflow:hidden}
header{display:flex;align-items:center;gap:8px;padding:12px 10px 12px 18px;background:var(--a);color:var(--on)}
h2{flex:1;margin:0;font-size:17px;font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.icon{flex:none;width:38px;height:38px;border-radius:8px;display:grid;place-items:center}
.icon:hover{background:rgba(127,127,127,.18)}
.icon svg{width:20px;height:20px}
.offline{padding:8px 18px;background:#fff8c5;color:#4d2d00;font-size:13px}
.log{flex:1;overflow-y:auto;overscroll-behavior:contain;padding:16px 12px;display:flex;flex-direction:column;gap:6px}
.msg{max-width:80%;padding:8px 12px;border-radius:16px;white-space:pre-wrap;overflow-wrap:anywhere}
.agent{align-self:flex-start;background:var(--ag);border-bottom-left-radius:4px}
.visitor{align-self:flex-end;background:var(--a);color:var(--on);border-bottom-right-radius:4px}
.visitor[data-status=failed]{background:#cf222e;color:#fff}
.msg a{color:inherit}
.msg img{display:block;max-width:100%;max-height:240px;border-radius:10px;margin:4px 0}
.file{display:flex;align-items:center;gap:4px;margin:4px 0;font-weight:500}
.file svg{flex:none;width:16px;height:16px}
.meta{display:flex;justify-content:flex-end;align-items:center;gap:4px;margin-top:2px;font-size:11px;opacity:.8}
.meta svg{width:12px;height:12px}
.retry{font-size:12px;text-decoration:underline}
.older{align-self:center;padding:4px 12px;border-radius:12px;font-size:13px;color:var(--mut)}
.older:hover{background:var(--ag)}
.typing{display:flex;gap:4px;padding:2px 18px 8px}
.typing i{width:7px;height:7px;border-radius:50%;background:var(--mut);animation:oc-dot 1.2s infinite}
.typing i:nth-child(2){animation-delay:.2s}
.typing i:nth-child(3){animation-delay:.4s}
@keyframes oc-dot{30%{opacity:1;transform:translateY(-3px)}0%,60%,100%{opacity:.35}}
.error{margin:0 12px 8px;padding:8px 12px;border-radius:8px;background:#ffebe9;color:#82071e;font-size:13px}
form{border-top:1px solid var(--bd)}
.composer{display:flex;align-items:flex-end;gap:2px;padding:8px 8px max(8px,env(safe-area-inset-bottom))}
textarea:focus-visible{outline-offset:0}
.log:focus-visible{outline-offset:-3px}
textarea{flex:1;min-width:0;max-height:120px;resize:none;margin:0;padding:8px 12px;border:1px solid var(--bd);border-radius:19px;background:var(--bg);color:inherit;font:inherit;font-size:16px}
.send{color:var(--a)}
.prechat{display:grid;gap:12px;padding:16px 18px max(16px,env(safe-area-inset-bottom))}
.prechat p{margin:0}
label{display:grid;gap:4px;font-size:13px;color:var(--mut)}
input{margin:0;padding:9px 10px;border:1px solid var(--bd);border-radius:8px;background:var(--bg);color:var(--fg);font:inherit;font-size:16px}
.primary{padding:10px;border-radius:8px;background:var(--a);color:var(--on);font-weight:600}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
@media (max-width:479px){.win{inset:0;width:auto;height:auto;border-radius:0}.win:not([hidden])+.bubble{display:none}}
@media print{:host{display:none!important}}
@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important}}`;

  // localStorage throws where storage is blocked; the token then lives in memory.
  const memory = {};
  function stored(name) {
    try {
      return localStorage.getItem(KEY + name);
    } catch {
      return name in memory ? memory[name] : null;
    }
  }
  function store(name, value) {
    try {
      if (value == null) localStorage.removeItem(KEY + name);
      else localStorage.setItem(KEY + name, value);
    } catch {
      if (value == null) delete memory[name];
      else memory[name] = value;
    }
  }

  let token = stored("token");
  let identity = null; // {identifier, identifierHash} from setUser on this page
  let profile = {}; // name and email from setUser
  let visitor = null, channel = null, conversation = null;
  let ready = false, disabled = false, isOpen = false, prechatDone = false;
  let unread = 0, needRead = false, nextCursor = null, olderLoaded = false;
  let entries = []; // shown messages, oldest first: {m, el, meta, content, file, uploadId, failed, uploading, dead}
  const byId = new Map(), byCid = new Map();
  let ui = null, socket = null, inflight = null;
  let renewTimer = 0, readTimer = 0, typingTimer = 0, idleTimer = 0, typingSentAt = 0;
  const listeners = {}, queue = [];
  const noop = () => {};
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // The API exists at once; open/close/toggle/reset wait for the first session.
  const whenReady = (fn) => (...args) => {
    if (disabled) return;
    if (ready) fn(...args);
    else queue.push(() => fn(...args));
  };
  const api = (window.OmniChat = {
    open: whenReady(() => openWin(pageIdle())),
    close: whenReady(() => closeWin()),
    toggle: whenReady(() => (isOpen ? closeWin() : openWin(pageIdle()))),
    reset: () => (disabled ? Promise.resolve() : reset()),
    setUser: (user) => (disabled ? Promise.resolve() : setUser(user || {})),
    on(name, fn) {
      (listeners[name] = listeners[name] || []).push(fn);
    },
    off(name, fn) {
      listeners[name] = (listeners[name] || []).filter((f) => f !== fn);
    },
    error: null,
  });

  // Focus moves into the widget only when the page is not using it (no field being typed in).
  const pageIdle = () => !document.activeElement || document.activeElement === document.body;

  function emit(name, detail) {
    detail = JSON.parse(JSON.stringify(detail)); // listeners get a copy, never the state
    for (const fn of (listeners[name] || []).slice()) {
      try {
        fn(detail);
      } catch (err) {
        console.error(err);
      }
    }
    window.dispatchEvent(new CustomEvent(`omnichat:${name}`, { detail }));
  }

  // ---- HTTP ----

  const fail = (status, code, message) => Object.assign(new Error(message), { status, code: code || "" });

  // A 429 waits Retry-After and retries, a 401 renews the session once, network failures and 5xx
  // back off and retry while `tries` lasts.
  function request(method, path, body, { tries = 1, alive } = {}) {
    const form = body instanceof FormData;
    let attempt = 0, limited = 0, renewed = false;
    const backoff = () => sleep(Math.min(30000, 1000 * 2 ** (attempt - 1)) * (0.75 + Math.random() / 2)).then(go);
    function go() {
      if (alive && !alive()) return Promise.reject(fail(-1, "cancelled", "cancelled"));
      attempt++;
      const headers = {};
      if (token && path !== "/sessions") headers.Authorization = `Bearer ${token}`;
      if (body && !form) headers["Content-Type"] = "application/json";
      const payload = body && !form ? JSON.stringify(body) : body || undefined;
      return fetch(API + path, { method, headers, body: payload, credentials: "omit" }).then(
        (res) => {
          if (res.ok) return res.status === 204 ? null : res.json();
          return res
            .json()
            .catch(() => ({}))
            .then((data) => {
              const err = (data && data.error) || {};
              if (res.status === 429 && tries > 1 && ++limited <= 5) {
                // Jittered, so widgets behind one address do not retry in lockstep.
                const wait = Math.min(60, Number(res.headers.get("Retry-After")) || 1) * 1000;
                return sleep(wait * (1 + Math.random() / 2)).then(go);
              }
              if (res.status === 401 && path !== "/sessions" && !renewed) {
                renewed = true;
                return renew().then(go);
              }
              if (res.status >= 500 && attempt < tries) return backoff();
              throw fail(res.status, err.code, err.message || `HTTP ${res.status}`);
            });
        },
        (err) => {
          if (attempt < tries) return backoff();
          throw fail(0, "network", err.message);
        }
      );
    }
    return go();
  }

  // ---- Sessions ----

  // Sessions run one at a time, in order; concurrent 401s share the one in flight.
  function session(run = () => openSession()) {
    const p = (inflight || Promise.resolve()).catch(noop).then(run);
    inflight = p;
    const done = () => {
      if (inflight === p) inflight = null;
    };
    p.then(done, done);
    return p;
  }
  const renew = () => inflight || session();

  // `switching`: to another identity, so the stored token is not resumed; `extra`: pre-chat answers.
  function openSession(switching = false, extra = {}) {
    // The page, not its query string (which may carry the site's own tokens or e-mail addresses).
    const body = { pageUrl: (location.origin + location.pathname).slice(0, 2048), ...profile, ...extra, ...identity };
    const call = (t) => request("POST", "/sessions", t ? { ...body, visitorToken: t } : body, { tries: Infinity });
    const had = switching ? null : token;
    let fresh = !had;
    return call(had)
      .catch((err) => {
        // A token the server no longer takes: go on as a new visitor (an identity error would fail again).
        if (err.status !== 401 || !had || /^identity_/.test(err.code)) throw err;
        fresh = true;
        return call(null);
      })
      .then(
        (r) => {
          if (identity) store("identifier", identity.identifier);
          else if (fresh) store("identifier", null);
          applySession(r);
        },
        (err) => {
          if (err.status === 403 || err.status === 404) disable(err);
          throw err;
        }
      );
  }

  function applySession(r) {
    const changed = !visitor || visitor.id !== r.visitor.id;
    token = r.visitorToken;
    store("token", token);
    visitor = r.visitor;
    channel = r.channel;
    conversation = r.conversation;
    scheduleRenewal(r.expiresAt);
    if (!ui) mount();
    if (changed) {
      clearMessages();
      olderLoaded = false;
      prechatDone = needRead = false;
    }
    if (!olderLoaded) nextCursor = r.nextCursor;
    paintChannel();
    for (const m of r.messages || []) upsert(m, !changed);
    paintOlder();
    if (!isOpen) setUnread(r.unreadCount || 0);
    needRead = needRead || r.unreadCount > 0;
    markRead();
    if (!ready) {
      ready = true;
      connect();
      emit("ready", { visitor, conversation });
      if (script.getAttribute("data-open") === "true") openWin(false);
      queue.splice(0).forEach((fn) => fn());
    } else if (changed && socket) {
      socket.disconnect().connect(); // into the new visitor's room
    }
  }

  // At 80 % of the token's lifetime (a 401 renews it too, say after the computer slept).
  function scheduleRenewal(expiresAt) {
    clearTimeout(renewTimer);
    const left = Date.parse(expiresAt) - Date.now();
    const again = () => (renewTimer = setTimeout(() => renew().catch(again), 30000 + Math.random() * 30000));
    if (left > 0) renewTimer = setTimeout(() => renew().catch(again), Math.min(Math.max(left * 0.8, 5000), 2147483647));
  }

  function setUser(user) {
    const id = user.identifier == null || user.identifier === "" ? null : String(user.identifier);
    return session(() => {
      const before = { identity, profile };
      // Someone else than the stored visitor: never resume their conversation (the current one
      // stays until the new identity is accepted).
      const switching = !!id && !!stored("identifier") && stored("identifier") !== id;
      if (id) identity = { identifier: id, identifierHash: user.identifierHash || undefined };
      profile = { ...profile };
      if (user.name != null) profile.name = String(user.name);
      if (user.email != null) profile.email = String(user.email);
      return openSession(switching).catch((err) => {
        identity = before.identity;
        profile = before.profile;
        console.warn(`OmniChat: setUser failed (${err.message})`);
      });
    });
  }

  function reset() {
    return session(() => {
      forget();
      identity = null;
      profile = {};
      return openSession();
    }).catch(noop);
  }

  function forget() {
    token = visitor = conversation = null;
    store("token", null);
    store("identifier", null);
    prechatDone = needRead = false;
    if (socket) socket.disconnect();
    clearMessages();
    setUnread(0);
    showTyping(false);
    if (ui) [ui.prechat, ui.composer].forEach((form) => form.reset());
  }

  function disable(err) {
    if (disabled) return;
    disabled = true;
    api.error = { status: err.status, code: err.code, message: err.message };
    const why = err.status === 404 ? "there is no widget channel" : "this site may not embed channel";
    console.warn(`OmniChat: ${why} ${CHANNEL} (${err.message}); the widget stays off`);
    clearTimeout(renewTimer);
    clearTimeout(retryTimer);
    if (socket) socket.close();
    if (ui) ui.host.remove();
    queue.length = 0;
  }

  // ---- Realtime ----

  function connect() {
    let refused = 0, first = true;
    socket = io(`${HOST}/widget`, {
      path: (channel && channel.socketPath) || script.getAttribute("data-socket-path") || "/socket.io",
      transports: ["websocket"],
      auth: (cb) => cb({ token }), // read on every (re)connect
      // While the host is down, thousands of widgets wait up to a minute between tries, jittered.
      reconnectionDelay: 2000,
      reconnectionDelayMax: 60000,
      randomizationFactor: 0.5,
    });
    socket.on("connect", () => {
      refused = 0;
      retryDelay = 2000;
      clearTimeout(retryTimer);
      // The session just gave the latest page; after a reconnect, fetch what was missed, spread out.
      if (!first) setTimeout(catchUp, Math.random() * 3000);
      first = false;
    });
    // A refusal by the server (not a transport error, which socket.io retries itself) ends the
    // socket: renew the token when it was the reason, and try again later in any case.
    socket.on("connect_error", (err) => {
      if (socket.active) return;
      if (/^unauthorized/i.test(err.message) && refused++ < 3) renew().then(() => socket.connect(), reconnectLater);
      else reconnectLater();
    });
    socket.on("disconnect", (reason) => {
      // Closed by the server (token expired?): socket.io does not reconnect by itself then.
      if (reason === "io server disconnect") renew().then(() => socket.connect(), reconnectLater);
    });
    socket.on("message", (m) => {
      if (m && typeof m === "object") upsert(m, true);
    });
    socket.on("typing", (t) => {
      if (t && t.from === "agent") showTyping(!!t.typing);
    });
  }

  let retryTimer = 0, retryDelay = 2000;
  function reconnectLater() {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      if (!disabled && socket && !socket.connected) socket.connect();
    }, retryDelay * (0.5 + Math.random()));
    retryDelay = Math.min(retryDelay * 2, 120000);
  }

  // On every (re)connect, merge the latest page by id so nothing sent meanwhile is lost; if none of it
  // was known, more than a page was missed and older pages follow.
  function catchUp() {
    if (!conversation && byId.size === 0) return; // nothing to catch up on yet
    const v = visitor, knewSome = byId.size > 0;
    const page = (cursor, n) =>
      request("GET", cursor ? `/messages?cursor=${encodeURIComponent(cursor)}` : "/messages", null, { tries: 3 }).then((r) => {
        if (v !== visitor) return;
        const gap = knewSome && r.messages.length > 0 && r.messages.every((m) => !byId.has(m.id));
        for (const m of r.messages) upsert(m, true);
        if (gap && r.nextCursor && n < 5) return page(r.nextCursor, n + 1);
      });
    page(null, 0).catch(noop);
  }

  // ---- Messages ----

  const time = (m) => Date.parse(m.createdAt) || 0;

  // Matched by id, or by clientMessageId for the visitor's own. `announce`: news, not history: it fires
  // "message" and counts as unread while the window is closed.
  function upsert(m, announce) {
    let e = byId.get(m.id) || byCid.get(m.clientMessageId);
    const fresh = !!m.id && !(e && e.m.id);
    if (e && !fresh && JSON.stringify(e.m) === JSON.stringify(m)) return e;
    const stick = nearBottom();
    const moved = !e || e.m.createdAt !== m.createdAt;
    if (!e) e = {};
    else if (moved) entries.splice(entries.indexOf(e), 1);
    e.m = m;
    if (m.id) e.failed = e.uploading = false; // the server has it, whatever the POST said
    if (m.id) byId.set(m.id, e);
    if (m.clientMessageId) byCid.set(m.clientMessageId, e);
    if (m.id && !conversation && m.conversationId) conversation = { id: m.conversationId };
    paint(e);
    if (moved) {
      let i = entries.length;
      while (i > 0 && time(entries[i - 1].m) > time(m)) i--;
      entries.splice(i, 0, e);
      ui.log.insertBefore(e.el, entries[i + 1] ? entries[i + 1].el : null);
    }
    if (stick || !m.id) scrollDown();
    if (fresh && announce) {
      emit("message", m);
      if (m.from === "agent") {
        showTyping(false);
        if (!isOpen) setUnread(unread + 1);
        needRead = true;
        markRead();
      }
    }
    return e;
  }

  function discard(e) {
    e.dead = true;
    e.el.remove();
  }
  function drop(e) {
    discard(e);
    entries.splice(entries.indexOf(e), 1);
    byCid.delete(e.m.clientMessageId);
  }
  function clearMessages() {
    entries.forEach(discard);
    entries = [];
    byId.clear();
    byCid.clear();
  }

  // The content is redrawn only when it changed, so screen readers don't read it twice.
  function paint(e) {
    const m = e.m;
    const el = e.el || (e.el = document.createElement("div"));
    // Not stored yet: "sending", "uploading" or "failed" (lower case); else the server's status.
    const status = e.failed ? "failed" : e.uploading ? "uploading" : m.id ? m.status : "sending";
    setAttrs(el, {
      class: `msg ${m.from === "agent" ? "agent" : "visitor"}`,
      "data-omnichat": "message",
      "data-from": m.from,
      "data-status": status,
      "data-id": m.id,
      "data-client-id": m.clientMessageId,
    });
    const content = JSON.stringify([m.text, m.attachments]);
    if (e.content !== content) {
      e.content = content;
      el.textContent = "";
      e.meta = null;
      if (m.text) el.append(linkify(h("div", { "data-omnichat": "message-text" }), m.text));
      for (const a of m.attachments || []) el.append(attachment(a));
    }
    const d = new Date(m.createdAt);
    const meta = h("div", { class: "meta" }, h("time", { datetime: m.createdAt, title: d.toLocaleString() }, d.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" })));
    if (m.from !== "agent") meta.append(statusMark(e, status));
    if (e.meta) e.meta.replaceWith(meta);
    else el.append(meta);
    e.meta = meta;
  }

  function statusMark(e, status) {
    if (status === "failed") {
      const retry = h("button", { type: "button", class: "retry" }, "Failed, tap to retry");
      retry.addEventListener("click", () => deliver(e));
      return retry;
    }
    if (status === "uploading") return h("span", {}, "Uploading…");
    if (status === "sending") return h("span", { role: "img", "aria-label": "Sending", title: "Sending" }, icon("clock"));
    return h("span", { role: "img", "aria-label": "Sent", title: "Sent" }, "✓");
  }

  function linkify(el, text) {
    const re = /\bhttps?:\/\/[^\s<>"]+/gi;
    let last = 0, match;
    while ((match = re.exec(text))) {
      // Trailing punctuation belongs to the sentence, and so does a ")" opened outside the URL.
      let url = match[0].replace(/[.,;:!?'\]}*]+$/, "");
      if (url.endsWith(")") && url.split("(").length < url.split(")").length) url = url.slice(0, -1);
      const href = safeUrl(url);
      el.append(text.slice(last, match.index), href ? h("a", { href, target: "_blank", rel: REL }, url) : url);
      re.lastIndex = last = match.index + url.length;
    }
    el.append(text.slice(last));
    return el;
  }

  function safeUrl(value) {
    if (!value) return null;
    try {
      const url = new URL(value, HOST);
      return /^https?:$/.test(url.protocol) ? url.href : null;
    } catch {
      return null;
    }
  }

  function attachment(a) {
    const url = safeUrl(a.url), name = a.fileName || "attachment";
    if (a.kind === "image" && url) {
      const img = h("img", { src: url, alt: name, referrerpolicy: "no-referrer", "data-omnichat": "attachment-image" });
      img.addEventListener("load", () => {
        if (ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80 + img.height) scrollDown();
      });
      return h("a", { href: url, target: "_blank", rel: REL }, img);
    }
    const attrs = { class: "file", "data-omnichat": "attachment-file" };
    return url ? h("a", { ...attrs, href: url, target: "_blank", rel: REL }, [icon("attach"), name]) : h("span", attrs, [icon("attach"), name]);
  }

  function loadOlder() {
    if (!nextCursor) return;
    const v = visitor, fromBottom = ui.log.scrollHeight - ui.log.scrollTop;
    ui.older.disabled = true;
    request("GET", `/messages?cursor=${encodeURIComponent(nextCursor)}`, null, { tries: 3 })
      .then(
        (r) => {
          if (v !== visitor) return;
          olderLoaded = true;
          nextCursor = r.nextCursor;
          for (const m of r.messages) upsert(m, false);
          ui.log.scrollTop = ui.log.scrollHeight - fromBottom;
        },
        () => showError("Older messages could not be loaded.")
      )
      .finally(() => {
        ui.older.disabled = false;
        paintOlder();
      });
  }

  function paintOlder() {
    if (!nextCursor && ui.root.activeElement === ui.older) ui.log.focus();
    ui.older.hidden = !nextCursor;
  }

  // ---- Sending ----

  function uuid() {
    if (typeof crypto.randomUUID === "function") return crypto.randomUUID(); // secure contexts only
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    const x = Array.from(b, (n) => (n + 256).toString(16).slice(1)).join("");
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
  }

  function addLocal(fields) {
    const m = { id: null, conversationId: conversation && conversation.id, clientMessageId: uuid(), from: "visitor", text: null, attachments: [], status: "sending", createdAt: new Date().toISOString() };
    return upsert({ ...m, ...fields }, false);
  }

  function sendText() {
    const text = ui.input.value.trim();
    if (!text) return;
    hideError();
    ui.input.value = "";
    grow();
    stopTyping();
    deliver(addLocal({ text }));
    ui.input.focus();
  }

  function sendFiles(list) {
    hideError();
    for (const file of Array.from(list)) {
      if (file.size > MAX_UPLOAD) {
        showError(`${file.name} is larger than 10 MB.`);
        continue;
      }
      // No local preview: a blob: image would need the page's img-src to allow blob:.
      const e = addLocal({ attachments: [{ kind: "document", url: null, mimeType: file.type, fileName: file.name, size: file.size }] });
      e.file = file;
      deliver(e);
    }
  }

  // Every try carries the same clientMessageId, so the server keeps one copy.
  function deliver(e) {
    const alive = () => !e.dead && !e.m.id; // reset(), or it came over the socket
    e.failed = false;
    e.uploading = !!e.file && !e.uploadId;
    paint(e);
    let upload = Promise.resolve();
    if (e.uploading) {
      const form = new FormData();
      form.append("file", e.file, e.file.name);
      upload = request("POST", "/attachments", form, { tries: 3, alive }).then((a) => {
        e.uploadId = a.id;
        e.uploading = false;
        paint(e);
      });
    }
    upload
      .then(() => {
        const body = { clientMessageId: e.m.clientMessageId, text: e.m.text || undefined };
        if (e.uploadId) body.attachments = [{ uploadId: e.uploadId }];
        return request("POST", "/messages", body, { tries: 3, alive });
      })
      .then(
        (r) => {
          if (e.dead) return; // reset() while it was on its way
          if (r.conversation) conversation = r.conversation;
          // The first message made the visitor a customer: its token now names it.
          if (r.visitorToken) {
            token = r.visitorToken;
            store("token", token);
            scheduleRenewal(r.expiresAt);
          }
          upsert(r.message, true);
        },
        (err) => {
          if (!alive()) return;
          e.uploading = false;
          if (err.status === 413 || err.status === 415) {
            drop(e);
            return showError(err.status === 413 ? "That file is larger than 10 MB." : "That type of file can't be sent here.");
          }
          e.failed = true;
          paint(e);
          if (err.status >= 400 && err.status < 500) showError(err.message);
        }
      );
  }

  // {typing: true} at most every 3 s while typing, {typing: false} after 4 s idle or on send.
  const postTyping = (typing) => request("POST", "/typing", { typing }).catch(noop);
  function typed() {
    clearTimeout(idleTimer);
    if (!conversation) return; // nobody to tell before the first message
    if (!ui.input.value) return stopTyping();
    if (Date.now() - typingSentAt > 3000) {
      typingSentAt = Date.now();
      postTyping(true);
    }
    idleTimer = setTimeout(stopTyping, 4000);
  }
  function stopTyping() {
    clearTimeout(idleTimer);
    if (!typingSentAt) return;
    typingSentAt = 0;
    postTyping(false);
  }

  // Agent typing: until {typing: false}, a message, or 6 s without renewal.
  function showTyping(on) {
    clearTimeout(typingTimer);
    if (!ui) return;
    const stick = nearBottom();
    ui.typing.hidden = !on;
    ui.typing.setAttribute("data-visible", String(on));
    if (on) typingTimer = setTimeout(showTyping, 6000, false);
    if (stick) scrollDown();
  }

  function markRead() {
    if (!needRead || !isOpen || document.visibilityState !== "visible") return;
    clearTimeout(readTimer);
    readTimer = setTimeout(() => {
      needRead = false;
      request("POST", "/read", {}).catch(() => {
        needRead = true;
      });
    }, 300);
  }

  // ---- UI ----

  function h(tag, attrs, kids) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    if (kids != null) el.append(...[].concat(kids));
    return el;
  }
  function setAttrs(el, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) el.removeAttribute(name);
      else el.setAttribute(name, value === true ? "" : value);
    }
  }
  function icon(name) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg"), path = document.createElementNS(ns, "path");
    setAttrs(svg, { viewBox: "0 0 24 24", class: name, "aria-hidden": "true", focusable: "false" });
    setAttrs(path, { d: ICONS[name], fill: "currentColor" });
    svg.append(path);
    return svg;
  }
  const iconButton = (name, label, type = "button") => h("button", { type, class: `icon ${name}`, "aria-label": label, title: label, "data-omnichat": name }, icon(name));
  const field = (input) => h("label", {}, [h("span"), input]);

  function mount() {
    // Not a <div>: rules like `div:empty` stay off it.
    const host = h("omnichat-widget", { id: "omnichat-widget", "data-omnichat": "root" });
    const root = host.attachShadow({ mode: "open" });
    if ("adoptedStyleSheets" in root) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } else {
      root.append(h("style", {}, CSS));
    }
    ui = { host, root };
    ui.title = h("h2", { "data-omnichat": "title" });
    ui.close = iconButton("close", "Close chat");
    ui.offline = h("div", { class: "offline", role: "status", "data-omnichat": "offline", hidden: true });
    ui.greeting = h("div", { class: "msg agent", "data-omnichat": "greeting", hidden: true });
    ui.older = h("button", { type: "button", class: "older", "data-omnichat": "older", hidden: true }, "Load older messages");
    ui.log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Messages", tabindex: "0", "data-omnichat": "messages" }, [ui.greeting, ui.older]);
    ui.typing = h("div", { class: "typing", role: "status", "data-omnichat": "typing", "data-visible": "false", hidden: true }, [h("i"), h("i"), h("i"), h("span", { class: "sr" }, "Typing…")]);
    ui.error = h("div", { class: "error", role: "alert", "data-omnichat": "error", hidden: true });
    ui.name = h("input", { name: "name", autocomplete: "name", "data-omnichat": "prechat-name" });
    ui.email = h("input", { name: "email", type: "email", autocomplete: "email", "data-omnichat": "prechat-email" });
    ui.submit = h("button", { type: "submit", class: "primary", "data-omnichat": "prechat-submit" }, "Start chat");
    ui.prechat = h("form", { class: "prechat", "data-omnichat": "prechat", hidden: true }, [h("p", {}, "Tell us who you are and we'll be right with you."), field(ui.name), field(ui.email), ui.submit]);
    ui.attach = iconButton("attach", "Attach a file");
    ui.file = h("input", { type: "file", multiple: true, accept: ACCEPT, tabindex: "-1", hidden: true, "data-omnichat": "file-input" });
    ui.input = h("textarea", { rows: "1", maxlength: "4000", placeholder: "Write a message…", "aria-label": "Message", "data-omnichat": "input" });
    ui.send = iconButton("send", "Send", "submit");
    ui.composer = h("form", { class: "composer" }, [ui.attach, ui.file, ui.input, ui.send]);
    ui.win = h("div", { id: "oc-win", class: "win", role: "dialog", "data-omnichat": "window", "data-open": "false", hidden: true }, [
      h("header", {}, [ui.title, ui.close]),
      ui.offline,
      ui.log,
      ui.typing,
      ui.error,
      ui.prechat,
      ui.composer,
    ]);
    ui.badge = h("span", { class: "badge", "aria-hidden": "true", "data-omnichat": "badge", hidden: true }, "0");
    ui.unread = h("span", { id: "oc-unread", class: "sr" });
    ui.bubble = h("button", { type: "button", class: "bubble", "aria-label": "Open chat", "aria-expanded": "false", "aria-controls": "oc-win", "aria-describedby": "oc-unread", "data-omnichat": "bubble" }, [icon("chat"), icon("close"), ui.badge]);
    root.append(h("div", { class: "oc" }, [ui.win, ui.bubble, ui.unread]));

    ui.bubble.addEventListener("click", () => (isOpen ? closeWin() : openWin()));
    ui.close.addEventListener("click", () => closeWin());
    root.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && isOpen) closeWin();
    });
    ui.older.addEventListener("click", loadOlder);
    ui.prechat.addEventListener("submit", submitPrechat);
    ui.composer.addEventListener("submit", (ev) => {
      ev.preventDefault();
      sendText();
    });
    ui.input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        sendText();
      }
    });
    ui.input.addEventListener("input", () => {
      grow();
      typed();
    });
    ui.input.addEventListener("paste", (ev) => {
      const files = ev.clipboardData && ev.clipboardData.files;
      if (files && files.length) {
        ev.preventDefault();
        sendFiles(files);
      }
    });
    ui.attach.addEventListener("click", () => ui.file.click());
    ui.file.addEventListener("change", () => {
      sendFiles(ui.file.files);
      ui.file.value = "";
    });
    const dragsFiles = (ev) => !ui.composer.hidden && ev.dataTransfer && Array.from(ev.dataTransfer.types).includes("Files");
    ui.win.addEventListener("dragover", (ev) => {
      if (dragsFiles(ev)) ev.preventDefault();
    });
    ui.win.addEventListener("drop", (ev) => {
      if (!dragsFiles(ev)) return;
      ev.preventDefault();
      sendFiles(ev.dataTransfer.files);
    });
    document.addEventListener("visibilitychange", markRead);
    document.body.append(host);
  }

  function paintChannel() {
    const c = channel || {};
    const title = c.title || "Chat with us";
    ui.title.textContent = title;
    ui.win.setAttribute("aria-label", title);
    const color = /^#([0-9a-f]{3}){1,2}$/i.test(c.color || "") ? c.color : "#1f6feb";
    ui.host.style.setProperty("--a", color); // CSSOM: allowed by a strict style-src
    ui.host.style.setProperty("--on", onColor(color));
    // Rewritten only when changed: screen readers read them.
    if (ui.greeting.textContent !== (c.greeting || "")) {
      ui.greeting.textContent = "";
      linkify(ui.greeting, c.greeting || "");
      ui.greeting.hidden = !c.greeting;
    }
    const away = c.offlineMessage || "We're away right now. Leave a message and we'll get back to you.";
    if (ui.offline.textContent !== away) ui.offline.textContent = away;
    ui.offline.hidden = c.online !== false;
    paintComposer();
  }

  function onColor(hex) {
    const full = hex.length === 4 ? hex.replace(/\w/g, "$&$&") : hex;
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(full.substr(i, 2), 16));
    return r * 0.299 + g * 0.587 + b * 0.114 > 160 ? "#111" : "#fff";
  }

  function paintComposer() {
    const form = (channel && channel.preChatForm) || {}, v = visitor || {};
    const asks = (k) => !!form[k] && form[k] !== "off";
    for (const [k, input, label] of [["name", ui.name, "Name"], ["email", ui.email, "Email"]]) {
      input.disabled = !asks(k); // skipped by validation
      input.required = form[k] === "required";
      input.parentNode.hidden = !asks(k);
      input.previousSibling.textContent = input.required ? label : `${label} (optional)`;
      if (!input.value && v[k]) input.value = v[k];
    }
    const show = !prechatDone && !conversation && ((asks("name") && !v.name) || (asks("email") && !v.email));
    ui.prechat.hidden = !show;
    ui.composer.hidden = show;
  }

  function submitPrechat(ev) {
    ev.preventDefault();
    for (const input of [ui.name, ui.email]) input.value = input.value.trim();
    if (!ui.prechat.reportValidity()) return; // a required name of only spaces
    const extra = {};
    if (!ui.name.disabled && ui.name.value) extra.name = ui.name.value;
    if (!ui.email.disabled && ui.email.value) extra.email = ui.email.value;
    hideError();
    ui.submit.disabled = true;
    (Object.keys(extra).length ? session(() => openSession(false, extra)) : Promise.resolve())
      .then(
        () => {
          prechatDone = true;
          paintComposer();
          ui.input.focus();
        },
        (err) => showError(err.status === 400 || err.status === 422 ? err.message : "Sorry, the chat could not start. Please try again.")
      )
      .finally(() => {
        ui.submit.disabled = false;
      });
  }

  function openWin(focus = true) {
    if (isOpen) return;
    isOpen = true;
    paintOpen();
    setUnread(0);
    markRead();
    scrollDown();
    // Not for data-open at load: that would steal the page's focus.
    if (focus) (ui.prechat.hidden ? ui.input : ui.prechat.querySelector("input:enabled")).focus();
    emit("open", {});
  }

  function closeWin() {
    if (!isOpen) return;
    const focused = ui.win.contains(ui.root.activeElement);
    isOpen = false;
    paintOpen();
    if (focused) ui.bubble.focus();
    emit("close", {});
  }

  function paintOpen() {
    ui.win.hidden = !isOpen;
    ui.win.setAttribute("data-open", String(isOpen));
    ui.bubble.setAttribute("aria-expanded", String(isOpen)); // the state; the name stays "Open chat"
  }

  function setUnread(n) {
    unread = n;
    if (!ui) return;
    ui.badge.textContent = String(n);
    ui.badge.hidden = !n;
    ui.unread.textContent = n ? `${n} unread message${n > 1 ? "s" : ""}` : "";
  }

  function showError(text) {
    ui.error.textContent = text;
    ui.error.hidden = false;
  }
  function hideError() {
    ui.error.hidden = true;
  }

  function grow() {
    ui.input.style.height = "auto";
    ui.input.style.height = `${Math.min(ui.input.scrollHeight + 2, 120)}px`;
  }
  const nearBottom = () => ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
  const scrollDown = () => {
    ui.log.scrollTop = ui.log.scrollHeight;
  };

  // Another tab of the site changed the visitor's token: a renewal of the same visitor is just
  // adopted; a reset() or setUser() there makes this tab follow, so it never writes the old
  // visitor's token back.
  const subject = (jwt) => {
    try {
      return JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub;
    } catch {
      return null;
    }
  };
  window.addEventListener("storage", (ev) => {
    if (ev.key !== KEY + "token" || ev.newValue === token || disabled || !ready) return;
    if (ev.newValue && visitor && subject(ev.newValue) === visitor.id) {
      token = ev.newValue;
      return;
    }
    session(() => {
      token = ev.newValue;
      identity = null;
      profile = {};
      return openSession();
    }).catch(noop);
  });

  function start() {
    session().catch((err) => {
      if (err.status === 403 || err.status === 404) return; // disable() warned
      const hint = err.code === "identity_required" ? "this channel needs a verified user: call OmniChat.setUser({identifier, identifierHash})" : err.message;
      console.warn(`OmniChat: ${hint}`);
      // Busy (429) or unreachable: try again in a while, not never.
      if (!ready && (err.status === 429 || err.status >= 500 || err.status === 0)) setTimeout(start, 30000 + Math.random() * 30000);
    });
  }
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
