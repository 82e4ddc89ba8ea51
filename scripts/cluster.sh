#!/usr/bin/env bash
# Starts N OmniChat replicas on one machine against a local PostgreSQL, for trying a cluster:
#   scripts/cluster.sh [N=2] [FIRST_PORT=3001]
# Replica i listens on FIRST_PORT+i-1. They share the database (created if missing), JWT_SECRET
# and OMNICHAT_SECRET_KEY (generated once under ./cluster-data), and REDIS_URL. Each has its own
# data dir and log (./cluster-data/replica-i/omnichat.log). Ctrl-C stops them all.
# Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/omnichat_cluster),
# REDIS_URL (default redis://127.0.0.1:6379), OMNICHAT_BIN (default: target/release/omnichat,
# built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

replicas=${1:-2}
first_port=${2:-3001}
data=./cluster-data
bin=${OMNICHAT_BIN:-target/release/omnichat}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/omnichat_cluster}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}

if [ ! -x "$bin" ]; then
  echo "building $bin"
  cargo build --release -p omnichat
fi
mkdir -p "$data"
# What every replica must share.
[ -f "$data/jwt-secret" ] || head -c 48 /dev/urandom | base64 | tr -d '\n=' > "$data/jwt-secret"
[ -f "$data/secret-key" ] || head -c 32 /dev/urandom | base64 | tr -d '\n' > "$data/secret-key"
export JWT_SECRET=$(cat "$data/jwt-secret")
export OMNICHAT_SECRET_KEY=$(cat "$data/secret-key")

pids=()
stop() {
  echo "stopping ${#pids[@]} replicas"
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

for i in $(seq 1 "$replicas"); do
  port=$((first_port + i - 1))
  dir="$data/replica-$i"
  mkdir -p "$dir"
  PORT=$port OMNICHAT_DATA_DIR=$dir LOG_FORMAT=json "$bin" > "$dir/omnichat.log" 2>&1 &
  pids+=($!)
  echo "replica $i: http://127.0.0.1:$port (log $dir/omnichat.log)"
done

for i in $(seq 1 "$replicas"); do
  port=$((first_port + i - 1))
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$port/health" || { echo "replica $i did not come up; see its log"; exit 1; }
  echo
done
echo "all $replicas replicas up on $DATABASE_URL; Ctrl-C stops them"
wait
