#!/usr/bin/env python3
"""Start to ready, and idle memory, of the omnichat binary (issue 18's goals 2 and 3).

    cargo build --release -p omnichat --bin omnichat
    python3 bench/startup.py [--binary target/release/omnichat] [--runs 10] [--idle 3] [--smaps]

Each run starts the binary on a free port with SQLite in a data directory of its own (the same
one for every run, so the first run fills the compiled-plugin cache and the others find it warm),
polls `GET /health` on a loopback socket every millisecond from the moment the process is spawned
until it answers 200 ("ready"), then leaves it idle `--idle` seconds and reads its VmRSS and
thread count from /proc, and stops it with SIGINT. Nothing else runs in between; the first run
(cold plugin cache) is reported apart.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


def smaps_summary(pid, top=12):
    """Resident kB per mapping (file, or [heap]/anonymous) and permissions, largest first."""
    totals = {}
    key = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                name = parts[5] if len(parts) > 5 else "[anonymous]"
                key = (os.path.basename(name) if name.startswith("/") else name, parts[1])
            elif parts[0] == "Rss:":
                totals[key] = totals.get(key, 0) + int(parts[1])
    rows = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return "\n".join(f"  {kb / 1024:7.1f} MB  {perms}  {name}" for (name, perms), kb in rows)


def run(binary, data_dir, idle, smaps=False):
    port = free_port()
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", OMNICHAT_DATA_DIR=data_dir, RUST_LOG="warn")
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    started = time.perf_counter()
    child = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not healthy(port):
            if child.poll() is not None:
                raise SystemExit(f"{binary} exited with {child.returncode}")
            if time.perf_counter() - started > 30:
                raise SystemExit("not ready within 30 s")
            time.sleep(0.001)
        ready_ms = (time.perf_counter() - started) * 1000
        time.sleep(idle)
        rss_kb, threads = proc_status(child.pid)
        if smaps:
            print(f"resident at idle ({rss_kb / 1024:.1f} MB), by mapping:\n{smaps_summary(child.pid)}")
        return ready_ms, rss_kb / 1024, threads
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/omnichat")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--idle", type=float, default=3.0)
    parser.add_argument("--smaps", action="store_true", help="also print the last warm run's resident memory by mapping")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        cold = run(args.binary, data_dir, args.idle)
        print(f"cold plugin cache: ready in {cold[0]:.0f} ms, idle RSS {cold[1]:.1f} MB, {cold[2]} threads")
        warm = [run(args.binary, data_dir, args.idle, args.smaps and i == args.runs - 1) for i in range(args.runs)]
    ready = [r[0] for r in warm]
    rss = [r[1] for r in warm]
    print(
        f"warm plugin cache, {args.runs} runs: ready median {statistics.median(ready):.0f} ms "
        f"(min {min(ready):.0f}, max {max(ready):.0f}); idle RSS median {statistics.median(rss):.1f} MB "
        f"(min {min(rss):.1f}, max {max(rss):.1f}); {warm[-1][2]} threads"
    )


if __name__ == "__main__":
    main()
