#!/usr/bin/env python3
"""Idle Socket.IO sockets: OmniChat's memory per socket next to a plain Node.js socket.io server's
(the Node peer, bench/socket-peer.mjs), and whether a crowd connecting at once all gets in.

    cargo build --release -p omnichat --bin omnichat
    npm ci --prefix tests/js
    python3 bench/sockets.py [--binary target/release/omnichat] [--count 5000]
    python3 bench/sockets.py --count 10000 --connect-at-once
    python3 bench/sockets.py --only peer --count 2000        # no Rust build needed

Two servers, one after the other, never side by side, so neither's memory is in the other's
figure: first the OmniChat binary (a fresh SQLite data directory, a tenant registered with
`POST /api/auth/register`, one TELEGRAM_BOT channel), then the Node peer (npm `socket.io` with the
same token check, an access token this script signs with the same secret and claims). Against
each, `--count` idle websocket clients (tests/js/idle-sockets.mjs) connect with the access token
and `join-channel` the channel, so every socket is in its tenant's room and one channel room; by
default in waves of 250 every 50 ms, as browsers arriving over a few seconds would, and with
`--connect-at-once` all in one wave. The server's VmRSS is read 2 s after setup and 3 s after the
last socket connected (its handshake buffers gone); the growth divided by the sockets connected
is the figure. The clients run in one Node process up to `--per-process` sockets (10,000), in
several beyond that (or with a smaller `--per-process`): one process holds 10,000 sockets, and on
a 2-core machine it opens them faster than four processes, which take the CPU from the server.
The server and its clients share the machine, as in the other socket benchmarks.
"""

import argparse
import base64
import hashlib
import hmac
import json
import math
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

sys.dont_write_bytecode = True  # importing bench/startup.py leaves no __pycache__ behind
from startup import free_port, healthy, proc_status  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "tests" / "js" / "idle-sockets.mjs"
PEER = ROOT / "bench" / "socket-peer.mjs"
WAVE = 250  # idle-sockets.mjs's default wave: 250 sockets every 50 ms
TOKEN_TTL = 3600  # long enough that no socket's token expires during a run


def raise_fd_limit():
    """Every socket is a descriptor on both ends: let this process and its children (servers and
    clients inherit it) open 65,536, or as many as the hard limit allows."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, max(hard, 65536)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def access_token(secret, tenant_id):
    """An access token shaped as the host's (host/src/auth/tokens.rs): HS256, camelCase claims."""
    now = int(time.time())
    claims = {
        "userId": str(uuid.uuid4()),
        "tenantId": tenant_id,
        "email": "bench@bench.io",
        "iss": "omnichat",
        "aud": "omnichat:access",
        "iat": now,
        "exp": now + TOKEN_TTL,
        "jti": str(uuid.uuid4()),
    }
    signing_input = b64url(b'{"alg":"HS256","typ":"JWT"}') + "." + b64url(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def post_json(port, path, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.load(reply)


def stop(child):
    if child.poll() is None:
        child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def start_omnichat(binary, work, secret):
    """The binary on a free port with SQLite in a data directory of its own; a tenant and one
    channel. Returns (process, port, access token, channel id)."""
    port = free_port()
    env = dict(
        os.environ,
        PORT=str(port),
        HOST="127.0.0.1",
        OMNICHAT_DATA_DIR=str(work / "omnichat-data"),
        JWT_SECRET=secret,
        JWT_ACCESS_TTL=f"{TOKEN_TTL}s",
        RUST_LOG="warn",
    )
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.pop("SOCKET_PATH", None)
    log_path = work / "omnichat.log"  # shown if it fails to start
    with open(log_path, "wb") as log:
        child = subprocess.Popen([binary], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        started = time.perf_counter()
        while not healthy(port):
            if child.poll() is not None:
                sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
                raise SystemExit(f"{binary} exited with {child.returncode}")
            if time.perf_counter() - started > 60:  # a cold plugin cache compiles the plugins first
                raise SystemExit(f"{binary} not ready within 60 s")
            time.sleep(0.01)
        auth = post_json(
            port,
            "/api/auth/register",
            {"email": "bench@bench.io", "password": secrets.token_urlsafe(16), "name": "Bench", "tenantName": "Bench"},
        )
        token = auth["accessToken"]
        channel = post_json(
            port, "/api/channels", {"name": "Bench bot", "type": "TELEGRAM_BOT", "config": {"botToken": "1:bench"}}, token
        )
    except BaseException:
        stop(child)
        raise
    return child, port, token, channel["id"]


def start_peer(secret):
    """bench/socket-peer.mjs on a free port, and a token it accepts. Returns (process, port,
    access token, channel id): the peer has no store, any channel id is one room more."""
    env = dict(os.environ, JWT_SECRET=secret, HOST="127.0.0.1", PORT="0")
    env.pop("SOCKET_PATH", None)
    child = subprocess.Popen(["node", str(PEER)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    line = child.stdout.readline()
    if not line:
        stop(child)
        raise SystemExit(f"{PEER} exited with {child.returncode} before it was ready")
    port = json.loads(line)["port"]
    return child, port, access_token(secret, str(uuid.uuid4())), str(uuid.uuid4())


def first_line(child, timeout):
    """The first line a child prints, or None after `timeout` seconds."""
    lines = []
    reader = threading.Thread(target=lambda: lines.append(child.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0] if lines and lines[0] else None


def idle_sockets(port, token, channel, count, at_once, per_process, work):
    """Opens `count` idle sockets from ceil(count / per_process) Node processes started together.
    Waves keep their overall rate (250 per 50 ms, shared between the processes); at once, each
    process opens its share in one wave. Returns the clients (holding the sockets until their
    stdin closes) and the summed {connected, failed, ms} (ms: the slowest process's)."""
    tokens = work / "tokens.txt"
    tokens.write_text(token + "\n")
    processes = math.ceil(count / per_process)
    shares = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
    clients = []
    for share in shares:
        wave = share if at_once else max(1, WAVE // processes)
        env = dict(os.environ, CHANNEL=channel, WAVE=str(wave))
        env.pop("ORIGIN", None)
        clients.append(
            subprocess.Popen(
                ["node", str(CLIENT), f"http://127.0.0.1:{port}", "/", str(tokens), str(share)],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        )
    summary = {"connected": 0, "failed": 0, "ms": 0}
    # Every socket connects or fails within the client's 30 s timeout (and its join's 30 s)
    # once its wave is opened.
    deadline = time.monotonic() + 90 + (count / WAVE) * 0.05
    for client, share in zip(clients, shares):
        line = first_line(client, max(1, deadline - time.monotonic()))
        if line is None:
            summary["failed"] += share  # no summary: count its sockets as failed
            continue
        result = json.loads(line)
        summary["connected"] += result["connected"]
        summary["failed"] += result["failed"]
        summary["ms"] = max(summary["ms"], result["ms"])
    return clients, summary


def close_clients(clients):
    for client in clients:
        try:
            client.stdin.close()
        except OSError:
            pass
    for client in clients:
        try:
            client.wait(timeout=30)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait()


def measure(name, server, port, token, channel, args, work):
    """RSS growth of `server` per idle socket, and how the crowd connected."""
    time.sleep(2)  # setup's transient allocations settle
    before_kb, _ = proc_status(server.pid)
    clients, summary = idle_sockets(port, token, channel, args.count, args.connect_at_once, args.per_process, work)
    try:
        time.sleep(3)  # the handshakes' transient buffers go before reading the steady state
        if server.poll() is not None:
            raise SystemExit(f"{name} exited with {server.returncode} under {args.count} sockets")
        after_kb, threads = proc_status(server.pid)
    finally:
        close_clients(clients)
    connected = summary["connected"]
    per_socket = (after_kb - before_kb) * 1024 / connected if connected else None
    row = dict(summary, name=name, before_kb=before_kb, after_kb=after_kb, threads=threads, per_socket=per_socket)
    print(
        f"{name}: {connected} connected, {summary['failed']} failed in {summary['ms'] / 1000:.1f} s; "
        f"RSS {before_kb / 1024:.1f} -> {after_kb / 1024:.1f} MB, "
        + (f"{per_socket:,.0f} bytes ({per_socket / 1024:.1f} KB) per socket" if per_socket else "no socket connected"),
        flush=True,
    )
    return row


def report(rows, args):
    mode = "all at once" if args.connect_at_once else f"in waves of {WAVE} every 50 ms"
    print()
    print(f"{args.count:,} idle sockets (websocket, access token, one join-channel each), opened {mode}")
    print(f"{'server':<10} {'connected':>9} {'failed':>7} {'all in':>8} {'RSS before':>11} {'RSS after':>10} {'per socket':>24}")
    for r in rows:
        per_socket = f"{r['per_socket']:,.0f} B ({r['per_socket'] / 1024:.1f} KB)" if r["per_socket"] else "-"
        print(
            f"{r['name']:<10} {r['connected']:>9} {r['failed']:>7} {r['ms'] / 1000:>6.1f} s "
            f"{r['before_kb'] / 1024:>8.1f} MB {r['after_kb'] / 1024:>7.1f} MB {per_socket:>24}"
        )
    by_name = {r["name"]: r for r in rows}
    if len(rows) == 2 and all(r["per_socket"] for r in rows):
        ratio = by_name["node peer"]["per_socket"] / by_name["omnichat"]["per_socket"]
        print(f"node peer / omnichat, memory per socket: {ratio:.2f}x")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/omnichat")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--connect-at-once", action="store_true", help="open every socket in one wave")
    parser.add_argument("--only", choices=["omnichat", "peer"], help="run against one server only")
    parser.add_argument("--per-process", type=int, default=10000, help="sockets per Node client process")
    args = parser.parse_args()

    if args.only != "peer" and not os.access(args.binary, os.X_OK):
        raise SystemExit(f"{args.binary}: no such binary (cargo build --release -p omnichat --bin omnichat)")
    limit = raise_fd_limit()
    if limit < args.count + 1024:
        print(f"warning: open-file limit {limit} is below {args.count} sockets", file=sys.stderr)
    secret = secrets.token_hex(32)  # for both servers; never printed
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in (None, "omnichat"):
            server, port, token, channel = start_omnichat(args.binary, work, secret)
            try:
                rows.append(measure("omnichat", server, port, token, channel, args, work))
            finally:
                stop(server)
            time.sleep(2)  # the closed sockets' TIME_WAIT and the clients' exit settle
        if args.only in (None, "peer"):
            server, port, token, channel = start_peer(secret)
            try:
                rows.append(measure("node peer", server, port, token, channel, args, work))
            finally:
                stop(server)
    report(rows, args)


if __name__ == "__main__":
    main()
