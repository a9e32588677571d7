#!/usr/bin/env bash
# The e2s benchmark: e2s against curl, aria2c, Earth2Studio's fsspec path and dd
# on loopback servers (workloads W1-W4, see bench/README.md).
#
#   bench/run.sh                 all workloads, 5 runs per tool; writes bench/RESULTS.md
#   bench/run.sh --quick         2 runs per tool and smaller files
#   bench/run.sh --runs N        N runs per tool
#   bench/run.sh --only W1,W3    only these workloads (W1 W2 W3 W4)
#   bench/run.sh --results FILE  write the Markdown report to FILE instead
#   bench/run.sh --no-drop       never drop the page cache between runs
#   bench/run.sh --max-wait S    wait up to S s (default 30) before each run for idle CPUs
#   bench/run.sh --no-install    do not install missing Debian packages
#
# Installs the Debian packages it needs when missing (with sudo when not root),
# builds e2s in Release into build-bench/, and keeps its data (about 2.5 GB at
# most) in a temp folder under $TMPDIR that is removed when it ends.
set -euo pipefail

packages=(nginx-light aria2 curl python3 python3-fsspec python3-aiohttp python3-requests
  libbenchmark-dev openssl coreutils time)

usage() { sed -n '2,16s/^# \{0,1\}//p' "$0"; }
say() { echo "bench: $*"; }
die() { echo "bench: error: $*" >&2; exit 1; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

install=1
results="$repo/bench/RESULTS.md"
harness_args=()
given=("$@")
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick|--no-drop) harness_args+=("$1") ;;
    --runs|--only|--max-wait)
      [[ $# -ge 2 ]] || die "$1 needs a value"
      harness_args+=("$1" "$2"); shift ;;
    --runs=*|--only=*|--max-wait=*) harness_args+=("$1") ;;
    --results)
      [[ $# -ge 2 ]] || die "--results needs a file"
      results=$(realpath -m "$2"); shift ;;
    --results=*) results=$(realpath -m "${1#*=}") ;;
    --no-install) install=0 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done

# --- packages -----------------------------------------------------------------
if [[ $install -eq 1 ]]; then
  # The build's own dependencies first (compiler, cmake, ninja, libcurl, ...).
  scripts/setup.sh --no-build --quiet
  if command -v dpkg-query >/dev/null 2>&1; then
    missing=()
    for pkg in "${packages[@]}"; do
      status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
      [[ "$status" == installed ]] || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
      sudo=()
      if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo; install as root: ${missing[*]}"
        sudo=(sudo)
      fi
      say "installing ${#missing[@]} packages: ${missing[*]}"
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends -qq "${missing[@]}"
    fi
  else
    say "no dpkg-query (not Debian?): assuming these are installed: ${packages[*]}"
  fi
fi

# Debian's python3 is the one python3-fsspec and python3-aiohttp install into;
# a python3 earlier on PATH (pyenv, venv) may not have them.
python=/usr/bin/python3
[[ -x $python ]] || python=$(command -v python3) || die "python3 not found"
"$python" -c 'import fsspec, aiohttp, requests' 2>/dev/null ||
  die "$python cannot import fsspec, aiohttp and requests (Debian: python3-fsspec python3-aiohttp python3-requests)"

# --- build --------------------------------------------------------------------
# Warnings are not errors here: g++ 12 at -O3 gives false -Wrestrict alarms in
# std::string code, and a benchmark build must not stop on them.
say "building e2s (Release) in build-bench/"
log="$repo/build-bench/bench-build.log"
mkdir -p build-bench
if ! { cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DE2S_BUILD_BENCH=ON \
         -DE2S_BUILD_TESTS=OFF &&
       cmake --build build-bench --target e2s_cli e2s_cache_hit_bench; } >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  die "build failed (full log: build-bench/bench-build.log)"
fi

# --- run ----------------------------------------------------------------------
workdir=$(mktemp -d "${TMPDIR:-/tmp}/e2s-bench.XXXXXX")
child=""
cleanup() {
  if [[ -n "$child" ]] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "data and servers in $workdir ($(df -h --output=avail "$workdir" | tail -n 1 | tr -d ' ') free)"
"$python" bench/harness.py --workdir "$workdir" --e2s "$repo/build-bench/e2s" \
  --hit-bench "$repo/build-bench/bench/e2s_cache_hit_bench" --python "$python" \
  --results "$results" "${harness_args[@]}" -- "${given[@]}" &
child=$!
wait "$child"
