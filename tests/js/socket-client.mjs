// A real socket.io-client for the end-to-end tests. It connects to the host, optionally joins
// channel rooms, and reports everything as JSON lines on stdout:
//   {"type":"connected"} | {"type":"connect_error","message":...}
//   {"type":"ack","event":"join-channel","channel":...,"reply":{...}}
//   {"type":"event","name":"message-created","payload":{...}}
//   {"type":"disconnect","reason":"io server disconnect"}
// Usage: node socket-client.mjs <baseUrl> <token|-> [channelId ...]
// Options by environment: SOCKET_PATH (default /socket.io), TRANSPORT (websocket|polling, or
// polling,websocket: starts on long-polling and upgrades),
// NAMESPACE (default /; e.g. /widget: connects to baseUrl + namespace), ORIGIN (sent as the
// handshake's Origin header, as a browser on that page would).
// Commands on stdin, one JSON object a line:
//   {"emit":"<event>","payload":<json>,"ack":true|false,"timeoutMs"?:n}
// emits the event (without "payload": no argument); with "ack": true it waits for the reply
// (at most timeoutMs, default 10 s) and prints {"type":"ack","event":<event>,"reply":<reply>}
// (or {"type":"ack","event":<event>,"error":"<message>"} when no reply came in time).
// It exits when stdin closes (the test is done) or after 60 s.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const [baseUrl, token, ...channels] = process.argv.slice(2);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const namespace = process.env.NAMESPACE || "/";
const url =
  namespace === "/"
    ? baseUrl
    : baseUrl.replace(/\/+$/, "") + (namespace.startsWith("/") ? namespace : "/" + namespace);

const socket = io(url, {
  path: process.env.SOCKET_PATH || "/socket.io",
  transports: (process.env.TRANSPORT || "websocket").split(","),
  auth: token && token !== "-" ? { token } : {},
  extraHeaders: process.env.ORIGIN ? { origin: process.env.ORIGIN } : {},
  reconnection: false,
  timeout: 10000,
});

socket.on("connect", async () => {
  print({ type: "connected" });
  for (const channel of channels) {
    const reply = await socket.emitWithAck("join-channel", channel);
    print({ type: "ack", event: "join-channel", channel, reply });
  }
  print({ type: "ready" });
});
socket.on("connect_error", (err) => {
  print({ type: "connect_error", message: err.message });
  process.exit(0);
});
socket.onAny((name, payload) => print({ type: "event", name, payload }));
socket.on("disconnect", (reason) => print({ type: "disconnect", reason }));
socket.io.on("open", () =>
  socket.io.engine.on("upgrade", (transport) => print({ type: "upgrade", transport: transport.name })),
);

// Commands from stdin. Emits made before the connection is up are buffered by socket.io-client.
async function command(line) {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    process.stderr.write(`socket-client: not JSON: ${line}\n`);
    return;
  }
  if (!cmd || typeof cmd.emit !== "string") {
    process.stderr.write(`socket-client: no "emit" in: ${line}\n`);
    return;
  }
  const args = Object.prototype.hasOwnProperty.call(cmd, "payload") ? [cmd.payload] : [];
  if (!cmd.ack) {
    socket.emit(cmd.emit, ...args);
    return;
  }
  try {
    const reply = await socket.timeout(cmd.timeoutMs || 10000).emitWithAck(cmd.emit, ...args);
    print({ type: "ack", event: cmd.emit, reply: reply === undefined ? null : reply });
  } catch (err) {
    print({ type: "ack", event: cmd.emit, error: String(err && err.message ? err.message : err) });
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  command(line).catch((err) => process.stderr.write(`socket-client: ${err && err.stack}\n`));
});
lines.on("close", () => process.exit(0));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), 60000);
