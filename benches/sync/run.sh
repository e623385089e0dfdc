#!/usr/bin/env bash
# The registry import at scale: 100,000 customers and 2,000 customer groups (50 members each)
# served page by page by the stand-in, imported with `yunying sync`, then a reconcile with
# nothing changed. Prints each run's report (wall time and the part spent waiting for the
# stand-in) and the importer's peak RSS.
# Usage: bash benches/sync/run.sh [sqlite|postgres-url] [customers] [groups]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet --bin yunying
target=${1:-sqlite}
customers=${2:-100000}
groups=${3:-2000}
dir=$(mktemp -d)
trap 'kill $fake 2>/dev/null || true; rm -rf "$dir"' EXIT
port=18590
target/release/yunying fake-wecom --listen 127.0.0.1:$port --customers "$customers" --groups "$groups" >"$dir/fake.log" 2>&1 &
fake=$!
for _ in $(seq 1 200); do grep -q "^Directory" "$dir/fake.log" 2>/dev/null && break; sleep 0.2; done
if [ "$target" = sqlite ]; then url="sqlite://$dir/y.db"; else url="$target"; fi
export YUNYING_DATABASE__URL="$url" YUNYING_API__WECOM_BASE="http://127.0.0.1:$port" YUNYING_LOG=warn
for run in import reconcile; do
  echo "== $run ($target, $customers customers, $groups groups)"
  /usr/bin/time -f "peak RSS %M KiB, %e s wall, %U s user" \
    target/release/yunying sync --channel demo_app --what contacts,groups
done
