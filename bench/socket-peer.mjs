// The Node peer of the idle-socket benchmark (bench/sockets.py): a plain npm `socket.io` server
// doing what OmniChat's `/` namespace does for an idle inbox socket, and nothing more.
//
//     JWT_SECRET=... node bench/socket-peer.mjs [port]
//
// Env: JWT_SECRET (required: the HMAC key of the access tokens), PORT (when no port argument;
// 0 or unset: any free port), HOST (default 127.0.0.1), SOCKET_PATH (default /socket.io).
//
// The handshake must carry an OmniChat-shaped access token (`auth: {token}`, or an
// `Authorization: Bearer` header): an HS256 JWT signed with JWT_SECRET, issuer `omnichat`, audience
// `omnichat:access`, not expired (5 s leeway, as the host), else `connect_error` "unauthorized".
// The socket joins `tenant:<tenantId>`; `join-channel` (an id, or `{channelInstanceId}`) joins
// `channel:<id>` and answers `{ok: true}`. Default transports (polling and websocket), as the
// host offers both. Prints `{"ready":true,"port":N}` once listening.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

// socket.io is a devDependency of tests/js (next to the socket.io-client the benchmark drives),
// not of bench/: resolve it from there, wherever this script is started from.
const require = createRequire(fileURLToPath(new URL("../tests/js/package.json", import.meta.url)));
const { Server } = require("socket.io");

const secret = process.env.JWT_SECRET;
if (!secret) {
  process.stderr.write("socket-peer: JWT_SECRET is required\n");
  process.exit(2);
}
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const host = process.env.HOST || "127.0.0.1";
const path = process.env.SOCKET_PATH || "/socket.io";
const LEEWAY_S = 5;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The claims of a valid access token, or null (bad shape, algorithm, signature, audience, expiry). */
function verifyAccessToken(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  const [headerPart, payloadPart, signaturePart] = parts;
  try {
    const header = JSON.parse(Buffer.from(headerPart, "base64url"));
    if (header.alg !== "HS256") return null; // pinned, as the host pins it
    const expected = createHmac("sha256", secret).update(`${headerPart}.${payloadPart}`).digest();
    const given = Buffer.from(signaturePart, "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    const claims = JSON.parse(Buffer.from(payloadPart, "base64url"));
    const now = Date.now() / 1000;
    if (typeof claims.exp !== "number" || claims.exp + LEEWAY_S < now) return null;
    if (claims.iss !== "omnichat" || claims.aud !== "omnichat:access") return null;
    if (typeof claims.tenantId !== "string") return null;
    return claims;
  } catch {
    return null; // not base64url JSON
  }
}

const httpServer = createServer();
const io = new Server(httpServer, { path });

io.use((socket, next) => {
  const bearer = /^Bearer (.+)$/.exec(socket.handshake.headers.authorization ?? "");
  const claims = verifyAccessToken(socket.handshake.auth?.token ?? bearer?.[1]);
  if (!claims) return next(new Error("unauthorized"));
  socket.data.userId = claims.userId;
  socket.data.tenantId = claims.tenantId;
  next();
});

io.on("connection", (socket) => {
  socket.join(`tenant:${socket.data.tenantId}`);
  socket.on("join-channel", (payload, ack) => {
    const id = typeof payload === "string" ? payload : payload?.channelInstanceId;
    const reply = typeof ack === "function" ? ack : () => {};
    if (typeof id !== "string" || !UUID.test(id)) return reply({ ok: false, error: "invalid channelInstanceId" });
    socket.join(`channel:${id}`);
    reply({ ok: true });
  });
});

httpServer.listen(port, host, () => {
  process.stdout.write(JSON.stringify({ ready: true, port: httpServer.address().port }) + "\n");
});

// The benchmark stops it with SIGINT: exit at once, the clients see their sockets close.
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
