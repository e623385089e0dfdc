#!/usr/bin/env bash
# End-to-end load test of the release build with wrk (max throughput) and an open-loop client
# (latency at a fixed rate). Every request is a unique, signed, encrypted group-robot text callback;
# the server commits it to the inbox and upserts the member before answering.
#
# usage: benches/load/run.sh [sqlite|postgres] [seconds] [text] [rate]
#   OPEN_FIRST=1 runs the latency run on the empty database, before wrk (see below).
#   TRICKLE_FIRST=1 (with OPEN_FIRST=1) first sends 400 callbacks at 200/s from other members: the
#   first messages of a new community, when PostgreSQL plans statements on nearly empty tables.
#   text defaults to a plain chat line; rate (for the latency run) defaults to 5000/s.
# Each load file is synced to disk before its run. Left dirty, the kernel writes it back 30 s
# later (vm.dirty_expire_centisecs), in the middle of a later run, and the database's WAL fsync
# waits behind that writeback on ext4: a 100-250 ms stall that is the benchmark's own doing
# (docs/benchmarks.md section 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
BACKEND=${1:-sqlite}
SECS=${2:-15}
TEXT=${3:-大家好，今天的直播几点开始？}
RATE=${4:-5000}
PORT=${PORT:-18080}
MEMBERS=${MEMBERS:-10000}
CHANNEL=demo_robot

cargo build --release --quiet --bin yunying
cargo bench --quiet --no-run --bench loadgen --bench rate 2>/dev/null
work=$(mktemp -d)
case "$BACKEND" in
  sqlite) DB="sqlite://$work/load.db" ;;
  postgres)
    name="yunying_load_$(date +%s)"
    psql -h 127.0.0.1 -U postgres -d postgres -qc "create database $name"
    DB="postgres://postgres@127.0.0.1:5432/$name" ;;
  *) echo "backend must be sqlite or postgres"; exit 2 ;;
esac

YUNYING_DATABASE__URL="$DB" YUNYING_SERVER__LISTEN="127.0.0.1:$PORT" YUNYING_LOG=warn \
  YUNYING_DATABASE__MAX_CONNECTIONS=16 ./target/release/yunying serve > "$work/server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
  if [ -n "${name:-}" ]; then psql -h 127.0.0.1 -U postgres -d postgres -qc "drop database if exists $name with (force)" || true; fi
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done

max_run() {
  local count=$((40000 * SECS))
  cargo bench --quiet --bench loadgen -- "$work/max.txt" "$count" "$MEMBERS" "$CHANNEL" "$TEXT" >/dev/null
  sync "$work/max.txt"
  echo "== $BACKEND: wrk, 2 threads, ${CONNS:-256} connections, ${SECS}s, $count unique callbacks from $MEMBERS members"
  LOAD_FILE="$work/max.txt" WRK_THREADS=2 wrk -t2 -c"${CONNS:-256}" -d"${SECS}s" --latency -s benches/load/callbacks.lua "http://127.0.0.1:$PORT"
  curl -s "http://127.0.0.1:$PORT/metrics" | grep "channel=\"$CHANNEL\"" | grep -v ' 0$' || true
}

open_run() {
  local rate_count=$((RATE * 10))
  cargo bench --quiet --bench loadgen -- "$work/rate.txt" "$rate_count" "$MEMBERS" "$CHANNEL" "$TEXT" >/dev/null
  sync "$work/rate.txt"
  if [ "${TRICKLE_FIRST:-0}" = 1 ]; then
    MEMBER_OFFSET=1000000 cargo bench --quiet --bench loadgen -- "$work/trickle.txt" 400 400 "$CHANNEL" "早上好" >/dev/null
    sync "$work/trickle.txt"
    echo "== $BACKEND: a trickle first, 200/s for 2 s"
    cargo bench --quiet --bench rate -- "http://127.0.0.1:$PORT" "$work/trickle.txt" 200 2
  fi
  echo "== $BACKEND: open loop at ${RATE}/s for 10 s ($1)"
  cargo bench --quiet --bench rate -- "http://127.0.0.1:$PORT" "$work/rate.txt" "$RATE" 10
}

# OPEN_FIRST=1: the latency run first, on the empty database, where every member is new (their
# first messages also set their lifecycle stage); by default it follows the wrk run, when the
# members exist and were checked minutes ago.
if [ "${OPEN_FIRST:-0}" = 1 ]; then
  open_run "empty database: every member new"
  max_run
else
  max_run
  open_run "after the wrk run: members known"
fi
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E "^yunying_inbox_depth" || true
grep -iE "error|panic" "$work/server.log" | head -5 || true
