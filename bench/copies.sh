#!/usr/bin/env bash
# Copies of one model's checkpoint on a node that already ran `hf download`
# and Earth2Studio, after e2s resolved it twice (its default package folder,
# and an AutoModel using default_cache("forecaster"), as the example does).
# Counts the distinct inodes holding each file and the bytes they take.
#
#   bench/copies.sh [--e2s BIN] [--example BIN]    (default: build/e2s, build/examples/forecaster)
#
# The model is examples/forecaster's package on a loopback Hub
# (tests/servers/hf_server.py); everything is removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

e2s=build/e2s
example=build/examples/forecaster
while [[ $# -gt 0 ]]; do
  case "$1" in
    --e2s) e2s="$2"; shift ;;
    --example) example="$2"; shift ;;
    *) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 2 ;;
  esac
  shift
done
python=/usr/bin/python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/e2s-copies.XXXXXX")
server_pid=""
cleanup() {
  exec 3>&- || true
  [[ -n $server_pid ]] && { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT

export no_proxy="127.0.0.1,localhost" NO_PROXY="127.0.0.1,localhost"
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN EARTH2STUDIO_CACHE E2S_HF_CACHE HF_HOME XDG_CACHE_HOME
export HF_HUB_DISABLE_IMPLICIT_TOKEN=1
files=(forecaster.zip global_means.npy global_stds.npy)

"$python" examples/forecaster/make_package.py "$tmp/hub/models/e2s-examples/forecaster/main" >/dev/null
mkfifo "$tmp/server.stdin"
"$python" tests/servers/hf_server.py --root "$tmp/hub" --port 0 <"$tmp/server.stdin" >"$tmp/server.out" 2>/dev/null &
server_pid=$!
exec 3>"$tmp/server.stdin"
for _ in $(seq 100); do
  port=$(sed -n 's/^PORT \([0-9][0-9]*\)$/\1/p' "$tmp/server.out" | head -n 1)
  [[ -n ${port:-} ]] && break
  sleep 0.1
done
export HF_ENDPOINT="http://127.0.0.1:$port" HF_HUB_CACHE="$tmp/hf/hub" EARTH2STUDIO_MODEL_CACHE="$tmp/earth2studio"

"$python" bench/neighbours.py hf-download "$HF_HUB_CACHE" "$HF_ENDPOINT" e2s-examples/forecaster "${files[@]}"
"$python" bench/neighbours.py earth2studio "$EARTH2STUDIO_MODEL_CACHE/forecaster" "$HF_ENDPOINT" \
  e2s-examples/forecaster "${files[@]}"
"$e2s" -q resolve hf://e2s-examples/forecaster "${files[@]}" >/dev/null
"$example" >/dev/null

"$python" - "$tmp" "${files[@]}" <<'PY'
import hashlib, os, sys
top, names = sys.argv[1], sys.argv[2:]
def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
served = {name: digest(os.path.join(top, "hub/models/e2s-examples/forecaster/main", name)) for name in names}
inodes = {name: {} for name in names}  # the distinct files holding each one's bytes
for cache in ("hf", "earth2studio"):
    for folder, dirs, entries in os.walk(os.path.join(top, cache)):
        dirs[:] = [d for d in dirs if d != "extracted"]  # archives' contents, not copies
        for entry in entries:
            path = os.path.join(folder, entry)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            status, content = os.lstat(path), digest(path)
            for name, want in served.items():
                if content == want:
                    inodes[name][(status.st_dev, status.st_ino)] = status.st_size
total = 0
for name in names:
    copies = inodes[name]
    total += sum(copies.values())
    print("%-18s %d copies on disk (%d bytes each)" % (name, len(copies), next(iter(copies.values()), 0)))
print("bytes on disk for the package's files: %d" % total)
PY
