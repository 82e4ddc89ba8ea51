// A raw engine.io websocket client (npm `ws`) that never answers anything: it prints every frame
// the server sends and the close, as JSON lines on stdout:
//   {"type":"frame","data":"0{...}"} | {"type":"close","code":1005}
// Usage: node silent-socket.mjs <baseUrl>   (SOCKET_PATH as in socket-client.mjs)
// It exits when the server closes the connection, or after 60 s.
import WebSocket from "ws";

const [baseUrl] = process.argv.slice(2);
const path = process.env.SOCKET_PATH || "/socket.io";
const url = baseUrl.replace(/^http/, "ws").replace(/\/+$/, "") + path + "/?EIO=4&transport=websocket";
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const ws = new WebSocket(url);
ws.on("message", (data) => print({ type: "frame", data: data.toString() }));
ws.on("close", (code) => {
  print({ type: "close", code });
  process.exit(0);
});
ws.on("error", (err) => print({ type: "error", message: String(err && err.message) }));
setTimeout(() => process.exit(1), 60000);
