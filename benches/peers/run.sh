#!/usr/bin/env bash
# Side by side, same payloads, same machine: Yunying (durable: inbox + member upsert on SQLite)
# vs a Node receiver on WeCom's official @wecom/crypto (2 cluster workers, no storage) vs a Python
# FastAPI + wechatpy receiver (uvicorn, 2 workers, no storage). Installs both peers from npm and
# PyPI into a scratch folder; nothing of theirs is committed.
#
# usage: benches/peers/run.sh [seconds] [connections]
#   NEW_CONNECTIONS=1: every request on a new connection (Connection: close), as from a sender
#   that does not keep connections alive.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
CONNS=${2:-256}
TOKEN=NlBSzxeLJQXphJ2TsJOdYVVN                       # the demo_robot channel of config.example.toml
KEY=skurAUFkBu9lJo8aMj6o4pYSN9vuZgkwcBWEV2FnaDc
scratch=${PEERS_DIR:-/tmp/yunying-peers}
mkdir -p "$scratch/node"
cp benches/peers/node_receiver.js "$scratch/node/"
cp benches/peers/python_receiver.py "$scratch/"

echo "== installing peers into $scratch"
(cd "$scratch/node" && [ -d node_modules/@wecom/crypto ] || (npm init -y >/dev/null && npm install --silent @wecom/crypto@1.0.1))
if [ ! -x "$scratch/venv/bin/uvicorn" ]; then
  python3 -m venv "$scratch/venv"
  "$scratch/venv/bin/pip" install --quiet fastapi 'uvicorn[standard]' wechatpy cryptography xmltodict
fi

cargo build --release --quiet --bin yunying
cargo bench --quiet --no-run --bench loadgen 2>/dev/null
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

count=$((40000 * SECS))
cargo bench --quiet --bench loadgen -- "$work/load.txt" "$count" 10000 demo_robot "大家好，今天的直播几点开始？" >/dev/null
sync "$work/load.txt" # written back later, it would stall the database's fsyncs mid-run

run_wrk() { # name port
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$2/" && break; sleep 0.2; done
  local out
  out=$(LOAD_FILE="$work/load.txt" WRK_THREADS=2 wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s benches/load/callbacks.lua "http://127.0.0.1:$2")
  local rps p99 errs
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errs=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  sock=$(echo "$out" | awk -F'Socket errors: ' '/Socket errors/ {print $2}')
  printf '%-40s %10s req/s   p99 %-9s non-2xx %s   socket errors: %s\n' "$1" "$rps" "$p99" "${errs:-0}" "${sock:-none}"
}

YUNYING_DATABASE__URL="sqlite://$work/y.db" YUNYING_SERVER__LISTEN=127.0.0.1:18080 YUNYING_LOG=warn ./target/release/yunying serve >/dev/null 2>&1 &
pids+=($!)
sleep 1
run_wrk "yunying (SQLite, durable)" 18080
kill "${pids[-1]}"; sleep 1

(cd "$scratch/node" && TOKEN=$TOKEN ENCODING_AES_KEY=$KEY PORT=18081 node node_receiver.js) &
pids+=($!)
sleep 1
run_wrk "node @wecom/crypto (no storage)" 18081
pkill -f node_receiver.js || true; sleep 1

(cd "$scratch" && TOKEN=$TOKEN ENCODING_AES_KEY=$KEY "$scratch/venv/bin/uvicorn" python_receiver:app --host 127.0.0.1 --port 18082 --workers 2 --log-level warning) &
pids+=($!)
sleep 3
run_wrk "python fastapi+wechatpy (no storage)" 18082
pkill -f "uvicorn python_receiver" || true
