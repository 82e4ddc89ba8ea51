// One Socket.IO connection per tab, authenticated with the current access token. Pages subscribe
// to events with `on(event, fn)` and to reconnects with `onReconnect(fn)` (after which they reload
// what they show over REST, as the API asks).

import { accessToken, current, refresh } from "./api.js";

const EVENTS = [
  "message-created",
  "message-updated",
  "conversation-updated",
  "conversation-read",
  "channel-status",
  "typing",
  "whatsapp-qr",
  "whatsapp-connected",
];

const handlers = new Map();
const reconnectHandlers = new Set();
const stateHandlers = new Set();
let socket = null;
let everConnected = false;
let retryDelay = 1000;
let retryTimer = null;
// The token the socket last connected (or tried to) with: the one a refusal is about.
let sentToken = null;

/** Connects again after a pause that doubles up to 30 s while it keeps failing. */
function retryLater() {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(() => socket?.connect(), retryDelay);
  retryDelay = Math.min(retryDelay * 2, 30_000);
}

function dispatch(event, payload) {
  for (const fn of handlers.get(event) || []) {
    try {
      fn(payload);
    } catch (error) {
      console.error(`handler of ${event} failed`, error);
    }
  }
}

function setState(state) {
  document.documentElement.dataset.live = state;
  stateHandlers.forEach((fn) => fn(state));
}

/** Connects (once); safe to call again after signing in. */
export function connect() {
  if (socket) {
    if (!socket.connected) socket.connect();
    return;
  }
  if (typeof window.io !== "function") {
    setState("unavailable");
    return;
  }
  const path = document.querySelector('meta[name="omnichat-socket-path"]')?.content || "/socket.io";
  socket = window.io({
    path,
    transports: ["websocket", "polling"],
    tryAllTransports: true,
    auth: (cb) => cb({ token: (sentToken = accessToken()) }),
  });
  socket.on("connect", () => {
    retryDelay = 1000;
    setState("connected");
    if (everConnected) reconnectHandlers.forEach((fn) => fn());
    everConnected = true;
  });
  // The client reconnects by itself after a network failure (`socket.active`); a handshake the
  // server refused (an expired token) and a disconnect by the server are left to us.
  socket.on("connect_error", async (error) => {
    setState("disconnected");
    if (socket?.active) return;
    if (String(error?.message || "").startsWith("unauthorized")) {
      try {
        await refresh(sentToken);
      } catch {
        if (!current()) return; // signed out: the app shows the sign-in page
      }
    }
    retryLater();
  });
  socket.on("disconnect", (reason) => {
    setState("disconnected");
    if (reason === "io server disconnect") retryLater();
  });
  // Sent before the server ends a socket whose token expired or whose user changed.
  socket.on("unauthorized", async () => {
    try {
      await refresh(sentToken);
    } catch {
      /* signed out, or the refresh failed: the disconnect that follows retries */
    }
  });
  for (const event of EVENTS) socket.on(event, (payload) => dispatch(event, payload));
}

export function disconnect() {
  clearTimeout(retryTimer);
  socket?.disconnect();
  socket = null;
  everConnected = false;
  setState("off");
}

/** Subscribes to an event; returns the unsubscribe function. */
export function on(event, fn) {
  if (!handlers.has(event)) handlers.set(event, new Set());
  handlers.get(event).add(fn);
  return () => handlers.get(event).delete(fn);
}

export function onReconnect(fn) {
  reconnectHandlers.add(fn);
  return () => reconnectHandlers.delete(fn);
}

export function onState(fn) {
  stateHandlers.add(fn);
  return () => stateHandlers.delete(fn);
}

/** Tells the tenant's other sockets (and the widget visitor) that this user is typing. */
export function typing(conversationId, isTyping) {
  socket?.emit("typing", { conversationId, typing: isTyping });
}
