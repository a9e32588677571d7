#!/usr/bin/env bash
# The e2s demo: an example AutoModel (examples/forecaster) loads itself from its
# default package, hf://e2s-examples/forecaster, served by a loopback Hugging
# Face Hub (tests/servers/hf_server.py) into a fresh temporary cache: the files
# are downloaded, the archive is extracted once, the weights and statistics are
# read, and a forecast is printed. A second run is served from the cache with no
# request. Everything it starts or writes is removed on exit.
# Exit status 0 when it all worked.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

heading() { printf '\n== %s ==\n' "$*"; }
die() { echo "e2s demo: error: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }

echo "e2s demo: an AutoModel loads its package from a Hugging Face Hub into an empty cache"

heading "Build"
./scripts/setup.sh --quiet --target forecaster --target e2s_cli ||
  die "setup failed; run ./scripts/setup.sh to see why"
forecaster=build/examples/forecaster
e2s=build/e2s
hub_server=tests/servers/hf_server.py
[[ -x $forecaster && -x $e2s ]] || die "$forecaster or $e2s was not built"
# numpy writes the package; Debian's python3 has it (python3-numpy, from setup.sh).
python=/usr/bin/python3
[[ -x $python ]] || python=python3

tmp=$(mktemp -d "${TMPDIR:-/tmp}/e2s-demo.XXXXXX")
cache="$tmp/cache"
server_pid=""
cleanup() {
  exec 3>&-  # closing the server's stdin asks it to exit
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Loopback must never go through a proxy the user may have set, and no token
# of the user's goes to the demo's Hub.
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
export NO_PROXY="$no_proxy"
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN EARTH2STUDIO_MODEL_CACHE
export HF_HUB_DISABLE_IMPLICIT_TOKEN=1

heading "Publish the model package on a loopback Hub"
repo="$tmp/hub/models/e2s-examples/forecaster/main"
"$python" examples/forecaster/make_package.py "$repo" || die "writing the package failed (is python3-numpy installed?)"
mkfifo "$tmp/server.stdin"
"$python" "$hub_server" --root "$tmp/hub" --port 0 \
  <"$tmp/server.stdin" >"$tmp/server.out" 2>"$tmp/server.log" &
server_pid=$!
exec 3>"$tmp/server.stdin"  # held open until exit: the server stops when it closes
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/^PORT \([0-9][0-9]*\)$/\1/p' "$tmp/server.out" | head -n 1)
  [[ -n $port ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; die "the Hub server exited"; }
  sleep 0.1
done
[[ -n $port ]] || { cat "$tmp/server.log" >&2; die "the Hub server did not report its port"; }
export HF_ENDPOINT="http://127.0.0.1:$port"
export EARTH2STUDIO_CACHE="$cache"
echo "HF_ENDPOINT=$HF_ENDPOINT    EARTH2STUDIO_CACHE=$cache"
echo "\$ e2s ls hf://e2s-examples/forecaster"
"$e2s" ls hf://e2s-examples/forecaster || die "e2s ls failed with exit status $?"

# Requests the Hub and its CDN have answered (the control routes excluded).
requests() {
  "$python" - "$HF_ENDPOINT/_stats" <<'PY'
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=10) as reply:
    stats = json.load(reply)
print(sum(1 for r in stats["requests"] if not str(r.get("path", "")).startswith("/_")))
PY
}

run_model() {  # sets $output and $elapsed_ms
  local start status=0
  start=$(now_ms)
  output=$("$forecaster" --steps 4) || status=$?
  elapsed_ms=$(( $(now_ms) - start ))
  [[ $status -eq 0 ]] || die "the forecaster failed with exit status $status"
}

heading "First run: from_pretrained<Forecaster>() with an empty cache"
echo "\$ $forecaster --steps 4"
before=$(requests)
run_model
after=$(requests)
echo "$output"
echo "first run: $((after - before)) requests, ${elapsed_ms} ms (download, extract forecaster.zip, load)"
first="$output"

heading "Second run: everything from the cache"
before=$after
run_model
after=$(requests)
echo "$output"
[[ $output == "$first" ]] || die "the second run printed another forecast"
[[ $((after - before)) -eq 0 ]] || die "the second run sent $((after - before)) requests; a cache hit sends none"
echo "second run: 0 requests, ${elapsed_ms} ms"

heading "What the cache holds"
(cd "$cache" && find . -path ./forecaster/.e2s/meta -prune -o -type f -print | sort | sed 's|^\./|  |')

heading "Done"
echo "demo finished; the server and $tmp are removed on exit"
