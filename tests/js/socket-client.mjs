// A real socket.io-client for the end-to-end tests. It connects to the host, optionally joins
// channel rooms, and reports everything as JSON lines on stdout:
//   {"type":"connected"} | {"type":"connect_error","message":...}
//   {"type":"ack","event":"join-channel","channel":...,"reply":{...}}
//   {"type":"event","name":"message-created","payload":{...}}
// Usage: node socket-client.mjs <baseUrl> <token|-> [channelId ...]
// Options by environment: SOCKET_PATH (default /socket.io), TRANSPORT (websocket|polling).
// It exits when stdin closes (the test is done) or after 60 s.
import { io } from "socket.io-client";

const [baseUrl, token, ...channels] = process.argv.slice(2);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const socket = io(baseUrl, {
  path: process.env.SOCKET_PATH || "/socket.io",
  transports: [process.env.TRANSPORT || "websocket"],
  auth: token && token !== "-" ? { token } : {},
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

process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), 60000);
