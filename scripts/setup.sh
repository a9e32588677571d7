#!/usr/bin/env bash
# Installs the Debian packages e2s needs (only the missing ones) and builds it.
#
#   scripts/setup.sh                  install what is missing, build build/ (Release, g++)
#   scripts/setup.sh --sanitize       same, but build build-asan/ with ASan+UBSan (RelWithDebInfo)
#   scripts/setup.sh --build-dir DIR  build in DIR instead
#   scripts/setup.sh --build-type T   CMake build type T (Release, RelWithDebInfo, Debug)
#   scripts/setup.sh --clang          compile with clang-14 instead of g++
#   scripts/setup.sh --no-tests       build the library, the command, examples and
#                                     benchmarks, not the tests
#   scripts/setup.sh --no-build       install packages only
#   scripts/setup.sh --target NAME    build only target NAME (e.g. e2s_cli), not everything
#   scripts/setup.sh --quiet          print only the progress lines (build log on failure)
#   scripts/setup.sh --fuzz           also install the fuzzing toolchain (scripts/fuzz.sh)
#
# Safe to run again: installed packages are skipped and the build is incremental.
set -euo pipefail

packages=(
  build-essential clang-14 cmake ninja-build pkg-config ca-certificates python3 python3-numpy openssl
  python3-fsspec python3-aiohttp
  libcurl4-openssl-dev libssl-dev nlohmann-json3-dev libcli11-dev
  libspdlog-dev libpugixml-dev libfmt-dev libarchive-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
# libFuzzer's runtime (clang-14 itself is in the list above: the test suite
# also builds e2s with clang).
fuzz_packages=(libclang-rt-14-dev)

usage() { sed -n '2,15s/^# \{0,1\}//p' "$0"; }
say() { echo "e2s setup: $*"; }
die() { echo "e2s setup: error: $*" >&2; exit 1; }

sanitize=0
build=1
build_type=""
compiler=g++
tests=ON
quiet=0
build_dir=""
targets=()
names=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sanitize) sanitize=1 ;;
    --build-dir) [[ $# -ge 2 ]] || die "--build-dir needs a folder"; build_dir="$2"; shift ;;
    --build-dir=*) build_dir="${1#*=}" ;;
    --no-build) build=0 ;;
    --build-type) [[ $# -ge 2 ]] || die "--build-type needs a CMake build type"; build_type="$2"; shift ;;
    --clang) compiler=clang++-14 ;;
    --no-tests) tests=OFF ;;
    --target) [[ $# -ge 2 ]] || die "--target needs a name"; targets+=(--target "$2"); names+=("$2"); shift ;;
    -q|--quiet) quiet=1 ;;
    --fuzz) packages+=("${fuzz_packages[@]}") ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done
# Release is what users build; sanitizer reports want the debug info.
if [[ -z "$build_type" ]]; then
  if [[ $sanitize -eq 1 ]]; then build_type=RelWithDebInfo; else build_type=Release; fi
fi
if [[ -z "$build_dir" ]]; then
  if [[ $sanitize -eq 1 ]]; then build_dir=build-asan; else build_dir=build; fi
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# --- packages -----------------------------------------------------------------
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
    apt_quiet=()
    [[ $quiet -eq 1 ]] && apt_quiet=(-qq)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update "${apt_quiet[@]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "${apt_quiet[@]}" "${missing[@]}"
  fi
else
  say "no dpkg-query (not Debian?): assuming these are installed: ${packages[*]}"
fi

[[ $build -eq 1 ]] || exit 0

# --- build --------------------------------------------------------------------
if [[ $sanitize -eq 1 ]]; then want_sanitize=ON; else want_sanitize=OFF; fi
jobs=$(nproc 2>/dev/null || echo 2)

log="$build_dir/setup.log"
run() {  # runs a step; in quiet mode its output goes to $log and is shown only on failure
  if [[ $quiet -eq 1 ]]; then
    if ! "$@" >>"$log" 2>&1; then
      tail -n 60 "$log" >&2
      die "failed: $* (full log: $log)"
    fi
  else
    "$@" || die "failed: $*"
  fi
}

cache_value() {  # cache_value NAME: the value of NAME in the build's CMakeCache.txt
  [[ -f "$build_dir/CMakeCache.txt" ]] || return 0
  sed -n "s/^$1:[A-Z]*=//p" "$build_dir/CMakeCache.txt" | head -n 1
}

mkdir -p "$build_dir"
: >"$log"
# Configure only when needed: a fresh folder, or one set up with other options
# (from scratch, as CMake cannot switch compilers in place). Otherwise the
# build itself re-runs CMake when a CMakeLists.txt changed.
settings=(-DCMAKE_BUILD_TYPE="$build_type" -DE2S_SANITIZE="$want_sanitize" -DE2S_BUILD_TESTS="$tests")
[[ $compiler == g++ ]] || settings+=(-DCMAKE_CXX_COMPILER="$compiler")
describe="$build_type, $compiler, sanitize $want_sanitize, tests $tests"
compiler_now=$(cache_value CMAKE_CXX_COMPILER)
if [[ $compiler == g++ ]]; then want_clang=no; else want_clang=yes; fi
if [[ ${compiler_now##*/} == clang* ]]; then clang_now=yes; else clang_now=no; fi
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  say "configuring $build_dir/ ($describe)"
  run cmake -S . -B "$build_dir" -G Ninja "${settings[@]}"
elif [[ $(cache_value CMAKE_BUILD_TYPE) != "$build_type" || $(cache_value E2S_SANITIZE) != "$want_sanitize" ||
        $(cache_value E2S_BUILD_TESTS) != "$tests" || $clang_now != "$want_clang" ]]; then
  say "reconfiguring $build_dir/ ($describe)"
  run cmake --fresh -S . -B "$build_dir" -G Ninja "${settings[@]}"
fi

say "building ${names[*]:+${names[*]} }in $build_dir/"
run cmake --build "$build_dir" --parallel "$jobs" "${targets[@]}"
