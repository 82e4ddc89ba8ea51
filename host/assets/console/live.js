// One Socket.IO connection per tab, authenticated with the current access token. Pages subscribe
// to events with `on(event, fn)` and to reconnects with `onReconnect(fn)` (after which they reload
// what they show over REST, as the API asks).

import { accessToken, refresh } from "./api.js";

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
    auth: (cb) => cb({ token: accessToken() }),
  });
  socket.on("connect", () => {
    setState("connected");
    if (everConnected) reconnectHandlers.forEach((fn) => fn());
    everConnected = true;
  });
  socket.on("disconnect", () => setState("disconnected"));
  socket.on("connect_error", async () => {
    setState("disconnected");
    // An expired token is refused at the handshake: refresh it and let the client retry.
    try {
      await refresh();
    } catch {
      /* signed out: the app shows the sign-in page */
    }
  });
  // The server ends a socket whose token expired or whose user changed: reconnect with a fresh one.
  socket.on("unauthorized", async () => {
    try {
      await refresh();
      setTimeout(() => socket?.connect(), 200);
    } catch {
      /* signed out */
    }
  });
  for (const event of EVENTS) socket.on(event, (payload) => dispatch(event, payload));
}

export function disconnect() {
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
