#!/usr/bin/env bash
# A large community through the real server: N distinct members each send one message (a new
# member row, group membership, daily activity and first-contact stage each), then the same
# deliveries again as retries. Prints, every 10 s, the server's RSS, the callbacks accepted so
# far and the CPU of each server thread (% of one core).
#
# usage: benches/load/members.sh [members] [seconds] [text]
#   members defaults to 1,000,000; seconds (wrk's run, including its load-file read) to 240;
#   text to a plain chat line (签到 makes it a million first sign-ins).
# Deliveries are signed when the load file is built: from 300 s after that they fall outside the
# replay window and are rejected as stale (403), so wrk's "Non-2xx" count at the end of a longer
# run counts those. Failed callbacks show as "callback failed" in the server log (KEEP_LOG=path
# keeps it). AFTER=seconds keeps the server up (and RSS sampled) that long after wrk stops, to
# watch a periodic job finish, e.g. with YUNYING_SCHEDULER__LIFECYCLE_CRON="0 * * * * *".
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
SECS=${2:-240}
TEXT=${3:-大家好，今天的直播几点开始？}
PORT=${PORT:-18083}
CHANNEL=demo_robot

cargo build --release --quiet --bin yunying
cargo bench --quiet --no-run --bench loadgen 2>/dev/null
work=$(mktemp -d)
# Built just before the run: the callbacks' timestamps must stay inside the 300 s replay window.
cargo bench --quiet --bench loadgen -- "$work/load.txt" "$N" "$N" "$CHANNEL" "$TEXT" >/dev/null
sync "$work/load.txt" # written back later, it would stall the database's fsyncs mid-run
YUNYING_DATABASE__URL="sqlite://$work/members.db" YUNYING_SERVER__LISTEN="127.0.0.1:$PORT" YUNYING_LOG="warn,yunying::app=info" \
  ./target/release/yunying serve > "$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; [ -z "${KEEP_LOG:-}" ] || cp "$work/server.log" "$KEEP_LOG"; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
echo "idle: $(grep VmRSS /proc/$server/status)"

LOAD_FILE="$work/load.txt" WRK_THREADS=2 wrk -t2 -c64 -d"${SECS}s" -s benches/load/callbacks.lua \
  "http://127.0.0.1:$PORT" > "$work/wrk.txt" &
client=$!
threads() { # "name ticks" per thread name
  for t in /proc/$server/task/*; do echo "$(tr ' ' _ < "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"; done |
    awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}
accepted() {
  curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^yunying_callbacks_total.*outcome="accepted"/ {s += $2} END {print s + 0}'
}
hz=$(getconf CLK_TCK)
before=$(threads); last=0
while kill -0 "$client" 2>/dev/null; do
  sleep 10
  now=$(threads); count=$(accepted)
  cpu=$(join <(echo "$before") <(echo "$now") | awk -v hz="$hz" '$3 > $2 {printf "%s %d%%  ", $1, ($3 - $2) * 100 / hz / 10}')
  printf '%s  rss %6d KiB  accepted %8d (+%6d)  %s\n' "$(date +%T)" "$(awk '/VmRSS/ {print $2}' /proc/$server/status)" "$count" "$((count - last))" "$cpu"
  before=$now; last=$count
done
for _ in $(seq 1 $(( ${AFTER:-0} / 10 ))); do
  sleep 10
  printf '%s  rss %6d KiB  (after the load)\n' "$(date +%T)" "$(awk '/VmRSS/ {print $2}' /proc/$server/status)"
done
echo "peak: $(grep VmHWM /proc/$server/status)"
grep -E "Latency|requests in|Non-2xx" "$work/wrk.txt" || true
grep -E "maintenance done" "$work/server.log" | tail -5 || true
grep -iE "error|panic" "$work/server.log" | head -5 || true
