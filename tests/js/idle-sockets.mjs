// Opens N idle Socket.IO connections to a host, for the benchmarks' memory figures.
// Usage: node idle-sockets.mjs <baseUrl> <namespace> <tokensFile> <count>
//   tokensFile: one token per line, used round-robin (a visitor token per socket for /widget,
//   an access token for /, which then joins the channel given by CHANNEL).
// Env: ORIGIN (the Origin header of each handshake), CHANNEL (join-channel on /), WAVE (sockets
// opened per wave, default 250; WAVE=<count> opens them all at once).
// Prints {"connected": n, "failed": m, "ms": t} once every socket connected or failed, then
// keeps them open until stdin closes.
import { readFileSync } from "node:fs";
import { io } from "socket.io-client";

const [baseUrl, namespace, tokensFile, countText] = process.argv.slice(2);
const tokens = readFileSync(tokensFile, "utf8").split("\n").filter(Boolean);
const count = Number(countText);
const url = namespace === "/" ? baseUrl : baseUrl.replace(/\/+$/, "") + namespace;
const started = Date.now();
let connected = 0;
let failed = 0;
const sockets = [];

function done() {
  if (connected + failed === count) {
    process.stdout.write(JSON.stringify({ connected, failed, ms: Date.now() - started }) + "\n");
  }
}

// In waves, as browsers arriving over a few seconds would, not 5,000 handshakes in one tick
// (unless WAVE says otherwise: the connect-at-once benchmark).
const WAVE = Number(process.env.WAVE) || 250;
for (let i = 0; i < count; i += WAVE) {
  for (let j = i; j < Math.min(count, i + WAVE); j++) {
    const socket = io(url, {
      transports: ["websocket"],
      auth: { token: tokens[j % tokens.length] },
      extraHeaders: process.env.ORIGIN ? { origin: process.env.ORIGIN } : {},
      reconnection: false,
      timeout: 30000,
      forceNew: true,
    });
    socket.once("connect", async () => {
      if (process.env.CHANNEL) {
        // A join that is refused or never answered is a failed socket, not a hung summary.
        const reply = await socket.timeout(30000).emitWithAck("join-channel", process.env.CHANNEL).catch(() => null);
        if (reply?.ok !== true) {
          failed++;
          return done();
        }
      }
      connected++;
      done();
    });
    socket.once("connect_error", () => {
      failed++;
      done();
    });
    sockets.push(socket);
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
}

process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
