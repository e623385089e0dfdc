#!/usr/bin/env bash
# Interoperability check: independent WeCom/WeChat libraries talk to a real `yunying serve`
# over HTTP — wechatpy (PyPI) for the self-built app and the Official Account, WeCom's official
# @wecom/crypto (npm) for the group robot and the AI bot. They build the encrypted callbacks and
# must verify and decrypt every passive reply. Installs both into a scratch folder (nothing is
# committed); builds the debug binary unless INTEROP_BIN points at one.
#
# usage: tests/interop/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
scratch=${INTEROP_DIR:-/tmp/yunying-interop}
mkdir -p "$scratch"

if [ ! -x "$scratch/venv/bin/python" ] || ! "$scratch/venv/bin/python" -c 'import wechatpy, xmltodict' 2>/dev/null; then
  python3 -m venv "$scratch/venv"
  "$scratch/venv/bin/pip" install --quiet --disable-pip-version-check wechatpy==1.8.18 xmltodict cryptography
fi
if [ ! -d "$scratch/node_modules/@wecom/crypto" ]; then
  (cd "$scratch" && npm install --silent --no-audit --no-fund --prefix "$scratch" @wecom/crypto@1.0.1)
fi

bin=${INTEROP_BIN:-}
if [ -z "$bin" ]; then
  cargo build --quiet --bin yunying
  bin=target/debug/yunying
fi

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
YUNYING_DATABASE__URL="sqlite://$work/interop.db" YUNYING_SERVER__LISTEN="127.0.0.1:$port" YUNYING_LOG=warn \
  "$bin" serve > "$work/server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done

status=0
"$scratch/venv/bin/python" tests/interop/wechatpy_client.py "http://127.0.0.1:$port" || status=1
NODE_PATH="$scratch/node_modules" node tests/interop/wecom_crypto_client.js "http://127.0.0.1:$port" || status=1
if [ "$status" -ne 0 ]; then
  echo "== server log"
  cat "$work/server.log"
fi
exit "$status"
