#!/usr/bin/env bash
# The e2s demo: serves examples/package (plus a generated 16 MiB weights.bin) on
# loopback at 4 MB/s, resolves it into a fresh temporary cache, resolves it again
# to show the cache hit (no request reaches the server), then shows the files.
# Everything it starts or writes is removed on exit. Exit status 0 when it all worked.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

heading() { printf '\n== %s ==\n' "$*"; }
die() { echo "e2s demo: error: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
size() {
  awk -v b="$1" 'BEGIN {
    if (b < 1024) printf "%d B", b
    else if (b < 1048576) printf "%.1f KiB", b / 1024
    else printf "%.1f MiB", b / 1048576 }'
}

echo "e2s demo: fetch a model package over HTTP into an empty cache, then hit the cache"

heading "Build"
./scripts/setup.sh --quiet --target e2s_cli || die "setup failed; run ./scripts/setup.sh to see why"
e2s=build/e2s
server=tests/servers/http_server.py
[[ -x $e2s ]] || die "$e2s was not built"
[[ -f $server ]] || die "$server is missing"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/e2s-demo.XXXXXX")
served="$tmp/package"
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

# Loopback must never go through a proxy the user may have set.
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
export NO_PROXY="$no_proxy"

heading "Serve the example package"
cp -R examples/package "$served"
# The weights are generated, not stored in the repository: 16 MiB of seeded
# pseudo-random bytes, the same on every run.
python3 -c '
import random, sys
sys.stdout.buffer.write(random.Random(20240601).randbytes(16 << 20))
' >"$served/weights.bin"

mkfifo "$tmp/server.stdin"
python3 "$server" --root "$served" --port 0 --rate 4000000 \
  <"$tmp/server.stdin" >"$tmp/server.out" 2>"$tmp/server.log" &
server_pid=$!
exec 3>"$tmp/server.stdin"  # held open until exit: the server stops when it closes

port=""
for _ in $(seq 100); do
  port=$(sed -n 's/^PORT \([0-9][0-9]*\)$/\1/p' "$tmp/server.out" | head -n 1)
  [[ -n $port ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; die "the test server exited"; }
  sleep 0.1
done
[[ -n $port ]] || { cat "$tmp/server.log" >&2; die "the test server did not report its port"; }
root="http://127.0.0.1:$port/"

# Requests the server has answered (its own /_stats excluded) and body bytes sent.
server_stats() {
  python3 - "${root}_stats" <<'PY'
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=10) as reply:
    stats = json.load(reply)
def path(request):
    return str(request.get("path", "")) if isinstance(request, dict) else str(request)
print(sum(1 for r in stats["requests"] if "/_stats" not in path(r)), stats.get("body_bytes", 0))
PY
}

files=(config.json weights.bin stats/global_means.txt stats/global_stds.txt)
echo "serving $served"
echo "     at $root (throttled to 4 MB/s)"
for f in "${files[@]}"; do
  printf '  %-24s %s\n' "$f" "$(size "$(stat -c %s "$served/$f")")"
done

stats() {  # stats VAR_REQUESTS VAR_BYTES
  local line
  line=$(server_stats) || die "cannot read ${root}_stats"
  read -r "$1" "$2" <<<"$line"
}

# Runs e2s resolve into the temporary cache: sets $resolved and $elapsed_ms.
resolve() {
  local start status=0
  start=$(now_ms)
  resolved=$("$e2s" --cache-dir "$cache" --timeout 120 resolve "$root" "${files[@]}") || status=$?
  elapsed_ms=$(( $(now_ms) - start ))
  [[ $status -eq 0 ]] || die "e2s resolve failed with exit status $status"
}

heading "First resolve: empty cache, files are downloaded"
echo "\$ e2s --cache-dir $cache resolve $root ${files[*]}"
stats requests_before bytes_before
resolve
first="$resolved"
stats requests_after bytes_after
echo "$first"
echo "first resolve: downloaded $(size $((bytes_after - bytes_before))) in ${elapsed_ms} ms," \
  "$((requests_after - requests_before)) requests"

mapfile -t paths <<<"$first"
[[ ${#paths[@]} -eq ${#files[@]} ]] || die "expected ${#files[@]} paths, got ${#paths[@]}"
for i in "${!files[@]}"; do
  [[ ${paths[$i]} == /* ]] || die "not an absolute path: ${paths[$i]}"
  cmp -s "$served/${files[$i]}" "${paths[$i]}" || die "${paths[$i]} differs from the served ${files[$i]}"
done
echo "every file matches the served bytes"

heading "Second resolve: served from the cache"
requests_before=$requests_after
resolve
stats requests_after bytes_after
echo "$resolved"
[[ $resolved == "$first" ]] || die "the second resolve returned other paths"
hits=$((requests_after - requests_before))
[[ $hits -eq 0 ]] || die "the second resolve sent $hits requests; a cache hit must send none"
echo "second resolve: served from cache in ${elapsed_ms} ms, 0 requests"

heading "Where the files are"
echo "cache folder: $cache"
ls -lU "${paths[@]}"

heading "e2s cat $root config.json"
"$e2s" --cache-dir "$cache" cat "$root" config.json || die "e2s cat failed with exit status $?"

heading "Done"
echo "demo finished; the server and $tmp are removed on exit"
