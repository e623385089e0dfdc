#!/usr/bin/env bash
# Hostile input against the release binary: deep unauthenticated XML (CPU per request, peak RSS,
# legitimate latency meanwhile) and 2,000 idle sockets against a 1,024 open-file limit.
# Usage: bash benches/hostile/run.sh   (builds target/release/yunying if needed)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet --bin yunying
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
port=18480
( ulimit -n 1024
  YUNYING_SERVER__LISTEN=127.0.0.1:$port YUNYING_DATABASE__URL="sqlite://$dir/y.db" \
  YUNYING_OUTBOX__ENABLED=false YUNYING_LOG=warn exec target/release/yunying serve ) >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
python3 benches/hostile/attack.py "http://127.0.0.1:$port" "$pid" xml 10 6
python3 benches/hostile/attack.py "http://127.0.0.1:$port" "$pid" idle 15 2000
